"""The open-model schedule: shopper due times, timed sends, batching, bounded request names."""

from __future__ import annotations

from dataclasses import fields, replace

from hypothesis import given
from hypothesis import strategies as st

from generator.events import CallType, Delivery, Event, Source
from generator.load.schedule import build_job, plan_sends, request_name, wall_event


def event(i: int, *, kind: CallType = CallType.TRACK, name: str = "Product Viewed", ts: int = 0) -> Event:
    return Event(
        id=f"E{i:04d}",
        shopper=7,
        seq=i,
        type=kind,
        name=name,
        timestamp_ms=ts,
        user_id=None,
        anonymous_id="a1",
        properties={},
        context={},
        source=Source.WEB,
    )


def delivery(i: int, arrival_ms: int, *, dropped: bool = False, ts: int | None = None, **kw) -> Delivery:
    ev = event(i, ts=arrival_ms if ts is None else ts, **kw)
    return Delivery(event=ev, truth_id=ev.id, arrival_ms=arrival_ms, dropped=dropped)


def test_due_time_is_the_simulated_start_compressed_by_speed():
    job = build_job(7, 1_000_000 + 60_000, [delivery(0, 1_060_000)], origin_ms=1_000_000, speed=60)
    assert job.due_s == 1.0  # one simulated minute at 60x is one wall second


def test_sends_keep_arrival_gaps_divided_by_speed_and_dropped_ones_are_apart():
    start = 5_000
    deliveries = [delivery(2, start + 30_000), delivery(0, start), delivery(1, start + 10_000, dropped=True)]
    job = build_job(7, start, deliveries, origin_ms=0, speed=10)
    assert [s.offset_s for s in job.sends] == [0.0, 3.0]
    assert [d.event.id for s in job.sends for d in s.deliveries] == ["E0000", "E0002"]
    assert [d.event.id for d in job.dropped] == ["E0001"]
    assert job.planned == 3


def test_batching_cuts_by_count_and_by_arrival_window():
    deliveries = [delivery(i, t) for i, t in enumerate([0, 100, 200, 300, 5_000, 5_100])]
    sends = plan_sends(deliveries, start_ms=0, speed=1, batch_size=3, batch_window_ms=1_000)
    assert [len(s.deliveries) for s in sends] == [3, 1, 2]
    assert [s.name for s in sends] == ["batch", "track: Product Viewed", "batch"]
    single = plan_sends(deliveries, start_ms=0, speed=1, batch_size=1)
    assert len(single) == len(deliveries)


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=40), st.integers(1, 10))
def test_every_delivery_is_in_exactly_one_send_in_arrival_order(arrivals, batch):
    deliveries = [delivery(i, t) for i, t in enumerate(sorted(arrivals))]
    sends = plan_sends(deliveries, start_ms=0, speed=7.5, batch_size=batch, batch_window_ms=2_000)
    flat = [d for s in sends for d in s.deliveries]
    assert flat == deliveries
    assert all(len(s.deliveries) <= batch for s in sends)
    offsets = [s.offset_s for s in sends]
    assert offsets == sorted(offsets)


def test_request_names_are_bounded_by_call_type_and_event_name():
    assert request_name(event(1, name="Added to Cart")) == "track: Added to Cart"
    assert request_name(event(1, kind=CallType.PAGE, name="Blue Linen Shirt")) == "page"
    assert request_name(event(1, kind=CallType.IDENTIFY, name="")) == "identify"
    assert request_name(event(1, kind=CallType.SCREEN, name="Cart")) == "screen: Cart"


@given(st.text(min_size=1, max_size=30), st.integers(0, 10**6))
def test_request_names_never_carry_ids(title, i):
    page = event(i, kind=CallType.PAGE, name=title)
    assert request_name(page) == "page"
    assert page.id not in request_name(event(i, name="Order Completed"))


def test_wall_event_replays_the_timeline_compressed_from_the_test_start():
    d = delivery(0, 20_000, ts=10_000)
    ev = wall_event(d, wall_origin_ms=1_700_000_000_000, origin_ms=0, speed=10)
    assert ev.timestamp_ms == 1_700_000_000_000 + 1_000
    assert ev.id == d.event.id


def test_wall_event_changes_only_the_timestamp():
    # wall_event builds the Event field by field (faster than dataclasses.replace): a field added
    # to Event must be carried over, not silently reset to its default.
    d = delivery(0, 20_000, ts=10_000)
    original = replace(d.event, journey="cart", state="browsing")
    ev = wall_event(replace(d, event=original), wall_origin_ms=5_000, origin_ms=0, speed=1)
    for f in fields(Event):
        if f.name != "timestamp_ms":
            assert getattr(ev, f.name) == getattr(original, f.name), f.name
    assert ev.timestamp_ms == 15_000
