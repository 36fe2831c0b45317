"""Requests prepared ahead: a stamped body is byte for byte what the encoder gives at send time."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.credentials import LOCAL_DEFAULTS
from generator.events import Delivery
from generator.faults import plan_deliveries
from generator.load.prepared import PROBE_SHIFT_MS, in_order, prepare_job, prepare_send, stamp_for
from generator.load.schedule import PlannedSend, build_job
from generator.scenario.load import load_scenario
from generator.simulate import simulate_shoppers
from generator.wire import APIS, encoder_for
from generator.wire.base import iso_ms

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "d2c_cart_recovery.yaml"
# Year 2001 .. 2100: every rendering keeps its width, so the session can use the stamp.
INSTANTS = st.integers(1_000_000_000_000, 4_102_444_800_000)


@cache
def deliveries() -> tuple[Delivery, ...]:
    """Real planned deliveries (every call type, real properties) of a few shoppers."""
    scenario = load_scenario(SCENARIO)
    lives = list(simulate_shoppers(scenario, seed=3, shoppers=12))
    return tuple(d for d in plan_deliveries(scenario, lives, seed=3) if not d.dropped)


@pytest.mark.parametrize("api", APIS)
def test_nearly_every_single_event_gets_a_stamp(api):
    # The exceptions are bodies carrying the instant twice (a Track v2 identify whose
    # created_at trait is the identify time): no single splice point, so they are re-encoded.
    encoder = encoder_for(api, creds=LOCAL_DEFAULTS)
    stamps = [stamp_for(encoder, d.event, encoder.encode(d.event).body) for d in deliveries()]
    assert sum(s is not None for s in stamps) >= 0.9 * len(stamps)
    assert all(s is not None for s, d in zip(stamps, deliveries(), strict=True) if d.event.type != "identify")


@pytest.mark.parametrize("api", APIS)
@settings(max_examples=60, deadline=None)
@given(index=st.integers(0, 10_000), instant=INSTANTS)
def test_a_stamped_body_is_the_encoded_body(api, index, instant):
    encoder = encoder_for(api, creds=LOCAL_DEFAULTS)
    d = deliveries()[index % len(deliveries())]
    body = encoder.encode(d.event).body
    stamp = stamp_for(encoder, d.event, body)
    if stamp is None:  # see above: re-encoded at send time
        return
    assert stamp.body(body, instant) == encoder.encode(replace(d.event, timestamp_ms=instant)).body


def test_a_body_whose_time_cannot_be_located_gets_no_stamp():
    class TwiceEncoder:
        """Renders the timestamp twice: no single splice point, so no stamp."""

        api = "twice"
        inner = encoder_for("pipelines")

        def encode(self, event):
            request = self.inner.encode(event)
            return replace(request, body=request.body + b"|" + str(event.timestamp_ms).encode())

    encoder = TwiceEncoder()
    d = deliveries()[0]
    assert stamp_for(encoder, d.event, encoder.encode(d.event).body) is None  # type: ignore[arg-type]


def test_batches_are_prepared_in_order_without_stamps():
    encoder = encoder_for("pipelines")
    run = deliveries()[:7]
    send = PlannedSend(offset_s=0.0, name="batch", deliveries=run)
    prepared = prepare_send(send, encoder, stamps=True).prepared
    assert all(p.stamp is None for p in prepared)  # several timestamps: re-encoded at send time
    assert in_order([p.request for p in prepared], run)
    assert not in_order([p.request for p in prepared], run[::-1])


def test_prepare_job_keeps_the_schedule_and_encodes_each_send():
    encoder = encoder_for("pipelines")
    run = deliveries()[:5]
    job = build_job(0, run[0].arrival_ms, run, origin_ms=0, speed=1.0)
    prepared = prepare_job(job, encoder, stamps=False)
    assert [s.offset_s for s in prepared.sends] == [s.offset_s for s in job.sends]
    for send in prepared.sends:
        (p,) = send.prepared
        assert p.stamp is None and p.request == encoder.encode(send.deliveries[0].event)


def test_the_probe_moves_every_field_of_a_rendered_instant():
    a, b = iso_ms(1_700_000_000_000), iso_ms(1_700_000_000_000 + PROBE_SHIFT_MS)
    fields_a, fields_b = re.split(r"[-T:.]", a[:-1]), re.split(r"[-T:.]", b[:-1])
    assert [x != y for x, y in zip(fields_a, fields_b, strict=True)][2:] == [True] * 5  # day .. ms


def test_compacted_jobs_are_equal_copies_in_the_same_order():
    from generator.load.prepared import compact_jobs, prepared_jobs
    from generator.load.source import JobSpec, schedule_origin, shopper_jobs

    scenario = load_scenario(SCENARIO)
    origin = schedule_origin(scenario, seed=3, shoppers=40)
    spec = JobSpec(seed=3, shoppers=40, speed=100.0)
    encoder = encoder_for("pipelines", creds=LOCAL_DEFAULTS)
    jobs = list(prepared_jobs(shopper_jobs(scenario, spec, origin_ms=origin), encoder, stamps=True))
    before = list(jobs)
    pauses = []
    assert compact_jobs(jobs, chunk=7, pause=lambda: pauses.append(1))
    assert jobs == before and len(pauses) == -(-len(jobs) // 7)
    assert all(a is not b for a, b in zip(jobs, before, strict=True))  # copies, not the originals

    def renders(schedule):
        return [p.stamp.render for job in schedule for send in job.sends for p in send.prepared if p.stamp]

    assert renders(jobs) and all(a is b for a, b in zip(renders(jobs), renders(before), strict=True))


def test_jobs_that_cannot_be_pickled_are_left_as_they_are():
    from generator.load.prepared import compact_jobs

    jobs = [build_job(0, 0, [], origin_ms=0, speed=1.0), lambda: None]
    before = list(jobs)
    assert not compact_jobs(jobs)  # type: ignore[arg-type]
    assert all(a is b for a, b in zip(jobs, before, strict=True))
