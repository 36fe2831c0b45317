"""Cross-field rules of a scenario: names that must refer to something defined elsewhere.

The pydantic model checks each section on its own; these rules check how sections refer to
each other (a transition's target state, a tracked event and the tracking plan, a campaign's
events, a fault's scope, a threshold's campaign, ...). They run on the *raw* parsed data
rather than the validated model so they still report when another part of the file is
invalid: the user gets every problem in one pass. Anything malformed is skipped here (the
model reports it); defaults are the model's own.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from generator.errors import Problem
from generator.scenario.document import Document, KeyPath
from generator.scenario.model import (
    PROPERTY_SOURCES,
    Filter,
    FilterOp,
    Identity,
    Population,
    PropertySpec,
    Threshold,
    default_events,
)

PER_CAMPAIGN_METRICS = frozenset(
    {
        "trigger_recall",
        "false_triggers",
        "duplicate_entries",
        "suppression_violations",
        "suppression_violation_rate",
        "delivered_recall",
        "send_time_error_p50_ms",
        "send_time_error_p95_ms",
    }
)
"""Metrics whose ``[scope]`` names a campaign."""

SCOPED_FAULTS = (
    "latency",
    "retry_duplicates",
    "double_fires",
    "drops",
    "schema_drift",
    "name_drift",
    "clock_skew",
    "out_of_order",
    "oversize",
)
"""Fault lists whose entries take an ``events:`` scope."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (case-insensitive first), or ``None`` if none is close."""
    options = [c for c in candidates if isinstance(c, str)]
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return lowered[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def suggestion(word: str, candidates: Iterable[str], known: str, *, limit: int = 12) -> str:
    """A hint: ``did you mean 'X'?`` or the list of ``known`` names when nothing is close."""
    options = [c for c in candidates if isinstance(c, str)]
    close = did_you_mean(word, options)
    if close is not None:
        return f"did you mean '{close}'?"
    if not options:
        return f"there are no {known}"
    shown = ", ".join(f"'{c}'" for c in options[:limit])
    more = f", ... ({len(options)} in all)" if len(options) > limit else ""
    return f"{known}: {shown}{more}"


def check_rules(doc: Document) -> list[Problem]:
    """Every cross-field problem in the document (unsorted)."""
    root = doc.data if isinstance(doc.data, dict) else {}
    ctx = _Context(doc, root)
    problems: list[Problem] = []
    for rule in (_journeys, _audiences, _plan_properties, _campaigns, _faults, _thresholds):
        problems.extend(rule(ctx))
    return problems


class _Context:
    """The raw data plus the name tables the rules compare against (model defaults applied)."""

    def __init__(self, doc: Document, root: dict[str, Any]) -> None:
        self.doc = doc
        self.root = root
        self.plan_events = _plan_events(root.get("tracking_plan", "default"))
        self.points = _names(_section(root, "identity", "points"), lambda: Identity().points)
        self.sources = _names(
            _section(root, "population", "sources"),
            lambda: _default_factory(Population, "sources"),
        )
        campaigns = root.get("campaigns", {})
        self.campaigns = list(campaigns) if isinstance(campaigns, dict) else None

    def unknown_event(self, path: KeyPath, name: Any, role: str) -> Iterator[Problem]:
        """A problem when ``name`` is a string that is not an event of the tracking plan."""
        if self.plan_events is None or not isinstance(name, str) or name in self.plan_events:
            return
        hint = suggestion(name, self.plan_events, "tracking plan events")
        if did_you_mean(name, self.plan_events) is None:
            hint += "; add it under tracking_plan.events"
        yield self.doc.problem(path, f"{role} '{name}' is not in the tracking plan", hint)


_MISSING = object()


def _section(root: Mapping[str, Any], *path: str) -> Any:
    """The raw value at ``path``; ``_MISSING`` when absent (→ model default), ``None`` when unusable."""
    current: Any = root
    for part in path:
        if not isinstance(current, dict):
            return None
        if part not in current:
            return _MISSING
        current = current[part]
    return current


def _names(value: Any, default: Callable[[], Mapping[Any, Any]]) -> list[str] | None:
    if value is _MISSING:
        return [str(k) for k in default()]
    if isinstance(value, dict):
        return list(value)
    return None  # malformed: the model reports it; skip the rules that need it


def _default_factory(model: Any, name: str) -> Mapping[str, Any]:
    factory = model.model_fields[name].default_factory
    assert factory is not None
    result: Mapping[str, Any] = factory()
    return result


def _plan_events(plan: Any) -> dict[str, Any] | None:
    """Event name → raw spec (``None`` for a default event); ``None`` when the plan is unusable."""
    if plan == "default":
        return dict.fromkeys(default_events())
    if not isinstance(plan, dict):
        return None
    # An unreadable `extends` is reported by the model; assume the default meanwhile so one
    # typo does not turn every event in the file into a second error.
    base: dict[str, Any] = {} if plan.get("extends") == "none" else dict.fromkeys(default_events())
    own = plan.get("events", {})
    if isinstance(own, dict):
        base.update(own)
    return base


# --------------------------------------------------------------------------- journeys


def _probability(value: Any) -> float | None:
    """The p of a raw transition (``0.3`` or ``{p: 0.3, think: ...}``), ``None`` if unreadable."""
    if isinstance(value, dict):
        value = value.get("p")
    if isinstance(value, str):  # pydantic's lax mode reads "0.3" as a number too
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        return None
    return float(value)


def _journeys(ctx: _Context) -> Iterator[Problem]:
    journeys = ctx.root.get("journeys")
    if not isinstance(journeys, dict):
        return
    for name, journey in journeys.items():
        if isinstance(journey, dict):
            yield from _journey(ctx, ("journeys", name), journey)


@dataclass(slots=True)
class _Graph:
    """A journey's transitions with p > 0, as far as they could be read."""

    edges: dict[str, list[str]]
    leaves: set[str] = field(default_factory=set)
    """States with a chance to leave (``Σp < 1``)."""
    readable: bool = True
    """False when some state or probability is malformed: skip the graph rules (the model reports it)."""


def _journey(ctx: _Context, path: KeyPath, journey: dict[str, Any]) -> Iterator[Problem]:
    source = journey.get("source")
    if isinstance(source, str) and ctx.sources is not None and source not in ctx.sources:
        yield ctx.doc.problem(
            (*path, "source"),
            f"traffic source '{source}' is not in population.sources",
            suggestion(source, ctx.sources, "sources"),
        )
    states = journey.get("states")
    if not isinstance(states, dict):
        return
    graph = _Graph(edges={s: [] for s in states})
    for state_name, state in states.items():
        spath = (*path, "states", state_name)
        if state is None:
            graph.leaves.add(state_name)
        elif not isinstance(state, dict):
            graph.readable = False
        else:
            yield from _emits(ctx, spath, state.get("emit"))
            yield from _transitions(ctx, spath, state_name, state.get("next", {}), graph)
    start = journey.get("start")
    if not isinstance(start, str):
        return
    if start not in states:
        yield ctx.doc.problem(
            (*path, "start"),
            f"start state '{start}' is not defined",
            suggestion(start, list(states), "states"),
        )
    elif graph.readable:
        yield from _reachability(ctx, path, start, graph)


def _transitions(
    ctx: _Context, spath: KeyPath, state_name: str, nxt: Any, graph: _Graph
) -> Iterator[Problem]:
    """Unknown targets and sums above 1 of one state's ``next``; records its edges in ``graph``."""
    if not isinstance(nxt, dict):
        graph.readable = False
        return
    names = list(graph.edges)
    total = 0.0
    parts: list[str] = []
    for target, transition in nxt.items():
        p = _probability(transition)
        parts.append(f"{target} {p:g}" if p is not None else "")
        total += p or 0.0
        if p is None:
            graph.readable = False
        if target not in graph.edges:
            intended = did_you_mean(target, names)
            hint = suggestion(target, names, "states of this journey")
            if intended is not None and p:
                # Judge reachability as if the typo were fixed: one mistake, one message.
                graph.edges[state_name].append(intended)
            if target == "leave" and intended is None:
                hint = "no 'leave' state is needed: the remainder 1 − Σp of 'next' is the chance to leave"
            yield ctx.doc.problem(
                (*spath, "next", target), f"transition to unknown state '{target}'", hint, at_key=True
            )
        elif p:
            graph.edges[state_name].append(target)
    if all(parts) and total > 1.0 + 1e-9:
        # Also a model rule, but the model skips it when anything else in the state is
        # invalid; checked here so it is always reported (the loader drops the model's copy).
        yield ctx.doc.problem(
            (*spath, "next"),
            f"transition probabilities sum to {total:g} (> 1): {' + '.join(parts)}",
            at_key=True,
        )
    if total < 1.0 - 1e-9:
        graph.leaves.add(state_name)


def _reachability(ctx: _Context, path: KeyPath, start: str, graph: _Graph) -> Iterator[Problem]:
    """States never reached from ``start``, and reachable states from which no walk ever leaves."""
    names = list(graph.edges)
    reachable = _closure([start], graph.edges)
    for state_name in names:
        if state_name not in reachable:
            yield ctx.doc.problem(
                (*path, "states", state_name),
                f"state '{state_name}' is unreachable from the start state '{start}'",
                "no transition with p > 0 leads to it",
                at_key=True,
            )
    reverse: dict[str, list[str]] = {s: [] for s in names}
    for source_state, targets in graph.edges.items():
        for target in targets:
            reverse[target].append(source_state)
    can_leave = _closure(sorted(graph.leaves), reverse)
    trapped = [s for s in names if s in reachable and s not in can_leave]
    if trapped:
        listed = ", ".join(f"'{s}'" for s in trapped)
        yield ctx.doc.problem(
            (*path, "states", trapped[0]),
            f"a shopper who reaches {listed} can never leave: their transitions always sum to 1 "
            "and lead back among themselves",
            "let one of them leave: make its 'next' probabilities sum below 1",
            at_key=True,
        )


def _closure(seeds: list[str], edges: Mapping[str, list[str]]) -> set[str]:
    seen = set(seeds)
    todo = list(seeds)
    while todo:
        for target in edges.get(todo.pop(), []):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _emits(ctx: _Context, path: KeyPath, emit: Any) -> Iterator[Problem]:
    if not isinstance(emit, list):
        return
    for i, call in enumerate(emit):
        if not isinstance(call, dict):
            continue
        cpath = (*path, "emit", i)
        yield from ctx.unknown_event((*cpath, "track"), call.get("track"), "tracked event")
        point = call.get("identify")
        if isinstance(point, str) and ctx.points is not None and point not in ctx.points:
            yield ctx.doc.problem(
                (*cpath, "identify"),
                f"identify point '{point}' is not in identity.points",
                suggestion(point, ctx.points, "identify points"),
            )


def _audiences(ctx: _Context) -> Iterator[Problem]:
    journeys = ctx.root.get("journeys")
    if not isinstance(journeys, dict) or not journeys:
        return
    audiences: set[str] = set()
    for journey in journeys.values():
        if not isinstance(journey, dict):
            return
        weight = journey.get("weight", 1.0)
        audience = journey.get("audience", "any")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not isinstance(audience, str):
            return
        if audience not in ("new", "returning", "any"):
            return  # the model reports the value; guessing here would add a second error
        if weight > 0:
            audiences.add(audience)
    share = _section(ctx.root, "population", "returning_share")
    if share is _MISSING:
        share = Population.model_fields["returning_share"].default
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        return
    if share > 0 and not audiences & {"returning", "any"}:
        path: KeyPath = ("population", "returning_share")
        if not ctx.doc.has(path):
            path = ("journeys",)
        yield ctx.doc.problem(
            path,
            f"{share:.0%} of shoppers are returning customers but no journey (with weight > 0) "
            "has audience 'returning' or 'any'",
            "add such a journey or set population.returning_share: 0",
        )
    if share < 1 and not audiences & {"new", "any"}:
        yield ctx.doc.problem(
            ("journeys",),
            f"{1 - share:.0%} of shoppers are new but no journey (with weight > 0) "
            "has audience 'new' or 'any'",
            "add such a journey or set population.returning_share: 1",
            at_key=True,
        )


# --------------------------------------------------------------------------- tracking plan


def _required(spec: Any) -> bool | None:
    try:
        return PropertySpec.model_validate(spec).required
    except ValueError:
        return None


def _plan_properties(ctx: _Context) -> Iterator[Problem]:
    plan = ctx.root.get("tracking_plan")
    if not isinstance(plan, dict):
        return
    known = sorted(PROPERTY_SOURCES)
    tables: list[tuple[KeyPath, Any, str]] = []
    events = plan.get("events")
    if isinstance(events, dict):
        for name, spec in events.items():
            if isinstance(spec, dict):
                path: KeyPath = ("tracking_plan", "events", name, "properties")
                tables.append((path, spec.get("properties"), f"'{name}'"))
    tables.append((("tracking_plan", "page"), plan.get("page"), "page events"))
    for where, props, owner in tables:
        if not isinstance(props, dict):
            continue
        for prop, spec in props.items():
            if _required(spec) and prop not in PROPERTY_SOURCES:
                close = did_you_mean(prop, known)
                hint = (
                    f"did you mean '{close}'?"
                    if close
                    else "make it optional ('string?') or use a property the simulator fills"
                )
                yield ctx.doc.problem(
                    (*where, prop),
                    f"required property '{prop}' of {owner} is one the simulator cannot fill",
                    hint,
                    at_key=True,
                )


# --------------------------------------------------------------------------- campaigns


def _campaigns(ctx: _Context) -> Iterator[Problem]:
    campaigns = ctx.root.get("campaigns")
    if not isinstance(campaigns, dict):
        return
    for name, campaign in campaigns.items():
        if not isinstance(campaign, dict):
            continue
        path: KeyPath = ("campaigns", name)
        trigger = campaign.get("trigger")
        if isinstance(trigger, dict):
            event = trigger.get("event")
            yield from ctx.unknown_event((*path, "trigger", "event"), event, "trigger event")
            yield from _filters(ctx, (*path, "trigger", "where"), event, trigger.get("where"))
            behavior = trigger.get("behavior")
            if isinstance(behavior, dict):
                bpath = (*path, "trigger", "behavior")
                yield from ctx.unknown_event((*bpath, "event"), behavior.get("event"), "behavior event")
                yield from _event_list(ctx, (*bpath, "and_not"), behavior.get("and_not"), "and_not event")
        yield from _event_list(ctx, (*path, "exit_on"), campaign.get("exit_on"), "exit_on event")


def _event_list(ctx: _Context, path: KeyPath, names: Any, role: str) -> Iterator[Problem]:
    if isinstance(names, list):
        for i, name in enumerate(names):
            yield from ctx.unknown_event((*path, i), name, role)


def _filters(ctx: _Context, path: KeyPath, event: Any, where: Any) -> Iterator[Problem]:
    """A filter on a property the trigger event never carries, or of another type, never matches."""
    if not isinstance(where, list) or ctx.plan_events is None or not isinstance(event, str):
        return
    if event not in ctx.plan_events:
        return
    properties = _event_properties(ctx.plan_events[event], event)
    if properties is None:
        return
    for i, raw in enumerate(where):
        try:
            condition = Filter.model_validate(raw)
        except ValueError:
            continue
        top = condition.field.split(".", 1)[0]
        if top not in properties:
            yield ctx.doc.problem(
                (*path, i),
                f"filter property '{top}' is not a property of '{event}' in the tracking plan, "
                "so the filter could never match",
                suggestion(top, properties, f"properties of '{event}'"),
            )
            continue
        kind = properties[top]
        if top != condition.field or kind is None or condition.op not in (FilterOp.EQ, FilterOp.IN):
            continue
        values = condition.value if condition.op is FilterOp.IN else [condition.value]
        wrong = [v for v in values if not _fits(v, kind)]
        if wrong:
            yield ctx.doc.problem(
                (*path, i),
                f"filter compares the {kind} property '{top}' with {wrong[0]!r}; comparisons are "
                "type-strict, so the filter could never match",
                _retype_hint(wrong[0], kind),
            )


def _retype_hint(value: Any, kind: str) -> str:
    if kind == "string":
        return f"write it as a string: '{value}'"
    if kind in ("number", "integer") and isinstance(value, str):
        try:
            return f"write it as a bare number: {float(value):g}"
        except ValueError:
            return ""
    return ""


def _fits(value: Any, kind: str) -> bool:
    """Whether a filter literal can equal a property value of the planned JSON type."""
    if kind == "string":
        return isinstance(value, str)
    if kind in ("number", "integer"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return True  # arrays and objects: not compared by value here


def _event_properties(spec: Any, event: str) -> dict[str, str | None] | None:
    """Property name → planned type (``None`` if unreadable); ``None`` if the table is unusable."""
    if spec is None:
        if event not in default_events():
            return None
        return {name: prop.type for name, prop in default_events()[event].properties.items()}
    if not isinstance(spec, dict):
        return None
    props = spec.get("properties", {})
    if not isinstance(props, dict):
        return None
    out: dict[str, str | None] = {}
    for name, prop in props.items():
        try:
            out[name] = PropertySpec.model_validate(prop).type
        except ValueError:
            out[name] = None
    return out


# --------------------------------------------------------------------------- faults and thresholds


def _faults(ctx: _Context) -> Iterator[Problem]:
    faults = ctx.root.get("faults")
    if not isinstance(faults, dict):
        return
    for kind in SCOPED_FAULTS:
        entries = faults.get(kind)
        if not isinstance(entries, list):
            continue
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            path: KeyPath = ("faults", kind, i)
            yield from _event_list(ctx, (*path, "events"), entry.get("events"), "scoped event")
            rename = entry.get("rename")
            if kind == "name_drift" and isinstance(rename, dict):
                for old in rename:
                    yield from ctx.unknown_event((*path, "rename", old), old, "renamed event")


def _thresholds(ctx: _Context) -> Iterator[Problem]:
    expect = ctx.root.get("expect")
    if not isinstance(expect, list) or ctx.campaigns is None:
        return
    for i, raw in enumerate(expect):
        try:
            threshold = Threshold.model_validate(raw)
        except ValueError:
            continue
        wrong = scope_problem(threshold, ctx.campaigns)
        if wrong is not None:
            yield ctx.doc.problem(("expect", i), f"threshold '{raw}' {wrong[0]}", wrong[1])


def scope_problem(threshold: Threshold, campaigns: Collection[str]) -> tuple[str, str] | None:
    """What is wrong with a threshold's ``[scope]`` in a scenario with these ``campaigns``, as
    (message, hint), or ``None``: only per-campaign metrics take one, and it names a campaign."""
    scope = threshold.scope
    if scope is None:
        return None
    if threshold.metric not in PER_CAMPAIGN_METRICS:
        known = "per-campaign metrics: " + ", ".join(sorted(PER_CAMPAIGN_METRICS))
        return f"scopes {threshold.metric}, which has no per-campaign values", known
    if scope not in campaigns:
        return f"names campaign '{scope}', which is not defined", suggestion(scope, campaigns, "campaigns")
    return None
