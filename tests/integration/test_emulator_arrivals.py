"""Per-item virtual arrival times end to end: ``send_plan`` → loopback socket → emulator.

A virtual-clock batch used to be processed at its first item's arrival, so an exit event within
the batch window of a due send could go either way. With ``X-Shopsim-Arrivals`` every item is
processed at its own arrival: an exit 200 ms before the send suppresses it, one 200 ms after
does not, even when both travel in the same request.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import orjson
import pytest

from generator.credentials import LOCAL_DEFAULTS
from generator.deliver.http import ARRIVALS_HEADER, send_plan
from generator.deliver.ledger import Ledger
from generator.deliver.transport import FunctionTransport, GeventTransport, Request, Response
from generator.emulator import start_emulator
from generator.events import CallType, Delivery
from generator.scenario.model import Campaign
from generator.wire import encoder_for
from tests.support.deliveries import T0, make_event

HOUR = 3_600_000
CART = {
    "cart_recovery": Campaign.model_validate(
        {
            "trigger": {"event": "Added to Cart", "where": ["cart_total >= 20"]},
            "delay": "1h",
            "exit_on": ["Order Completed"],
        }
    )
}


def _export(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/_shopsim/export", timeout=10) as response:
        return [orjson.loads(line) for line in response.read().splitlines() if line]


def _advance(url: str, now_ms: int) -> None:
    request = urllib.request.Request(
        url + "/_shopsim/clock", data=orjson.dumps({"now_ms": now_ms}), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _plan() -> list[Delivery]:
    """Two shoppers enter cart_recovery at T0; their purchases straddle the due send by ±200 ms."""
    events = []
    n = 0
    for shopper, user in enumerate(("u1", "u2")):
        events.append(
            (
                make_event(
                    n,
                    shopper=shopper,
                    type=CallType.IDENTIFY,
                    timestamp_ms=T0,
                    user_id=user,
                    anonymous_id=None,
                    properties={"email": f"{user}@example.com"},
                ),
                T0,
            )
        )
        events.append((make_event(n + 1, shopper=shopper, timestamp_ms=T0 + 1, user_id=user), T0 + 1))
        n += 2
    before = make_event(n, shopper=0, name="Order Completed", timestamp_ms=T0 + HOUR - 200, user_id="u1")
    after = make_event(n + 1, shopper=1, name="Order Completed", timestamp_ms=T0 + HOUR + 200, user_id="u2")
    events += [(before, T0 + 1 + HOUR - 200), (after, T0 + 1 + HOUR + 200)]
    return [Delivery(event=e, truth_id=e.id, arrival_ms=at) for e, at in events]


@pytest.mark.parametrize("api", ["pipelines", "track-v2"])
def test_exit_200_ms_before_a_due_send_suppresses_it_and_200_ms_after_does_not(api: str) -> None:
    plan = _plan()
    with start_emulator(scenario=None, campaigns=CART) as emu, Ledger() as ledger:
        wire = GeventTransport(emu.url, concurrency=1)

        def forward(req: Request) -> Response:
            return wire.request(req.method, req.path, req.headers, req.body)

        recorder = FunctionTransport(forward)
        try:
            counts = send_plan(
                plan,
                target=emu.url,
                encoder=encoder_for(api),
                creds=LOCAL_DEFAULTS,
                clock="virtual",
                ledger=ledger,
                transport=recorder,
            )
        finally:
            wire.close()
        assert counts.acknowledged == len(plan) and counts.ok
        _advance(emu.url, T0 + 3 * HOUR)
        records = _export(emu.url)
    purchase_u1, purchase_u2 = plan[-2].event.id, plan[-1].event.id
    # both purchases travelled in one batch request, each with its own arrival offset
    (carrier,) = [r for r in recorder.requests if purchase_u1.encode() in r.body]
    assert purchase_u2.encode() in carrier.body
    assert carrier.headers[ARRIVALS_HEADER] == "0,400"
    journeys = {j["person"]: j for j in records if j["kind"] == "journey"}
    assert journeys["u1"]["outcome"] == "exited" and journeys["u1"]["exit_event_id"] == purchase_u1
    assert journeys["u2"]["outcome"] == "sent" and journeys["u2"]["at_ms"] == T0 + 1 + HOUR
    received = {r["event_id"]: r["received_ms"] for r in records if r["kind"] == "event"}
    assert received[purchase_u1] == T0 + 1 + HOUR - 200
    assert received[purchase_u2] == T0 + 1 + HOUR + 200
