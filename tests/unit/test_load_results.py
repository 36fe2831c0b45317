"""Reading a load test's results: the ledger join for the check, Locust's stats, the collector."""

from __future__ import annotations

from collections import deque

import orjson

from generator.events import CallType, Delivery, Event, Observation, ObservationKind, Source
from generator.load.check import Exclusions, actual_deliveries
from generator.load.lag import LagHistogram
from generator.load.messages import Collector, DoneReport
from generator.load.stats import percentile, read_locust_results


def delivery(event_id: str, arrival_ms: int, *, dropped: bool = False) -> Delivery:
    ev = Event(
        id=event_id,
        shopper=3,
        seq=0,
        type=CallType.TRACK,
        name="Added to Cart",
        timestamp_ms=arrival_ms,
        user_id="u3",
        anonymous_id=None,
        properties={},
        context={},
        source=Source.WEB,
    )
    return Delivery(event=ev, truth_id=event_id, arrival_ms=arrival_ms, dropped=dropped)


def rows(*items: tuple[str, str, int]) -> dict[str, deque]:
    out: dict[str, deque] = {}
    for event_id, state, arrival in items:
        out.setdefault(event_id, deque()).append(
            {"event_id": event_id, "state": state, "arrival_ms": arrival}
        )
    return out


def test_the_check_sees_what_really_arrived_and_when():
    planned = [
        delivery("A", 100),
        delivery("B", 200),
        delivery("A", 300),
        delivery("C", 400),
        delivery("D", 500, dropped=True),
    ]
    ledger = rows(
        ("A", "acknowledged", 150),
        ("B", "given_up", 200),
        ("A", "acknowledged", 900),
        ("C", "rejected", 420),
        ("D", "dropped_by_fault", 500),
    )
    out = actual_deliveries(planned, ledger)
    assert [(d.event.id, d.arrival_ms, d.dropped) for d in out] == [
        ("A", 150, False),  # same-id retries are matched in order
        ("B", 200, True),
        ("A", 900, False),
        ("C", 400, True),
        ("D", 500, True),
    ]
    assert "load:given_up" in out[1].faults and "load:rejected" in out[3].faults


def test_a_planned_delivery_without_a_ledger_line_did_not_arrive():
    (only,) = actual_deliveries([delivery("Z", 10)], {})
    assert only.dropped and "load:missing" in only.faults


def test_locust_results_are_merged_across_request_names(tmp_path):
    def entry(name, n, failures, times, start, end, top):
        return {
            "name": name,
            "method": "POST",
            "num_requests": n,
            "num_failures": failures,
            "response_times": times,
            "start_time": start,
            "last_request_timestamp": end,
            "max_response_time": top,
        }

    stats = [
        entry("page", 90, 0, {"10": 90}, 100.0, 110.0, 12),
        entry("track: Order Completed", 10, 1, {"200": 10}, 101.0, 109.0, 230),
    ]
    (tmp_path / "stats.json").write_bytes(orjson.dumps(stats))
    (tmp_path / "stats_stats_history.csv").write_text(
        "Timestamp,User Count,Type,Name,Requests/s,Failures/s,95%\n"
        "1000,5,,Aggregated,N/A,0,N/A\n1001,5,,Aggregated,9.5,0.1,200\n"
    )
    metrics = read_locust_results(tmp_path)
    assert metrics.requests == 100 and metrics.failures == 1 and metrics.error_rate == 0.01
    assert metrics.p50_ms == 10 and metrics.p95_ms == 200 and metrics.max_ms == 230
    assert metrics.rps == 10.0
    assert [row["rps"] for row in metrics.timeline] == [0.0, 9.5]
    assert metrics.by_name["POST track: Order Completed"]["failures"] == 1
    assert percentile({}, 0.5) == 0.0


def test_the_collector_appends_ledger_lines_and_ignores_a_repeated_report(tmp_path):
    done = []
    collector = Collector(tmp_path, expected=2, on_all_done=lambda: done.append(True))
    collector.on_ledger({"shard": 0, "rows": b'{"event_id":"A"}\n'})
    collector.on_ledger({"shard": 1, "rows": b'{"event_id":"B"}\n'})

    def report(shard: int, lags: list[float]) -> dict:
        hist = LagHistogram()
        for lag in lags:
            hist.record(lag)
        counts = {"planned": 1, "acknowledged": 1}
        return DoneReport(
            shard=shard,
            shards=2,
            counts=counts,
            start_lag=hist.as_dict(),
            send_lag=LagHistogram().as_dict(),
            shoppers_started=len(lags),
            shoppers_unstarted=0,
            deliveries_unstarted=0,
            max_in_flight=1,
            elapsed_s=1.0,
        ).as_dict()

    collector.on_done(report(0, [0.0, 500.0]))
    collector.on_done(report(0, [0.0]))  # a reconnecting worker reports again: ignored
    assert not done
    collector.on_done(report(1, [1.0, 2.0]))
    assert done == [True]
    collector.close()
    summary = orjson.loads((tmp_path / "arrival_lag.json").read_bytes())
    assert summary["shoppers_started"] == 4 and summary["start_lag"]["late"] == 1
    assert (
        summary["ledger"]["planned"] == 2 and summary["ledger_lines"] == 2 and summary["reconciled"] is True
    )
    assert (tmp_path / "ledger.ndjson").read_bytes().count(b"\n") == 2


def test_left_out_shoppers_lose_their_campaign_activity_but_not_their_ingested_events():
    excluded = Exclusions(shoppers={4}, persons={"u4"}, events={"E4"})
    send = Observation(
        kind=ObservationKind.SEND, person="u4", at_ms=1, campaign="cart_recovery", event_id="E4"
    )
    other = Observation(
        kind=ObservationKind.SEND, person="u5", at_ms=1, campaign="cart_recovery", event_id="E5"
    )
    event = Observation(kind=ObservationKind.EVENT, person="u4", at_ms=1, event_id="E4")
    assert not excluded.keeps(send) and excluded.keeps(other) and excluded.keeps(event)
