"""YAML text → plain Python data plus where every key and value was written.

The scenario loader validates plain data with pydantic and the cross-field rules, then needs
to say *where* each problem is. PyYAML's constructors throw node marks away, so this module
composes the node tree with the safe loader and builds the data itself, recording the
1-based line and column of every mapping key and every value by key path
(``("journeys", "cart", "states", "view", "next")``).

It also refuses what a plain ``yaml.safe_load`` silently accepts: duplicate keys (YAML would
keep the last one), non-scalar keys, non-finite numbers, recursive aliases and alias bombs.
Every problem found is collected, so one pass reports them all.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from generator.errors import Problem

KeyPath = tuple[str | int, ...]
"""A path into the data: mapping keys (str) and sequence indexes (int)."""

MAX_NODES = 200_000
"""Values built after alias expansion; far above any real scenario, far below an alias bomb."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9_]*)")


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in the file."""

    line: int
    column: int


def render_path(path: KeyPath) -> str:
    """``("journeys", "cart", "emit", 0, "track")`` → ``journeys.cart.emit[0].track``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in part or "[" in part or not part:
            out += f'["{part}"]'
        else:
            out += f".{part}" if out else part
    return out


def child(container: Any, part: str | int) -> tuple[bool, Any]:
    """``(True, container[part])`` when ``part`` is a key of a mapping or an index of a list."""
    if isinstance(part, str) and isinstance(container, dict) and part in container:
        return True, container[part]
    if isinstance(part, int) and isinstance(container, list) and 0 <= part < len(container):
        return True, container[part]
    return False, None


@dataclass(slots=True)
class Document:
    """Parsed scenario data with the marks of its keys and values."""

    file: str
    data: Any
    keys: dict[KeyPath, Mark] = field(default_factory=dict)
    values: dict[KeyPath, Mark] = field(default_factory=dict)
    rejected: set[KeyPath] = field(default_factory=set)
    """Values already reported while parsing (kept as ``null``); later errors there are noise."""

    def mark(self, path: KeyPath, *, at_key: bool | None = None) -> Mark:
        """Where ``path`` is written; the nearest written ancestor when it is not in the file.

        ``at_key``: point at the key (``next:``) rather than the value; by default the key
        for mappings and lists, the value for scalars.
        """
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix not in self.values and prefix not in self.keys:
                continue
            prefer_key = at_key if at_key is not None else isinstance(self.get(prefix), dict | list)
            if end < len(path):
                prefer_key = True  # the path itself is missing: point at the closest parent's key
            if prefer_key and prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
            return self.keys[prefix]
        return Mark(1, 1)

    def get(self, path: KeyPath) -> Any:
        """The data at ``path`` or ``None`` when the path does not exist."""
        current = self.data
        for part in path:
            found, current = child(current, part)
            if not found:
                return None
        return current

    def has(self, path: KeyPath) -> bool:
        """Whether ``path`` exists in the data."""
        current = self.data
        for part in path:
            found, current = child(current, part)
            if not found:
                return False
        return True

    def problem(self, path: KeyPath, message: str, hint: str = "", *, at_key: bool | None = None) -> Problem:
        """A :class:`Problem` located at ``path``."""
        where = self.mark(path, at_key=at_key)
        return Problem(
            file=self.file,
            line=where.line,
            column=where.column,
            path=render_path(path),
            message=message,
            hint=hint,
        )


# libyaml's parser when PyYAML was built with it (about 10× faster, same node marks); the
# pure-Python one otherwise. Both are the *safe* loader: no Python object construction.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeBase):  # type: ignore[valid-type,misc]
    """The safe loader; only its reader, composer, resolver and scalar constructors are used."""


def parse_document(text: str, *, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse YAML ``text``; the document (``None`` when nothing usable was read) and every problem."""
    try:
        # The reader checks the whole text for unprintable characters when it is created.
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        where = _offset_mark(text, exc.position)
        return None, [Problem(file, where.line, where.column, "", f"cannot read the file: {exc.reason}")]
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            return None, [_syntax_problem(exc, file)]
        except yaml.reader.ReaderError as exc:  # pragma: no cover - raised by the constructor above
            where = _offset_mark(text, exc.position)
            return None, [Problem(file, where.line, where.column, "", f"cannot read the file: {exc.reason}")]
        except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML parse error is marked
            return None, [Problem(file, 1, 1, "", f"invalid YAML: {exc}")]
        except RecursionError:
            return None, [Problem(file, 1, 1, "", "the YAML is nested too deeply to be a scenario")]
        if node is None:
            return None, [
                Problem(
                    file,
                    1,
                    1,
                    "",
                    "the file is empty; a scenario needs at least 'name', 'population', 'journeys' "
                    "and 'shoppers' or 'duration'",
                )
            ]
        builder = _Builder(loader, file)
        try:
            if _expanded_size(node, {}, set()) > MAX_NODES:
                raise _TooLarge
            data = builder.build(node, (), ())
        except _TooLarge:
            return None, [
                Problem(
                    file,
                    1,
                    1,
                    "",
                    f"the YAML expands to more than {MAX_NODES} values (aliases repeated too often?)",
                )
            ]
        except RecursionError:
            return None, [Problem(file, 1, 1, "", "the YAML is nested too deeply to be a scenario")]
        doc = Document(
            file=file, data=data, keys=builder.keys, values=builder.values, rejected=builder.rejected
        )
        return doc, builder.problems
    finally:
        loader.dispose()


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    what = exc.problem or "invalid YAML"
    context = ""
    if exc.context and exc.context_mark is not None:
        context = f" ({exc.context} at line {exc.context_mark.line + 1})"
    hint = ""
    if any(word in f"{what} {exc.context or ''}" for word in ("block", "indentation", "tab")):
        hint = "check the indentation of this line"
    return Problem(file, line, column, "", f"YAML syntax error: {what}{context}", hint)


def _offset_mark(text: str, position: int) -> Mark:
    before = text[:position]
    line = before.count("\n") + 1
    return Mark(line, position - (before.rfind("\n") + 1) + 1)


class _TooLarge(Exception):
    pass


def _expanded_size(node: Node, memo: dict[int, int], active: set[int]) -> int:
    """Values ``node`` expands to once aliases are copied, counted on the shared node graph."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active or not isinstance(node.value, list):
        return 1  # a scalar, or a recursive alias (the builder reports it)
    active.add(key)
    total = 1
    for item in node.value:
        for child in item if isinstance(item, tuple) else (item,):
            total += _expanded_size(child, memo, active)
            if total > MAX_NODES:
                break
    active.discard(key)
    memo[key] = total
    return total


class _Builder:
    """Builds plain data from a node tree, recording marks and collecting problems."""

    def __init__(self, loader: _Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.keys: dict[KeyPath, Mark] = {}
        self.values: dict[KeyPath, Mark] = {}
        self.problems: list[Problem] = []
        self.rejected: set[KeyPath] = set()
        self.count = 0

    def _problem(self, node: Node, path: KeyPath, message: str) -> None:
        self.rejected.add(path)
        mark = node.start_mark
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, render_path(path), message))

    def build(self, node: Node, path: KeyPath, stack: tuple[int, ...]) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        self.values[path] = Mark(node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in stack:
            self._problem(node, path, "an alias refers to one of its own parents (a recursive structure)")
            return None
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        inner = (*stack, id(node))
        if isinstance(node, SequenceNode):
            return [self.build(child, (*path, i), inner) for i, child in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path, inner)
        self._problem(node, path, "unsupported YAML node")  # pragma: no cover - PyYAML has three kinds
        return None  # pragma: no cover

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        if node.tag == _INT_TAG and not _DECIMAL.fullmatch(node.value):
            # YAML 1.1 reads 0x10 as 16, 010 as 8 and 1:30 as 90: never what a scenario means.
            self._problem(node, path, f"write whole numbers in decimal, got {_shown(node.value)}")
            return None
        try:
            value = self.loader.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            self._problem(node, path, f"cannot read this value: {exc.problem}")
            return None
        except ValueError as exc:
            # A date-time that matches YAML's pattern but is not a date (month 13, offset +25:00),
            # or an integer too long for Python to convert.
            self._problem(node, path, f"cannot read {_shown(node.value)}: {_reason(exc)}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self._problem(node, path, f"expected a finite number, got {node.value!r}")
            return None
        if isinstance(value, bytes):
            self._problem(node, path, "binary values are not supported in a scenario")
            return None
        return value

    def _mapping(self, node: MappingNode, path: KeyPath, stack: tuple[int, ...]) -> dict[str, Any]:
        # Duplicates are checked on the keys written in this mapping, before `<<` merges are
        # applied: a merged key overridden by an explicit one is YAML's documented intent.
        seen: dict[str, Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                continue
            name = key_node.value
            mark = Mark(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if name in seen:
                self.problems.append(
                    Problem(
                        self.file,
                        mark.line,
                        mark.column,
                        render_path((*path, name)),
                        f"duplicate key '{name}' (first written at line {seen[name].line}); "
                        "YAML would silently keep only the last one",
                    )
                )
            else:
                seen[name] = mark
        try:
            self.loader.flatten_mapping(node)
        except yaml.constructor.ConstructorError as exc:
            mark_ = exc.problem_mark or node.start_mark
            where = Mark(mark_.line + 1, mark_.column + 1)
            self.problems.append(
                Problem(self.file, where.line, where.column, render_path(path), f"bad merge: {exc.problem}")
            )
            node.value = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, path, "mapping keys must be plain names, not lists or mappings")
                continue
            # Keys are names (states, events, sources): keep the text as written, so `on:`,
            # `404:` or `2026-01-01:` stay strings instead of YAML 1.1 booleans, ints or dates.
            name = str(key_node.value)
            self.keys[(*path, name)] = Mark(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[name] = self.build(value_node, (*path, name), stack)
        return out


def _reason(exc: ValueError) -> str:
    """The constructor's complaint, in the scenario's terms."""
    text = str(exc)
    if text.startswith("offset must be"):
        return "the UTC offset must be less than 24 hours"
    if text.startswith("Exceeds the limit"):
        return "the number has too many digits"
    return text


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
