"""Golden campaign cases through the expectation engine (interfaces.md, "Golden campaign cases").

The same ``tests/golden/campaign_cases/*.yaml`` files the emulator must satisfy over HTTP
(``test_emulator_golden.py``) are converted here to :class:`~generator.events.Delivery` records
in arrival order and run through ``expectations(basis="delivered")``; the SEND expectations due
by ``end`` must equal the case's ``sends`` exactly (as a multiset). Two independent
implementations of the campaign rules, pinned to the same hand-written answers.

Conversion: ``at`` → arrival (t0 + at), ``ts`` → event timestamp (default ``at``), ``identify`` /
``track`` / ``page`` / ``screen`` → the call type, ``id`` → event id (generated when absent),
``traits``/``properties`` → properties; ``merge: {primary, secondary}`` →
``DeliveredEngine.merge``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.durations import parse_duration
from generator.events import CallType, Delivery, Event, Outcome, Source
from generator.expect import DeliveredEngine, expectations
from generator.scenario.model import Scenario

CASES = sorted((Path(__file__).parent / "campaign_cases").glob("*.yaml"))


def offset_ms(value: Any) -> int:
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_duration(value.strip()[1:])
    return parse_duration(value)


def t0_ms(value: Any) -> int:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


def scenario_for(campaigns: dict[str, Any]) -> Scenario:
    """A minimal scenario carrying only the case's campaigns (the engine reads nothing else)."""
    return Scenario.model_validate(
        {
            "name": "golden",
            "shoppers": 1,
            "population": {"arrivals": {"rate_per_hour": 1}},
            "journeys": {"j": {"start": "s", "states": {"s": {}}}},
            "campaigns": campaigns,
        }
    )


def delivery_for(call: dict[str, Any], t0: int, index: int) -> Delivery:
    at = offset_ms(call.get("at", 0))
    ts = offset_ms(call["ts"]) if "ts" in call else at
    if "identify" in call:
        kind, name, user = CallType.IDENTIFY, "", str(call["identify"])
        props = call.get("traits", {}) or {}
    else:
        kind = next(k for k in (CallType.TRACK, CallType.PAGE, CallType.SCREEN) if k.value in call)
        name = str(call[kind.value])
        user = str(call["user_id"]) if call.get("user_id") is not None else None
        props = call.get("properties", {}) or {}
    event_id = str(call["id"]) if call.get("id") is not None else f"golden-{index}"
    event = Event(
        id=event_id,
        shopper=0,
        seq=index,
        type=kind,
        name=name,
        timestamp_ms=t0 + ts,
        user_id=user,
        anonymous_id=call.get("anonymous_id"),
        properties=props,
        context={},
        source=Source.WEB,
    )
    return Delivery(event=event, truth_id=event_id, arrival_ms=t0 + at)


def run_case(path: Path) -> tuple[list[tuple[str, str, str, int]], list[tuple[str, str, str, int]]]:
    """(expected sends, sends the expectation engine predicts) for one case."""
    case = yaml.safe_load(path.read_text())
    scenario = scenario_for(case["campaigns"])
    t0 = t0_ms(case["t0"])
    end = t0 + offset_ms(case["end"])
    calls = sorted(enumerate(case["calls"]), key=lambda ic: offset_ms(ic[1].get("at", 0)))
    engine = DeliveredEngine(scenario)
    produced = []
    for index, call in calls:
        if "merge" in call:
            merge = call["merge"]
            at = t0 + offset_ms(call.get("at", 0))
            produced += engine.merge(str(merge["primary"]), str(merge["secondary"]), at)
            continue
        produced += engine.feed(delivery_for(call, t0, index))
    produced += list(engine.finish())
    predicted = [
        (e.campaign, e.person, e.trigger_event_id, (e.send_ms or 0) - t0)
        for e in produced
        if e.outcome is Outcome.SEND and e.send_ms is not None and e.send_ms <= end
    ]
    expected = [
        (s["campaign"], str(s["person"]), str(s["trigger"]), offset_ms(s["at"]))
        for s in case.get("sends") or []
    ]
    return expected, predicted


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    expected, predicted = run_case(path)
    assert Counter(predicted) == Counter(expected), path.name


def test_cases_exist() -> None:
    assert len(CASES) >= 12


def test_expectations_function_agrees_with_the_engine_on_merge_free_cases() -> None:
    """The public ``expectations()`` wrapper gives the same sends as driving the engine directly."""
    for path in CASES:
        case = yaml.safe_load(path.read_text())
        if any("merge" in call for call in case["calls"]):
            continue
        t0 = t0_ms(case["t0"])
        end = t0 + offset_ms(case["end"])
        calls = sorted(enumerate(case["calls"]), key=lambda ic: offset_ms(ic[1].get("at", 0)))
        plan = [delivery_for(call, t0, index) for index, call in calls]
        sends = Counter(
            (e.campaign, e.person, e.trigger_event_id, (e.send_ms or 0) - t0)
            for e in expectations(scenario_for(case["campaigns"]), plan, basis="delivered")
            if e.outcome is Outcome.SEND and (e.send_ms or 0) <= end
        )
        assert sends == Counter(run_case(path)[0]), path.name
