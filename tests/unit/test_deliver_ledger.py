"""The delivery ledger: exactly-once accounting, the file format, flushing."""

from __future__ import annotations

import io

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.deliver.ledger import (
    Ledger,
    LedgerCounts,
    LedgerImbalance,
    State,
    acknowledged_ids,
    merge_counts,
    read_ledger,
)
from tests.support.deliveries import make_plan


def test_counts_per_state_and_balance(tmp_path):
    plan = make_plan(5, dropped=[0])
    path = tmp_path / "ledger.ndjson"
    with Ledger(path) as ledger:
        tokens = [ledger.plan(d) for d in plan]
        assert ledger.counts.pending == 5
        ledger.settle(tokens[0], State.DROPPED_BY_FAULT)
        ledger.settle(tokens[1], State.ACKNOWLEDGED, status=200, attempts=1)
        ledger.settle(tokens[2], State.REJECTED, status=400, reason="bad", attempts=1)
        ledger.settle(tokens[3], State.GIVEN_UP, status=503, reason="HTTP 503 after 5 attempts", attempts=5)
        with pytest.raises(LedgerImbalance, match="!= planned 5"):
            ledger.counts.check()
        ledger.settle(tokens[4], State.ACKNOWLEDGED, status=200, attempts=2)
        counts = ledger.counts
    counts.check()
    c = counts
    assert (c.planned, c.acknowledged, c.rejected, c.dropped_by_fault, c.given_up) == (5, 2, 1, 1, 1)
    assert not counts.ok
    records = list(read_ledger(path))
    assert [r["event_id"] for r in records] == [d.event.id for d in plan]
    assert records[2] == {
        "event_id": plan[2].event.id,
        "truth_id": plan[2].truth_id,
        "shopper": plan[2].event.shopper,
        "name": "Added to Cart",
        "state": "rejected",
        "status": 400,
        "reason": "bad",
        "attempts": 1,
        "arrival_ms": plan[2].arrival_ms,
        "faults": [],
    }
    assert records[0]["faults"] == ["drop"] and records[0]["status"] is None


def test_settling_twice_or_unplanned_raises():
    ledger = Ledger()
    token = ledger.plan(make_plan(1)[0])
    ledger.settle(token, State.ACKNOWLEDGED)
    with pytest.raises(LedgerImbalance, match="settled twice"):
        ledger.settle(token, State.REJECTED)
    with pytest.raises(LedgerImbalance):
        ledger.settle(99, State.ACKNOWLEDGED)
    assert ledger.counts.acknowledged == 1 and ledger.counts.rejected == 0


def test_lines_reach_the_file_only_on_flush_then_appended(tmp_path):
    path = tmp_path / "ledger.ndjson"
    plan = make_plan(3)
    ledger = Ledger(path)
    t = [ledger.plan(d) for d in plan]
    ledger.settle(t[0], State.ACKNOWLEDGED)
    assert path.read_bytes() == b""
    ledger.flush()
    assert len(path.read_bytes().splitlines()) == 1
    ledger.settle(t[1], State.ACKNOWLEDGED)
    ledger.settle(t[2], State.ACKNOWLEDGED)
    ledger.close()
    assert len(path.read_bytes().splitlines()) == 3
    # a second ledger on the same path appends (the writer never truncates)
    with Ledger(path) as again:
        again.settle(again.plan(plan[0]), State.ACKNOWLEDGED)
    assert len(path.read_bytes().splitlines()) == 4


def test_reason_is_truncated():
    out = io.BytesIO()
    ledger = Ledger(stream=out)
    ledger.settle(ledger.plan(make_plan(1)[0]), State.REJECTED, status=400, reason="x" * 10_000)
    ledger.close()
    assert len(orjson.loads(out.getvalue())["reason"]) == 500


def test_settle_unsettled_closes_the_books():
    out = io.BytesIO()
    ledger = Ledger(stream=out)
    plan = make_plan(4)
    tokens = [ledger.plan(d) for d in plan]
    ledger.settle(tokens[1], State.ACKNOWLEDGED)
    assert ledger.unsettled == 3
    assert ledger.settle_unsettled(State.GIVEN_UP, reason="interrupted") == 3
    ledger.counts.check()
    assert ledger.counts.given_up == 3 and ledger.unsettled == 0
    assert len(out.getvalue().splitlines()) == 4


def test_attempt_counters():
    ledger = Ledger()
    ledger.count_attempt(retry=False, http_error=True)
    ledger.count_attempt(retry=True, connection_error=True)
    ledger.count_attempt(retry=True)
    c = ledger.counts
    assert (c.requests, c.retries, c.http_errors, c.connection_errors) == (3, 2, 1, 1)


def test_merge_counts_sums_fields():
    a = LedgerCounts(planned=3, acknowledged=2, given_up=1, requests=4)
    b = LedgerCounts(planned=2, acknowledged=1, dropped_by_fault=1, requests=1, retries=1)
    total = merge_counts([a, b])
    assert total == LedgerCounts(
        planned=5, acknowledged=3, dropped_by_fault=1, given_up=1, requests=5, retries=1
    )
    total.check()


def test_counts_only_ledger_writes_nothing(tmp_path):
    ledger = Ledger()
    ledger.settle(ledger.plan(make_plan(1)[0]), State.ACKNOWLEDGED)
    ledger.close()
    assert ledger.counts.acknowledged == 1
    assert list(tmp_path.iterdir()) == []


_STATES = st.sampled_from([s.value for s in State])
_IDS = st.text(alphabet=st.sampled_from('abc01"\\{}:,\n é'), min_size=1, max_size=12)
_WORDS = st.sampled_from(
    ["a", " ", '"', "\\", ":", ",", "acknowledged", '"state":"acknowledged"', "state", "{"]
)
_NAMES = st.lists(_WORDS, max_size=8).map("".join)


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(st.tuples(_IDS, _NAMES, _STATES, _NAMES), max_size=40),
    sort_keys=st.booleans(),
    block=st.sampled_from([64, 1 << 22]),
)
def test_acknowledged_ids_match_a_full_decode(tmp_path_factory, rows, sort_keys, block):
    # The byte-pattern shortcut must give exactly what decoding every line gives, whatever the
    # ids, names and reasons hold, whatever the key order, across block boundaries.
    option = orjson.OPT_SORT_KEYS if sort_keys else 0
    path = tmp_path_factory.mktemp("ledger") / "ledger.ndjson"
    path.write_bytes(
        b"".join(
            orjson.dumps({"event_id": i, "name": n, "state": s, "reason": r}, option=option) + b"\n"
            for i, n, s, r in rows
        )
    )
    expected = [str(r["event_id"]) for r in read_ledger(path) if r["state"] == "acknowledged"]
    assert [i for ids in acknowledged_ids(path, block_size=block) for i in ids] == expected


def test_acknowledged_ids_of_a_written_ledger(tmp_path):
    plan = make_plan(6)
    path = tmp_path / "ledger.ndjson"
    with Ledger(path) as ledger:
        tokens = [ledger.plan(d) for d in plan]
        for i, token in enumerate(tokens):
            ledger.settle(token, State.REJECTED if i == 2 else State.ACKNOWLEDGED, status=200)
    assert [i for ids in acknowledged_ids(path) for i in ids] == [
        d.event.id for i, d in enumerate(plan) if i != 2
    ]


def test_a_delivery_can_be_recorded_with_its_actual_arrival(tmp_path):
    plan = make_plan(2)
    path = tmp_path / "ledger.ndjson"
    with Ledger(path) as ledger:
        late = ledger.plan(plan[0], arrival_ms=plan[0].arrival_ms + 5_000)
        on_time = ledger.plan(plan[1])
        ledger.settle(late, State.ACKNOWLEDGED, status=200)
        ledger.settle(on_time, State.ACKNOWLEDGED, status=200)
    rows = list(read_ledger(path))
    assert [r["arrival_ms"] for r in rows] == [plan[0].arrival_ms + 5_000, plan[1].arrival_ms]
