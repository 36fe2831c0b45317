"""Golden campaign cases through the emulator, over HTTP (interfaces.md, "Golden campaign cases").

Each ``tests/golden/campaign_cases/*.yaml`` case runs against a fresh in-process emulator: the
calls go out in arrival order (stable sort by ``at``) as Pipelines requests (``identify``,
``track``, ``page``, ``screen``) or a Track v1 ``merge_customers`` (``merge: {primary, secondary}``),
each carrying ``X-Shopsim-Clock: t0 + at``; then the clock is advanced to ``t0 + end`` and the
export's *sent* journeys must equal ``sends`` exactly (as a multiset).

Call fields: ``at`` (arrival offset), ``ts`` (event timestamp offset, default ``at``; may be
negative), ``id`` (messageId), ``user_id``, ``anonymous_id``, ``traits`` (identify),
``properties`` (track/page/screen).
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from generator.credentials import LOCAL_DEFAULTS
from generator.durations import parse_duration
from generator.emulator import start_emulator
from generator.scenario.model import Campaign

CASES = sorted((Path(__file__).parent / "campaign_cases").glob("*.yaml"))
_CAMPAIGNS = TypeAdapter(dict[str, Campaign])


def offset_ms(value: Any) -> int:
    """A signed duration offset (``-80h``, ``1h0m10s``, ``0s``) in ms."""
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_duration(value.strip()[1:])
    return parse_duration(value)


def t0_ms(value: Any) -> int:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_for(call: dict[str, Any], t0: int) -> tuple[str, dict[str, Any], str]:
    """(path, body, auth kind) for one case call."""
    at = offset_ms(call.get("at", 0))
    ts = offset_ms(call["ts"]) if "ts" in call else at
    if "merge" in call:
        return (
            "/api/v1/merge_customers",
            {"primary": {"id": call["merge"]["primary"]}, "secondary": {"id": call["merge"]["secondary"]}},
            "track",
        )
    body: dict[str, Any] = {"timestamp": iso(t0 + ts)}
    if call.get("id") is not None:
        body["messageId"] = str(call["id"])
    if call.get("anonymous_id") is not None:
        body["anonymousId"] = call["anonymous_id"]
    if "identify" in call:
        body["userId"] = call["identify"]
        body["traits"] = call.get("traits", {})
        return "/v1/identify", body, "pipelines"
    if call.get("user_id") is not None:
        body["userId"] = call["user_id"]
    for kind in ("track", "page", "screen"):
        if kind in call:
            if kind == "track":
                body["event"] = call[kind]
            else:
                body["name"] = call[kind]
            body["properties"] = call.get("properties", {})
            return f"/v1/{kind}", body, "pipelines"
    raise AssertionError(f"unknown call {call}")


def _auth(kind: str) -> str:
    if kind == "track":
        raw = f"{LOCAL_DEFAULTS.site_id}:{LOCAL_DEFAULTS.api_key}"
    else:
        raw = f"{LOCAL_DEFAULTS.pipelines_key}:"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        return int(response.status)


def run_case(
    path: Path,
) -> tuple[list[tuple[str, str, str, int]], list[tuple[str, str, str, int]], list[dict]]:
    """Run one case; returns (expected sends, observed sends, export records)."""
    case = yaml.safe_load(path.read_text())
    campaigns = _CAMPAIGNS.validate_python(case["campaigns"])
    t0 = t0_ms(case["t0"])
    calls = sorted(case["calls"], key=lambda c: offset_ms(c.get("at", 0)))
    with start_emulator(scenario=None, campaigns=campaigns, clock="virtual") as emu:
        for call in calls:
            route, body, kind = request_for(call, t0)
            clock = t0 + offset_ms(call.get("at", 0))
            status = _post(
                emu.url + route, body, {"Authorization": _auth(kind), "X-Shopsim-Clock": str(clock)}
            )
            assert status == 200, (call, status)
        _post(emu.url + "/_shopsim/clock", {"now_ms": t0 + offset_ms(case["end"])}, {})
        with urllib.request.urlopen(emu.url + "/_shopsim/export", timeout=10) as response:
            records = [json.loads(line) for line in response.read().splitlines() if line.strip()]
    observed = [
        (r["campaign"], r["person"], r["trigger_event_id"], r["at_ms"] - t0)
        for r in records
        if r["kind"] == "journey" and r["outcome"] == "sent"
    ]
    expected = [
        (s["campaign"], str(s["person"]), str(s["trigger"]), offset_ms(s["at"]))
        for s in case.get("sends") or []
    ]
    return expected, observed, records


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    expected, observed, records = run_case(path)
    journeys = [r for r in records if r["kind"] in ("journey", "skip")]
    assert Counter(observed) == Counter(expected), f"{path.name}: journeys/skips were {journeys}"


def test_there_is_a_case_per_rule() -> None:
    assert len(CASES) >= 12
