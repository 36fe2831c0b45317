"""The end-to-end check after a load test: the same checks as ``shopsim run``, on what was really sent.

The Locust workers simulated and sent the shoppers; this process never saw the events. It
rebuilds the evidence deterministically instead (shopper k depends only on ``(seed, k)``):

1. the ledger says which shoppers started and how each planned delivery ended, with
   ``arrival_ms`` = the simulated instant it was actually sent (lag included);
2. the started shoppers are simulated again and fault-planned again; each planned delivery is
   joined with its ledger line (by event id, in order for same-id retries): acknowledged ones
   get their actual arrival, the rest (rejected, given up, dropped) never arrived;
3. truth expectations come from the started shoppers' lives, delivered expectations from the
   deliveries in actual arrival order, observations from the emulator's export;
4. :func:`generator.check.run_checks` computes trigger recall, suppression violations, etc.

Shoppers the schedule never started, and shoppers the end of the test cut short (some of
their sends "given up: load test ended"), are not part of the check: their outcome cannot be
judged, so their lives, deliveries and what the target did for them are left out (counted).
A target that is not the embedded emulator has no complete observer, so the campaign checks
are skipped there and only the ingestion thresholds apply.

Checks, thresholds and reports are :func:`generator.pipeline.evaluate` — the very code of
``shopsim run`` — with the Locust metrics (``p95_ms``, ``error_rate``, arrival lag) joined as
extra metrics, so one summary.json / report.html / junit.xml holds both.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from generator.check import Evidence
from generator.deliver.ledger import read_ledger
from generator.events import CallType, Delivery, Observation, ObservationKind
from generator.load.schedule import ENDED_REASON
from generator.scenario.model import Scenario, Threshold

__all__ = ["Exclusions", "actual_deliveries", "check_load", "load_evidence"]

NOT_ARRIVED = {"rejected": "load:rejected", "given_up": "load:given_up"}


def actual_deliveries(
    planned: Iterable[Delivery], rows: Mapping[str, deque[Mapping[str, Any]]]
) -> list[Delivery]:
    """Join one shopper's planned deliveries with its ledger lines (``event_id`` → lines in order).

    Acknowledged: arrival = the ledger's actual arrival. Rejected / given up: marked dropped
    with a ``load:<state>`` tag (never processed by the target). Dropped by fault: as planned.
    A planned delivery with no ledger line (should not happen) is treated as not arrived.
    """
    out: list[Delivery] = []
    for delivery in sorted(planned, key=lambda d: d.arrival_ms):
        queue = rows.get(delivery.event.id)
        row = queue.popleft() if queue else None
        if row is None:
            out.append(replace(delivery, dropped=True, faults=(*delivery.faults, "load:missing")))
            continue
        state = row.get("state")
        if state == "acknowledged":
            out.append(replace(delivery, arrival_ms=int(row.get("arrival_ms") or delivery.arrival_ms)))
        elif state == "dropped_by_fault":
            out.append(delivery)
        else:
            tag = NOT_ARRIVED.get(str(state), f"load:{state}")
            out.append(replace(delivery, dropped=True, faults=(*delivery.faults, tag)))
    return out


@dataclass(slots=True)
class Exclusions:
    """Shoppers the campaign check leaves out: the test ended before their journey was replayed.

    Their outcome cannot be judged (a purchase that was never sent because the test stopped is
    not a platform failure), so their lives, deliveries and everything the target did for them
    (matched by person id/email and by event id) stay out of the check. They are counted.
    """

    shoppers: set[int] = field(default_factory=set)
    persons: set[str] = field(default_factory=set)
    events: set[str] = field(default_factory=set)
    identifies: set[str] = field(default_factory=set)

    def keeps(self, obs: Observation) -> bool:
        """Whether the check should see an observation.

        Ingested events are always kept: the ingestion check joins the whole ledger (which
        lists the left-out shoppers' acknowledged events too) with what the target stored.
        Campaign activity and profiles of left-out shoppers are dropped.
        """
        if obs.kind is ObservationKind.EVENT:
            return True
        return obs.person not in self.persons and obs.event_id not in self.events


def load_evidence(
    scenario: Scenario, *, seed: int, shoppers: int | None, ledger_path: Path
) -> tuple[Evidence, Exclusions]:
    """Evidence for the shoppers the load test replayed to the end, deliveries as they really arrived."""
    from generator.check import EvidenceBuilder
    from generator.faults import plan_deliveries
    from generator.simulate import simulate_shoppers

    by_shopper: dict[int, dict[str, deque[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(deque))
    cut: set[int] = set()
    if ledger_path.is_file():
        for row in read_ledger(ledger_path):
            k = int(str(row["shopper"]))
            by_shopper[k][str(row["event_id"])].append(row)
            if row.get("reason") == ENDED_REASON:
                cut.add(k)
    started = set(by_shopper)
    builder = EvidenceBuilder(scenario)
    excluded = Exclusions()
    deliveries: list[Delivery] = []
    last = max(started, default=-1)
    for life in simulate_shoppers(scenario, seed=seed, shoppers=shoppers):
        k = life.person.shopper
        if k > last:
            break
        if k not in started:
            continue
        planned = list(plan_deliveries(scenario, [life], seed=seed))
        if k in cut:
            excluded.shoppers.add(k)
            excluded.persons.update(p for p in (life.person.user_id, life.person.email) if p)
            excluded.events.update(d.event.id for d in planned)
            excluded.identifies.update(d.event.id for d in planned if d.event.type == CallType.IDENTIFY)
            continue
        builder.add_life(life)
        deliveries.extend(actual_deliveries(planned, by_shopper[k]))
    deliveries.sort(key=lambda d: d.arrival_ms)
    builder.add_deliveries(deliveries)
    evidence = builder.finish()
    # The ingestion check reads the whole ledger and skips identify calls (the target stores
    # people, not identify events) by the ids it knows: tell it about the left-out ones too.
    evidence.identify_ids.update(excluded.identifies)
    return evidence, excluded


def check_load(
    *,
    scenario: Scenario,
    scenario_path: Path,
    seed: int,
    shoppers: int | None,
    run_dir: Path,
    target: str,
    run_meta: Mapping[str, Any],
    thresholds: Sequence[Threshold],
    extra_metrics: Mapping[str, float | None],
    ledger_counts: Mapping[str, int],
) -> dict[str, Any]:
    """Observe the embedded emulator and run ``shopsim run``'s checks, thresholds and reports.

    Writes summary.json, report.html, junit.xml and expectations.ndjson like ``shopsim run``
    (``run_meta`` carries the load figures into summary.json under ``"load"``). Returns
    ``{"metrics", "failures", "examples", "thresholds", "passed"}``.
    """
    from generator.check import Observed
    from generator.observe import read_export
    from generator.pipeline import evaluate

    evidence, excluded = load_evidence(
        scenario, seed=seed, shoppers=shoppers, ledger_path=run_dir / "ledger.ndjson"
    )
    observations = (obs for obs in read_export(target) if excluded.keeps(obs))
    observed = Observed.build(observations, source="emulator", complete_events=True, comparable_times=True)
    result = evaluate(
        scenario,
        scenario_path=str(scenario_path),
        seed=seed,
        run_dir=run_dir,
        run_meta=run_meta,
        evidence=evidence,
        observed=observed,
        thresholds=thresholds,
        ledger_counts=ledger_counts,
        extra_metrics=extra_metrics,
        shoppers=shoppers,
    )
    check = result.check
    examples = [
        {"check": f.check, "title": f.title, "message": f.message, "cause": f.cause, "shopper": f.shopper}
        for f in check.failures[:20]
    ]
    return {
        "metrics": dict(check.metrics),
        "shoppers_checked": evidence.counts.get("shoppers", 0),
        "shoppers_left_out": len(excluded.shoppers),
        "failures": dict(check.failure_counts),
        "examples": examples,
        "thresholds": list(check.thresholds),
        "passed": check.passed,
    }
