"""Load a scenario file: YAML → validated, frozen :class:`Scenario`, or every problem, located.

Steps: read the file; parse it with the safe loader keeping line/column marks
(:mod:`generator.scenario.document`); apply command-line overrides; validate once with the
pydantic model; check the cross-field rules (:mod:`generator.scenario.rules`). Every problem
of every step is collected and raised together as one :class:`ScenarioError`, sorted by line,
each naming ``file:line:column``, the key path, what was expected and, for a misspelt key,
state, event or enum value, the closest valid name::

    invalid scenario (2 problems):
      x.yaml:14:9: journeys.cart.states.view.next: transition probabilities sum to 1.2 (> 1): a 0.7 + b 0.5
      x.yaml:21:16: journeys.cart.states.pay.emit[0].track: tracked event 'Order Complete' is not
        in the tracking plan (did you mean 'Order Completed'?)         [one line, wrapped here]
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from generator.errors import COMMAND_LINE, Problem, ScenarioError
from generator.scenario.document import Document, KeyPath, child, parse_document, render_path
from generator.scenario.model import DURATION_TOO_BUSY, SHOPPERS_TOO_SLOW, Scenario
from generator.scenario.rules import check_rules, suggestion

__all__ = ["COMMAND_LINE", "load_scenario", "load_scenario_text"]


def load_scenario(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Read, validate and return the scenario at ``path``.

    ``overrides`` replace values of the file before validation, by dotted key path
    (``{"seed": 7, "shoppers": 100}``; ``None`` values are ignored); they are validated like
    the file and their problems are reported as given on the command line.

    Raises :class:`ScenarioError` carrying every problem found.
    """
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ScenarioError(_file_problem(file, "no such file")) from None
    except IsADirectoryError:
        raise ScenarioError(_file_problem(file, "is a directory, not a scenario file")) from None
    except OSError as exc:
        raise ScenarioError(_file_problem(file, f"cannot read the file: {exc.strerror or exc}")) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ScenarioError(
            Problem(file, line, column, "", "the file is not UTF-8 text (is it a YAML scenario?)")
        ) from None
    return load_scenario_text(text, file=file, overrides=overrides)


def load_scenario_text(
    text: str, *, file: str = "<string>", overrides: Mapping[str, Any] | None = None
) -> Scenario:
    """Validate scenario YAML given as text; ``file`` names it in problems. See :func:`load_scenario`."""
    doc, problems = parse_document(text, file=file)
    if doc is None:
        raise ScenarioError(_ordered(problems))
    if not isinstance(doc.data, dict):
        problems.append(
            doc.problem(
                (),
                f"a scenario is a mapping of sections (name:, population:, journeys:, ...), "
                f"got {_kind(doc.data)}",
            )
        )
        raise ScenarioError(_ordered(problems))
    overridden = _apply_overrides(doc, overrides or {}, problems)
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        problems.extend(translate_errors(doc, exc.errors(include_url=False), overridden=overridden))
    problems.extend(check_rules(doc))
    if problems or scenario is None:
        raise ScenarioError(_ordered(problems))
    return scenario


def _file_problem(file: str, message: str) -> Problem:
    return Problem(file=file, line=0, column=0, path="", message=message)


def _ordered(problems: Sequence[Problem]) -> list[Problem]:
    unique = dict.fromkeys(problems)
    return sorted(unique, key=lambda p: (p.file != COMMAND_LINE, p.line, p.column, p.path, p.message))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown)
    return repr(value)


# --------------------------------------------------------------------------- overrides


def _apply_overrides(doc: Document, overrides: Mapping[str, Any], problems: list[Problem]) -> list[KeyPath]:
    applied: list[KeyPath] = []
    for dotted, value in overrides.items():
        if value is None:
            continue
        parts: KeyPath = tuple(dotted.split("."))
        current = doc.data
        for part in parts[:-1]:
            nxt = current.get(part) if isinstance(current, dict) else None
            if nxt is None and isinstance(current, dict):
                nxt = current[part] = {}
            if not isinstance(nxt, dict):
                problems.append(
                    Problem(COMMAND_LINE, 0, 0, dotted, f"cannot set '{dotted}': '{part}' is not a mapping")
                )
                break
            current = nxt
        else:
            current[parts[-1]] = value
            applied.append(parts)
    return applied


# --------------------------------------------------------------------------- pydantic errors


@dataclass(frozen=True, slots=True)
class _Entry:
    """One pydantic error resolved against the data."""

    error: ErrorDetails
    path: KeyPath
    """The deepest part of the error location that exists in the data."""
    site: KeyPath | None
    """Where the location left the data (a union branch or a shorthand), ``None`` if it never did."""
    at_key: bool
    """The error is about a mapping key itself (``[key]`` in pydantic's location)."""


def translate_errors(
    doc: Document, errors: Sequence[ErrorDetails], *, overridden: Sequence[KeyPath] = ()
) -> list[Problem]:
    """Turn pydantic errors (validated against ``doc.data`` as a :class:`Scenario`) into located problems.

    Errors from the branches of one union (``frequency: once | {once_per: ...}``) are merged:
    the branch that got deepest into the data wins; equally shallow branches are combined
    into one "expected A or B" message.
    """
    # The rules report probability sums in every state, even one the model stopped checking.
    entries = [_resolve(doc, e) for e in errors if not _is_sum_error(e)]
    entries = [e for e in entries if not any(e.path[: len(r)] == r for r in doc.rejected)]
    groups: dict[KeyPath, list[_Entry]] = {}
    problems: list[Problem] = []
    for entry in entries:
        if entry.site is None:
            problems.append(_problem(doc, [entry], overridden))
        else:
            groups.setdefault(entry.site, []).append(entry)
    for group in groups.values():
        depth = max(len(e.path) for e in group)
        deepest = [e for e in group if len(e.path) == depth]
        by_path: dict[tuple[KeyPath, bool], list[_Entry]] = {}
        for entry in deepest:
            by_path.setdefault((entry.path, entry.at_key), []).append(entry)
        for same in by_path.values():
            problems.append(_problem(doc, same, overridden))
    return problems


def _is_sum_error(error: ErrorDetails) -> bool:
    return error["type"] == "value_error" and str(error["msg"]).startswith(
        "Value error, transition probabilities sum"
    )


def _resolve(doc: Document, error: ErrorDetails) -> _Entry:
    loc = tuple(error["loc"])
    if error["type"] == "missing":
        loc = loc[:-1]
    current = doc.data
    path: list[str | int] = []
    site: KeyPath | None = None
    at_key = False
    for step in loc:
        if step == "[key]":
            at_key = True
            continue
        found, value = child(current, step)
        if found:
            current = value
            path.append(step)
        elif site is None:
            site = tuple(path)
    return _Entry(error=error, path=tuple(path), site=site, at_key=at_key)


def _problem(doc: Document, entries: list[_Entry], overridden: Sequence[KeyPath]) -> Problem:
    first = entries[0]
    path = first.path
    if len(entries) == 1:
        message, hint = _describe(doc, first)
    else:
        expected: list[str] = []
        hints: list[str] = []
        others: list[str] = []
        for entry in entries:
            want = _expected(entry.error)
            if want is not None and want not in expected:
                expected.append(want)
            else:
                msg, _ = _describe(doc, entry)
                if msg not in others:
                    others.append(msg)
            _, hint_ = _describe(doc, entry)
            if hint_ and hint_ not in hints:
                hints.append(hint_)
        parts = []
        if expected:
            parts.append(f"expected {' or '.join(expected)}, got {_kind(first.error['input'])}")
        parts.extend(others)
        message = "; ".join(parts)
        hint = "; ".join(hints)
    if first.error["type"] != "missing" and not first.at_key:
        path = _refine(doc, path, message)
    for prefix in overridden:
        if path[: len(prefix)] == prefix:
            return Problem(COMMAND_LINE, 0, 0, render_path(path), message, hint)
    on_key = first.at_key or first.error["type"] in ("missing", "extra_forbidden")
    return doc.problem(path, message, hint, at_key=True if on_key else None)


_MODEL_ERROR_KEYS = {
    "transition probabilities sum": "next",
    "a scenario needs at least one journey": "journeys",
    SHOPPERS_TOO_SLOW: "shoppers",
    DURATION_TOO_BUSY: "duration",
}
"""Model-level errors (``model_validator``) that are about one key of their mapping."""

_QUOTED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)'")


def _refine(doc: Document, path: KeyPath, message: str) -> KeyPath:
    """Point a model-level error at the one key it is about (``repeat 'max' must ...`` → ``.max``)."""
    value = doc.get(path)
    if not isinstance(value, dict):
        return path
    for prefix, key in _MODEL_ERROR_KEYS.items():
        if message.startswith(prefix) and key in value:
            return (*path, key)
    named = {m for m in _QUOTED.findall(message) if m in value}
    if len(named) == 1 and len(set(_QUOTED.findall(message))) == 1:
        return (*path, named.pop())
    return path


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
    "datetime_type": "an ISO-8601 date-time such as 2026-11-02T00:00:00Z",
    "datetime_parsing": "an ISO-8601 date-time such as 2026-11-02T00:00:00Z",
    "datetime_from_date_parsing": "an ISO-8601 date-time such as 2026-11-02T00:00:00Z",
}

_PATTERNS = {
    r"^[A-Za-z0-9_.-]+$": "only letters, digits, '_', '.' and '-'",
    r"^[A-Z]{3}$": "a three-letter ISO currency code such as USD",
    r"^https?://[^/\s]+$": "an http(s) origin without a path, such as https://shop.example.com",
    r"^[a-z0-9.-]+\.[a-z]{2,}$": "a lower-case domain name such as example.com",
}


def _literal_values(error: ErrorDetails) -> list[str]:
    ctx = error.get("ctx") or {}
    return re.findall(r"'([^']*)'", str(ctx.get("expected", "")))


def _expected(error: ErrorDetails) -> str | None:
    kind = error["type"]
    if kind in ("literal_error", "enum"):
        values = _literal_values(error)
        if not values:
            return None
        return "one of " + ", ".join(f"'{v}'" for v in values) if len(values) > 1 else f"'{values[0]}'"
    return _EXPECTED.get(kind)


def _describe(doc: Document, entry: _Entry) -> tuple[str, str]:
    """(message, hint) for one pydantic error."""
    error = entry.error
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error["input"]
    if kind == "missing":
        key = error["loc"][-1]
        return f"missing required key '{key}'", ""
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        allowed = _allowed_keys(tuple(error["loc"][:-1]))
        return f"unknown key '{key}'", suggestion(key, allowed, "allowed keys") if allowed else ""
    if kind in ("literal_error", "enum"):
        values = _literal_values(error)
        want = _expected(error)
        hint = suggestion(value, values, "valid values") if isinstance(value, str) else ""
        if hint.startswith("valid values"):
            hint = ""
        if entry.at_key:
            return f"unknown key {_kind(value)}; expected {want}", hint
        return f"expected {want}, got {_kind(value)}", hint
    if kind == "string_type" and isinstance(value, bool):
        return (
            f"expected a string, got {_kind(value)}",
            "YAML reads yes/no/on/off/true/false as booleans: put the text in quotes",
        )
    if kind == "string_type" and isinstance(value, int | float):
        return f"expected a string, got {_kind(value)}", f"put it in quotes: '{value}'"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_kind(value)}", ""
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", error["msg"]))
        return text, ""
    bounds = {
        "greater_than_equal": ("ge", "must be at least {}"),
        "greater_than": ("gt", "must be greater than {}"),
        "less_than_equal": ("le", "must be at most {}"),
        "less_than": ("lt", "must be less than {}"),
    }
    if kind in bounds:
        name, template = bounds[kind]
        bound = ctx.get(name)
        shown = f"{bound:g}" if isinstance(bound, float) else bound
        return f"{template.format(shown)}, got {_kind(value)}", ""
    if kind == "string_too_short":
        return ("must not be empty" if ctx.get("min_length") == 1 else error["msg"]), ""
    if kind == "string_too_long":
        return f"is longer than {ctx.get('max_length')} characters", ""
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)", ""
    if kind == "too_long":
        return f"has more than {ctx.get('max_length')} items", ""
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        want = _PATTERNS.get(pattern, f"text matching {pattern}")
        return f"expected {want}, got {_kind(value)}", ""
    return str(error["msg"]), ""


# --------------------------------------------------------------------------- model field names


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str] | None:
    """The field names of the model at a pydantic location, for did-you-mean on unknown keys."""
    current: list[Any] = [Scenario]
    for step in loc:
        current = [t for tp in current for t in _step(tp, step)]
        if not current:
            return None
    models = [t for tp in current for t in _members(tp) if isinstance(t, type) and issubclass(t, BaseModel)]
    if not models:
        return None
    return list(models[0].model_fields)


def _members(tp: Any) -> list[Any]:
    """The alternatives of a type, with ``Annotated`` and unions unwrapped."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for arg in typing.get_args(tp) for m in _members(arg)]
    return [tp]


def _step(tp: Any, step: str | int) -> list[Any]:
    out: list[Any] = []
    for member in _members(tp):
        origin = typing.get_origin(member)
        args = typing.get_args(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            if step == member.__name__:
                out.append(member)  # a union branch tag
            elif isinstance(step, str) and step in member.model_fields:
                out.append(member.model_fields[step].annotation)
        elif origin is dict and args:
            out.append(args[0] if step == "[key]" else args[1])
        elif origin in (tuple, list) and args and isinstance(step, int):
            out.append(args[0])
    return out
