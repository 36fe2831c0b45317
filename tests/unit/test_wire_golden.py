"""Every wire encoder against the documented example payloads (reference/customerio.md §2–4, §14).

Inputs and the documented examples live in ``tests/golden/wire/<api>.json``; each case checks

1. the documented example is contained in what we send (every documented key with its value,
   recursively; extra keys of ours are allowed, documented deviations are listed per case in
   ``doc_differs`` with the reason), and
2. the exact bytes we send, pinned in ``tests/golden/wire/<api>.expected.ndjson``.

Regenerate the pinned bytes after an intended change with
``SHOPSIM_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_wire_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from generator.events import CallType, Event, Source
from generator.wire import delivery_line, encoder_for, ndjson_line
from generator.wire.track_v1 import TrackV1Encoder

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "wire"
UPDATE = os.environ.get("SHOPSIM_UPDATE_GOLDEN") == "1"
APIS = ("track-v1", "track-v2", "pipelines", "browser")


def make_event(spec: dict[str, Any]) -> Event:
    return Event(
        id=spec["id"],
        shopper=spec.get("shopper", 0),
        seq=spec.get("seq", 0),
        type=CallType(spec["type"]),
        name=spec.get("name", ""),
        timestamp_ms=spec["timestamp_ms"],
        user_id=spec.get("user_id"),
        anonymous_id=spec.get("anonymous_id"),
        properties=spec.get("properties", {}),
        context=spec.get("context", {}),
        source=Source(spec.get("source", "web")),
    )


def journey() -> list[Event]:
    data = orjson.loads((GOLDEN / "journey.json").read_bytes())
    return [make_event(e) for e in data["events"]]


def load_cases(api: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = orjson.loads((GOLDEN / f"{api.replace('-', '_')}.json").read_bytes())[
        "cases"
    ]
    return cases


def render(api: str, case: dict[str, Any]) -> dict[str, Any]:
    options = case.get("options", {})
    encoder = TrackV1Encoder(**options) if api == "track-v1" and options else encoder_for(api)
    if case.get("journey_batch"):
        requests = encoder.batches(journey())
        assert len(requests) == 1
        request = requests[0]
    else:
        event = journey()[case["journey"]] if "journey" in case else make_event(case["event"])
        request = encoder.encode(event)
    return {
        "method": request.method,
        "path": request.path,
        "content_type": request.content_type,
        "body": orjson.loads(request.body),
        "event_ids": list(request.event_ids),
        "oversize": request.oversize,
        "_bytes": request.body,
    }


def assert_contains(doc: Any, ours: Any, path: str, differs: dict[str, str]) -> None:
    """Every documented key/value appears in ours (dicts recursively, lists element-wise)."""
    if path in differs:
        return
    if isinstance(doc, dict):
        assert isinstance(ours, dict), f"{path}: documented an object, we send {ours!r}"
        for key, value in doc.items():
            sub = f"{path}.{key}" if path else key
            if sub in differs:
                continue
            assert key in ours, f"{sub}: documented key missing from our request"
            assert_contains(value, ours[key], sub, differs)
    elif isinstance(doc, list):
        assert isinstance(ours, list) and len(ours) == len(doc), f"{path}: list differs"
        for i, (d, o) in enumerate(zip(doc, ours, strict=True)):
            assert_contains(d, o, f"{path}[{i}]", differs)
    else:
        assert doc == ours and type(doc) is type(ours), f"{path}: documented {doc!r}, we send {ours!r}"


CASES = [(api, case) for api in APIS for case in load_cases(api)]


@pytest.mark.parametrize(("api", "case"), CASES, ids=[f"{a}:{c['case'][:40]}" for a, c in CASES])
def test_matches_documented_example(api, case):
    ours = render(api, case)
    differs = case.get("doc_differs", {})
    assert_contains(case["doc"], ours, "", differs)
    for path in differs:  # a listed deviation must really deviate, or the list goes stale
        doc_value: Any = case["doc"]
        our_value: Any = ours
        for part in path.split("."):
            doc_value, our_value = doc_value.get(part), (our_value or {}).get(part)
        assert doc_value != our_value, f"{path} is listed in doc_differs but matches the docs"


@pytest.mark.parametrize("api", APIS)
def test_exact_bytes_pinned(api):
    expected_file = GOLDEN / f"{api.replace('-', '_')}.expected.ndjson"
    lines = []
    for case in load_cases(api):
        ours = render(api, case)
        body = ours.pop("_bytes")
        assert orjson.dumps(ours["body"]) == body, "bodies must be compact JSON that round-trips"
        lines.append(orjson.dumps({"case": case["case"], **ours}) + b"\n")
    produced = b"".join(lines)
    if UPDATE:
        expected_file.write_bytes(produced)
    assert produced == expected_file.read_bytes()


@pytest.mark.parametrize("fmt", ["pipelines", "track-v1"])
def test_ndjson_journey_pinned(fmt):
    produced = b"".join(ndjson_line(event, fmt) for event in journey())
    golden = GOLDEN / f"journey.{fmt}.ndjson"
    if UPDATE:
        golden.write_bytes(produced)
    assert produced == golden.read_bytes()


def test_ndjson_track_v1_lines_are_the_requests():
    encoder = encoder_for("track-v1")
    for event in journey():
        line = orjson.loads(ndjson_line(event, "track-v1"))
        request = encoder.encode(event)
        assert set(line) == {"method", "path", "body"}
        assert (line["method"], line["path"]) == (request.method, request.path)
        assert orjson.dumps(line["body"]) == request.body


def test_ndjson_pipelines_lines_are_the_call_bodies():
    encoder = encoder_for("pipelines")
    for event in journey():
        assert ndjson_line(event, "pipelines") == encoder.encode(event).body + b"\n"


def test_delivered_lines_carry_the_fault_record_under_a_namespaced_key():
    from generator.events import Delivery

    event = journey()[1]
    delivery = Delivery(
        event=event, truth_id="T1", arrival_ms=1717000090000, faults=("latency",), dropped=False
    )
    msg = orjson.loads(delivery_line(delivery, "pipelines"))
    assert msg["context"]["shopsim"] == {
        "truth_id": "T1",
        "shopper": 0,
        "arrival_ms": 1717000090000,
        "faults": ["latency"],
        "dropped": False,
    }
    assert msg["messageId"] == event.id
    line = orjson.loads(delivery_line(delivery, "track-v1"))
    assert set(line) == {"method", "path", "body", "shopsim"}
    assert "shopsim" not in line["body"]
    assert dict(event.context) == {}  # the event itself is untouched
