"""The wire encoders and the emulator agree: a real delivery plan sent over real sockets lands whole.

The encoders (generator/wire/) and the emulator (generator/emulator/) were written apart, each
from customerio.md; the sender connects them. For every API, ~150 shoppers of the shipped D2C
scenario go through ``plan_deliveries`` → ``send_plan`` (virtual clock) → ``start_emulator`` on
127.0.0.1 port 0, and the emulator's export must account for every acknowledged call: nothing
rejected or given up, every event stored under its id with the name, type and timestamp sent,
every identify a profile with the shopper's email, and every anonymous event whose anonymous id
an identify later carried merged into that person (within the platform's merge rules).

The last two tests pin the limits both sides enforce: an encoder flags a call oversize exactly
when the emulator refuses it.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from generator.credentials import LOCAL_DEFAULTS
from generator.deliver.http import send_plan
from generator.deliver.ledger import Ledger, read_ledger
from generator.emulator import decode, start_emulator
from generator.events import CallType, Delivery, Event, Source
from generator.faults import plan_deliveries
from generator.scenario.load import load_scenario
from generator.scenario.model import Scenario
from generator.simulate import simulate_shoppers
from generator.wire import encoder_for
from generator.wire.base import page_url
from generator.wire.track_v1 import EVENT_NAME_LIMIT_BYTES, PAGE_NAME_LIMIT_BYTES
from tests.unit.test_emulator_support import T0, call, make_app

SCENARIO = Path(__file__).parents[2] / "scenarios" / "d2c_cart_recovery.yaml"
SHOPPERS = 150
SEED = 42
APIS = ("track-v1", "track-v2", "pipelines", "browser")
TRACK_APIS = ("track-v1", "track-v2")

# Platform merge rules (customerio.md §6): an identify carrying an anonymous id merges that id's
# pending events of the last 30 days, and events arriving up to five minutes after it.
LATE_MERGE_MS = 5 * 60_000
ANON_RETENTION_MS = 30 * 86_400_000

_EXPORT_TYPE = {CallType.TRACK: "event", CallType.PAGE: "page", CallType.SCREEN: "screen"}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(SCENARIO)


@pytest.fixture(scope="module")
def plan(scenario: Scenario) -> list[Delivery]:
    lives = simulate_shoppers(scenario, seed=SEED, shoppers=SHOPPERS)
    return list(plan_deliveries(scenario, lives, seed=SEED))


def _export(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/_shopsim/export", timeout=30) as response:
        return [orjson.loads(line) for line in response.read().splitlines() if line.strip()]


def _expected_name(api: str, event: Event) -> str:
    # Track names a page view by its URL (customerio.md §2.5); Pipelines keeps the page name.
    return page_url(event) if api in TRACK_APIS and event.type is CallType.PAGE else event.name


def _expected_timestamp(api: str, event: Event) -> int:
    # Track carries integer Unix seconds; Pipelines ISO-8601 with milliseconds.
    return event.timestamp_ms // 1000 * 1000 if api in TRACK_APIS else event.timestamp_ms


def test_the_plan_exercises_what_the_apis_disagreed_on(plan: list[Delivery]) -> None:
    """Not vacuous: long page URLs, anonymous events and identifies that merge them are in it."""
    events = [d.event for d in plan if not d.dropped]
    pages = [e for e in events if e.type is CallType.PAGE]
    assert sum(len(page_url(e).encode()) > EVENT_NAME_LIMIT_BYTES for e in pages) >= 10
    anonymous = [e for e in events if e.type is not CallType.IDENTIFY and e.user_id is None]
    merging = {e.anonymous_id for e in events if e.type is CallType.IDENTIFY and e.anonymous_id}
    assert sum(e.anonymous_id in merging for e in anonymous) >= 50
    assert any(e.type is CallType.SCREEN for e in anonymous)  # app shoppers: anonymous screens


@pytest.mark.parametrize("api", APIS)
def test_a_whole_plan_lands_in_the_emulator(
    api: str, scenario: Scenario, plan: list[Delivery], tmp_path
) -> None:
    ledger_path = tmp_path / "ledger.ndjson"
    with start_emulator(scenario=scenario, host="127.0.0.1", port=0) as emulator:
        with Ledger(ledger_path) as ledger:
            counts = send_plan(
                plan,
                target=emulator.url,
                encoder=encoder_for(api),
                creds=LOCAL_DEFAULTS,
                clock="virtual",
                ledger=ledger,
            )
        records = _export(emulator.url)

    lines = list(read_ledger(ledger_path))
    refused = [
        (line["event_id"], line["name"], line["state"], line["reason"])
        for line in lines
        if line["state"] not in ("acknowledged", "dropped_by_fault")
    ]
    assert refused == [], f"{api}: {len(refused)} refused, first: {refused[:3]}"
    assert (counts.rejected, counts.given_up) == (0, 0)
    assert counts.acknowledged == counts.planned - counts.dropped_by_fault > 0

    by_id: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in plan:
        by_id[delivery.event.id].append(delivery)
    acknowledged = [by_id[str(line["event_id"])][0] for line in lines if line["state"] == "acknowledged"]
    stored: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["kind"] == "event":
            stored[record["event_id"]].append(record)
    profiles = {r["id"]: r for r in records if r["kind"] == "profile" and r["id"] is not None}

    # every acknowledged event/page/screen is stored once under its id, as it was sent
    missing, wrong = [], []
    for delivery in acknowledged:
        event = delivery.event
        if event.type is CallType.IDENTIFY:
            continue
        kept = [r for r in stored.get(event.id, []) if r["outcome"] != "duplicate"]
        if len(kept) != 1:
            missing.append((event.id, event.name, len(kept)))
            continue
        got = kept[0]
        want = (_EXPORT_TYPE[event.type], _expected_name(api, event), _expected_timestamp(api, event))
        if (got["type"], got["name"], got["timestamp_ms"]) != want:
            wrong.append((event.id, want, (got["type"], got["name"], got["timestamp_ms"])))
        if event.user_id is not None and (got["person"], got["outcome"]) != (event.user_id, "accepted"):
            wrong.append((event.id, event.user_id, got["person"], got["outcome"]))
    assert missing == [], f"{api}: {len(missing)} acknowledged events not in the export: {missing[:3]}"
    assert wrong == [], f"{api}: {len(wrong)} events stored differently than sent: {wrong[:3]}"
    duplicates = [i for i, recs in stored.items() if any(r["outcome"] == "duplicate" for r in recs)]
    planned_twice = {i for i, ds in by_id.items() if len(ds) > 1}
    assert set(duplicates) <= planned_twice

    # every identify made a profile with the shopper's email (the last identify's, by event time)
    identifies = sorted(
        (d.event for d in acknowledged if d.event.type is CallType.IDENTIFY), key=lambda e: e.timestamp_ms
    )
    assert identifies
    emails = {e.user_id: str(e.properties["email"]) for e in identifies}
    bad_profiles = [
        (user, email, profiles.get(user, {}).get("email"))
        for user, email in emails.items()
        if str(profiles.get(user, {}).get("email") or "").casefold() != email.casefold()
    ]
    assert bad_profiles == [], (
        f"{api}: {len(bad_profiles)} profiles without the right email: {bad_profiles[:3]}"
    )

    # anonymous events end merged into the person whose identify carried their anonymous id
    first_identify: dict[str, tuple[int, str]] = {}
    for delivery in sorted(
        (d for d in acknowledged if d.event.type is CallType.IDENTIFY), key=lambda d: d.arrival_ms
    ):
        event = delivery.event
        if event.anonymous_id and event.user_id:
            first_identify.setdefault(event.anonymous_id, (delivery.arrival_ms, event.user_id))
    merged, unmerged = 0, []
    for delivery in acknowledged:
        event = delivery.event
        if event.type is CallType.IDENTIFY or event.user_id is not None or event.anonymous_id is None:
            continue
        link = first_identify.get(event.anonymous_id)
        if link is None:
            continue  # never identified on this device: stays anonymous
        identify_ms, user = link
        if (
            delivery.arrival_ms > identify_ms + LATE_MERGE_MS
            or identify_ms - event.timestamp_ms > ANON_RETENTION_MS
        ):
            continue  # outside the platform's merge rules
        (got,) = [r for r in stored[event.id] if r["outcome"] != "duplicate"]
        if (got["person"], got["outcome"]) == (user, "merged_anonymous"):
            merged += 1
        else:
            unmerged.append((event.id, event.name, user, got["person"], got["outcome"]))
        assert event.anonymous_id in profiles[user]["anonymous_ids"]
    assert unmerged == [], f"{api}: {len(unmerged)} anonymous events not merged: {unmerged[:3]}"
    assert merged >= 50


# --------------------------------------------------------------------------- limits at the boundary


def test_both_sides_use_the_same_name_limits() -> None:
    # each side defines its own constant (the emulator never imports wire): they must agree
    assert (EVENT_NAME_LIMIT_BYTES, PAGE_NAME_LIMIT_BYTES) == (decode.NAME_LIMIT, decode.PAGE_NAME_LIMIT)
    assert (EVENT_NAME_LIMIT_BYTES, PAGE_NAME_LIMIT_BYTES) == (100, 2_000)


def _named(kind: CallType, name: str, *, user_id: str | None, i: int) -> Event:
    properties: dict[str, Any] = {"url": name} if kind is CallType.PAGE else {}
    return Event(
        id=f"01JAGREE{i:018d}",
        shopper=0,
        seq=i,
        type=kind,
        name=name,
        timestamp_ms=T0,
        user_id=user_id,
        anonymous_id="anon-1",
        properties=properties,
        context={},
        source=Source.WEB,
    )


@pytest.mark.parametrize("api", TRACK_APIS)
@pytest.mark.parametrize("kind", [CallType.TRACK, CallType.PAGE, CallType.SCREEN])
@pytest.mark.parametrize("user_id", ["u1", None])
def test_an_encoder_flags_oversize_exactly_what_the_emulator_refuses(
    api: str, kind: CallType, user_id: str | None
) -> None:
    limit = EVENT_NAME_LIMIT_BYTES if kind is CallType.TRACK else PAGE_NAME_LIMIT_BYTES
    encoder = encoder_for(api)
    app = make_app()
    for i, size in enumerate((limit - 1, limit, limit + 1)):
        name = "https://shop.example.com/?q=" if kind is CallType.PAGE else "N"
        name += "é" * ((size - len(name)) // 2) + "x" * ((size - len(name)) % 2)  # multi-byte
        assert len(name.encode()) == size
        events = [_named(kind, name, user_id=user_id, i=i)]
        request = encoder.batches(events)[0] if encoder.batching else encoder.encode(events[0])
        status, _, _ = call(app, request.method, request.path, raw=request.body, at=T0)
        refused = status != 200
        assert request.oversize == refused == (size > limit), (api, kind, size, status)
