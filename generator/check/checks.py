"""The built-in checks. Each is small, reads :class:`CheckContext` and reports into a :class:`Collector`.

Metric names are those in ``generator.scenario.model.METRICS``; per-campaign values are scoped
``name[campaign]``. Units: counts are plain numbers, shares are in [0, 1], times are ms.
"""

from __future__ import annotations

from itertools import compress

from generator.check import attribution
from generator.check.context import CheckContext
from generator.check.model import Failure, Severity
from generator.check.registry import Collector, check
from generator.events import Outcome
from generator.expect import MERGE_WINDOW_MS

_SEND = Outcome.SEND
_NO_SEND = Outcome.NO_SEND
# Enum members cost ~90 ns a lookup on CPython 3.11; the checks loop once per expectation.


def _ratio(num: int, den: int) -> float:
    # Nothing expected means nothing missed: recall 1.0, with NOTHING_EXPECTED as its note.
    return 1.0 if den == 0 else num / den


def _share(num: int, den: int) -> float:
    # A share of nothing is 0: no message, no violation (the caller notes it).
    return 0.0 if den == 0 else num / den


NOTHING_EXPECTED = "nothing was expected (0 of 0): the scenario produced no message to recall"
"""The note on a recall whose denominator is zero: a passing 1.0 that tested nothing."""


def _recall(out: Collector, metric: str, hit: int, expected: int, scope: str | None = None) -> None:
    out.metric(metric, _ratio(hit, expected), scope=scope, note="" if expected else NOTHING_EXPECTED)


def _counts(out: Collector, metric: str, per_campaign: dict[str, int]) -> None:
    """Emit ``metric`` as the total over campaigns and once per campaign (``metric[campaign]``)."""
    out.metric(metric, sum(per_campaign.values()))
    for campaign, n in per_campaign.items():
        out.metric(metric, n, scope=campaign)


@check
def trigger_recall(ctx: CheckContext, out: Collector) -> None:
    """Share of the truth's expected messages that were sent (per campaign and overall)."""
    ev = ctx.evidence
    pairing = ctx.pairing
    expected: dict[str, int] = dict.fromkeys(ev.scenario.campaigns, 0)
    for (campaign_name, outcome, _), n in ctx.truth_outcomes.items():
        if outcome is _SEND:
            expected[campaign_name] = expected.get(campaign_name, 0) + n
    missed: dict[str, int] = {}
    for exp in pairing.missed:
        missed[exp.campaign] = missed.get(exp.campaign, 0) + 1
        campaign = ev.scenario.campaigns[exp.campaign]
        name = campaign.trigger.event_name
        delivered = ctx.delivered_by_trigger.get(exp.campaign, exp.trigger_event_id)
        reason = delivered.reason if delivered is not None and delivered.outcome is _NO_SEND else ""
        cause = attribution.missed(ev, name, exp.trigger_event_id, exp.shopper, campaign.delay, reason)
        out.fail(
            Failure(
                check="trigger_recall",
                severity=Severity.MEDIUM,
                title=f"expected {exp.campaign} message not sent",
                message=f"{exp.person or 'shopper ' + str(exp.shopper)} should have got {exp.campaign} "
                f"(trigger {name} {exp.trigger_event_id}); nothing was sent",
                cause=cause.text,
                cause_kind=cause.kind,
                campaign=exp.campaign,
                person=exp.person,
                shopper=exp.shopper,
                event_id=exp.trigger_event_id,
            )
        )
    total_expected = sum(expected.values())
    total_missed = sum(missed.values())
    _recall(out, "trigger_recall", total_expected - total_missed, total_expected)
    for cname, n in expected.items():
        _recall(out, "trigger_recall", n - missed.get(cname, 0), n, scope=cname)


@check
def suppression_violations(ctx: CheckContext, out: Collector) -> None:
    """Messages sent after the person's exit event (e.g. a purchase) happened in truth — the headline."""
    ev = ctx.evidence
    per: dict[str, int] = dict.fromkeys(ev.scenario.campaigns, 0)
    for verdict in ctx.pairing.verdicts:
        if verdict.category != "violation" or verdict.exit_event is None:
            continue
        send = verdict.send
        per[send.campaign] = per.get(send.campaign, 0) + 1
        campaign = ev.scenario.campaigns[send.campaign]
        cause = attribution.late_exit(
            ev, verdict.exit_event, send.at_ms, verdict.truth_id, campaign.delay, ctx.clock_tolerance_ms
        )
        out.fail(
            Failure(
                check="suppression_violations",
                severity=Severity.CRITICAL,
                title=f"{send.campaign} message sent after {verdict.exit_event.name}",
                message=f"{send.person} got {send.campaign} (trigger {send.trigger_event_id}) after "
                f"{verdict.exit_event.name} {verdict.exit_event.id}",
                cause=cause.text,
                cause_kind=cause.kind,
                campaign=send.campaign,
                person=send.person,
                shopper=verdict.shopper,
                event_id=send.trigger_event_id,
            )
        )
    _counts(out, "suppression_violations", per)
    # The same as a share of the messages sent: a threshold that holds at any run size (a count
    # grows with the shoppers, and a realistic latency tail makes a few violations certain).
    sent: dict[str, int] = dict.fromkeys(ev.scenario.campaigns, 0)
    for journey in ctx.observed.sends:
        sent[journey.campaign] = sent.get(journey.campaign, 0) + 1
    none_sent = "no message was sent: nothing could violate suppression"
    total = sum(sent.values())
    violations = sum(per.values())
    out.metric("suppression_violation_rate", _share(violations, total), note="" if total else none_sent)
    for campaign_name, n in sent.items():
        out.metric(
            "suppression_violation_rate",
            _share(per.get(campaign_name, 0), n),
            scope=campaign_name,
            note="" if n else none_sent,
        )


@check
def false_triggers(ctx: CheckContext, out: Collector) -> None:
    """Messages sent with no truth expectation behind them (and not explained as duplicates)."""
    ev = ctx.evidence
    per: dict[str, int] = dict.fromkeys(ev.scenario.campaigns, 0)
    for verdict in ctx.pairing.verdicts:
        if verdict.category != "false":
            continue
        send = verdict.send
        per[send.campaign] = per.get(send.campaign, 0) + 1
        cause = attribution.extra(ev, send.trigger_event_id, verdict.truth_id)
        truth = ctx.truth_by_trigger.get(send.campaign, verdict.truth_id)
        why = f"the truth says no ({truth.reason})" if truth is not None else "no truth trigger matches"
        if cause is attribution.UNEXPLAINED and truth is not None and truth.reason == "unaddressable":
            delivered = ctx.delivered_by_trigger.get(send.campaign, send.trigger_event_id)
            if delivered is not None and delivered.outcome is _SEND:
                # A correct platform sends here too: the disagreement is the merge rule's.
                name = ev.scenario.campaigns[send.campaign].trigger.event_name
                late = attribution.identified_late(ev, name, truth.shopper, truth.trigger_ms)
                cause = late or cause
        out.fail(
            Failure(
                check="false_triggers",
                severity=Severity.HIGH,
                title=f"{send.campaign} message sent without a trigger",
                message=f"{send.person} got {send.campaign} (trigger {send.trigger_event_id}); {why}",
                cause=cause.text,
                cause_kind=cause.kind,
                campaign=send.campaign,
                person=send.person,
                shopper=verdict.shopper,
                event_id=send.trigger_event_id,
            )
        )
    _counts(out, "false_triggers", per)


@check
def duplicate_entries(ctx: CheckContext, out: Collector) -> None:
    """Entries beyond the campaign's frequency: a second entry for the same truth trigger, or too soon."""
    ev = ctx.evidence
    observed = ctx.observed
    journeys = observed.entries if observed.entries else observed.sends
    groups: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    for j in journeys:
        groups.setdefault((j.campaign, j.person), []).append((j.at_ms, j.trigger_event_id, j.person))
    per: dict[str, int] = dict.fromkeys(ev.scenario.campaigns, 0)
    for (campaign_name, person), items in groups.items():
        campaign = ev.scenario.campaigns.get(campaign_name)
        if campaign is None:
            continue
        gap = campaign.reentry_ms
        items.sort()
        seen: set[str] = set()
        last: int | None = None
        for at_ms, delivered_id, _ in items:
            truth_id = ev.truth_id(delivered_id)
            repeat = truth_id in seen
            too_soon = last is not None and (gap is None or at_ms - last < gap)
            if not repeat and not too_soon:
                seen.add(truth_id)
                last = at_ms
                continue
            per[campaign_name] = per.get(campaign_name, 0) + 1
            cause = attribution.extra(ev, delivered_id, truth_id)
            what = "again for the same trigger" if repeat else "again within its frequency window"
            shopper = ctx.shopper_of(person)
            out.fail(
                Failure(
                    check="duplicate_entries",
                    severity=Severity.MEDIUM,
                    title=f"{campaign_name} entered {what}",
                    message=f"{person} entered {campaign_name} {what} (trigger {delivered_id})",
                    cause=cause.text,
                    cause_kind=cause.kind,
                    campaign=campaign_name,
                    person=person,
                    shopper=shopper,
                    event_id=delivered_id,
                )
            )
    _counts(out, "duplicate_entries", per)


@check
def unaddressable_intent(ctx: CheckContext, out: Collector) -> None:
    """Shoppers who showed intent (an event-triggered campaign's trigger, e.g. a cart) but could never
    be messaged: never identified, or their identify never reached the target. Behaviour triggers
    (browsing) are interest, not intent, and are not counted."""
    ev = ctx.evidence
    event_triggered = {name for name, c in ev.scenario.campaigns.items() if c.trigger.behavior is None}
    intent: dict[int, tuple[str, str]] = {}
    for exp in ev.truth:
        if exp.campaign not in event_triggered or exp.shopper in intent:
            continue
        lost_identity = exp.outcome is _SEND and exp.shopper not in ev.identified_shoppers
        if exp.reason == "unaddressable" or lost_identity:
            intent[exp.shopper] = (exp.campaign, exp.trigger_event_id)
    for shopper, (campaign, trigger_id) in intent.items():
        cause = attribution.unaddressable(ev, shopper)
        truth = ev.shoppers.get(shopper)
        severity = Severity.INFO if truth is None or truth.identified_ms is None else Severity.LOW
        out.fail(
            Failure(
                check="unaddressable_intent",
                severity=severity,
                title="intent with nobody addressable",
                message=f"shopper {shopper} triggered {campaign} ({trigger_id}); not identified",
                cause=cause.text,
                cause_kind=cause.kind,
                campaign=campaign,
                shopper=shopper,
                event_id=trigger_id,
            )
        )
    out.metric("unaddressable_intent", len(intent))


@check
def merge_completeness(ctx: CheckContext, out: Collector) -> None:
    """Share of pre-identify anonymous events found on the merged profile."""
    ev = ctx.evidence
    observed = ctx.observed
    if not observed.complete_events:
        out.metric("merge_completeness", None)
        return
    total = 0
    merged = 0
    people = observed.events
    anonymous = ev.anonymous
    identifies = ev.identifies
    anonymous_ids, event_ids, stamps = anonymous.anonymous_id, anonymous.event_id, anonymous.timestamp_ms
    # Only anonymous ids that were ever identified can merge: found in C, most rows never are.
    for row in compress(range(len(anonymous)), map(identifies.__contains__, anonymous_ids)):
        identify = identifies[anonymous_ids[row]]
        if identify.user_id is None or stamps[row] > identify.timestamp_ms:
            continue
        total += 1
        if people.get(event_ids[row]) == identify.user_id:
            merged += 1
            continue
        info = anonymous.info(row)
        cause = attribution.unmerged(info, identify)
        out.fail(
            Failure(
                check="merge_completeness",
                severity=Severity.LOW,
                title="anonymous event not on the merged profile",
                message=f"{info.name or info.type} {info.event_id} (anonymous id {info.anonymous_id}) "
                f"is not on {identify.user_id}'s profile",
                cause=cause.text,
                cause_kind=cause.kind,
                person=identify.user_id,
                shopper=info.shopper,
                event_id=info.event_id,
            )
        )
    out.metric("merge_completeness", _ratio(merged, total))
    out.detail("merge", {"pre_identify_anonymous": total, "merged": merged, "window_ms": MERGE_WINDOW_MS})


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in [0, 100])."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return float(sorted_values[rank - 1])


@check
def send_time_error(ctx: CheckContext, out: Collector) -> None:
    """How far each served message's send time is from the ideal (truth) send time, |observed − ideal|."""
    if not ctx.observed.comparable_times:
        out.metric("send_time_error_p50_ms", None)
        out.metric("send_time_error_p95_ms", None)
        return
    errors: list[int] = []
    per: dict[str, list[int]] = {}
    signed: list[int] = []
    for verdict in ctx.pairing.verdicts:
        exp = verdict.expectation
        if exp is None or exp.send_ms is None:
            continue
        delta = verdict.send.at_ms - exp.send_ms
        signed.append(delta)
        errors.append(abs(delta))
        per.setdefault(exp.campaign, []).append(abs(delta))
    errors.sort()
    out.metric("send_time_error_p50_ms", percentile(errors, 50))
    out.metric("send_time_error_p95_ms", percentile(errors, 95))
    for campaign, values in per.items():
        values.sort()
        out.metric("send_time_error_p50_ms", percentile(values, 50), scope=campaign)
        out.metric("send_time_error_p95_ms", percentile(values, 95), scope=campaign)
    out.detail("send_time_error_ms", signed)


@check
def tracking_plan(ctx: CheckContext, out: Collector) -> None:
    """Delivered events against the tracking plan (Segment Protocols' Required / Datatype / Unplanned-*)."""
    total = 0
    rows = []
    for violation in ctx.evidence.violations.values():
        total += violation.count
        example_id, shopper, faults = violation.examples[0]
        cause = attribution.violation_cause(faults, violation.field_path)
        rows.append(
            {
                "violationType": violation.type,
                "violationField": violation.field_path,
                "violationDescription": violation.description,
                "eventName": violation.event,
                "eventMessageID": example_id,
                "count": violation.count,
                "cause": cause.text,
            }
        )
        out.fail(
            Failure(
                check="tracking_plan",
                severity=Severity.LOW,
                title=f"{violation.type} {violation.field_path} on {violation.event}",
                message=f"{violation.description} ({violation.count} events, e.g. {example_id})",
                cause=cause.text,
                cause_kind=cause.kind,
                shopper=shopper,
                event_id=example_id,
                count=violation.count,
            )
        )
    out.metric("tracking_plan_violations", total)
    rows.sort(key=lambda r: (-int(r["count"]), str(r["eventName"]), str(r["violationField"])))  # type: ignore[call-overload]
    out.detail("violations", rows)


@check
def ingestion_loss(ctx: CheckContext, out: Collector) -> None:
    """Events the target acknowledged (ledger) that it does not have."""
    observed = ctx.observed
    path = ctx.ledger_path
    if not observed.complete_events or path is None or not path.is_file():
        out.metric("ingestion_loss", None)
        return
    from generator.deliver.ledger import acknowledged_ids, read_ledger

    events = observed.events
    identify_ids = ctx.evidence.identify_ids
    missing: set[str] = set()
    acknowledged = 0
    for ids in acknowledged_ids(path):
        acknowledged += len(ids)
        # Set operations in C; identifies update profiles and are not events.
        missing.update(set(ids).difference(events, identify_ids))
    if missing:
        # Rare (a target bug): read the file again for what the report says about each one.
        reported: set[str] = set()
        for row in read_ledger(path):
            event_id = str(row.get("event_id") or "")
            if row.get("state") != "acknowledged" or event_id not in missing or event_id in reported:
                continue
            reported.add(event_id)
            out.fail(
                Failure(
                    check="ingestion_loss",
                    severity=Severity.HIGH,
                    title="acknowledged event missing at the target",
                    message=f"{row.get('name') or 'event'} {event_id} was acknowledged ({row.get('status')}) "
                    "but is not in the target's data",
                    cause="unexplained (acknowledged but not stored)",
                    shopper=row.get("shopper"),  # type: ignore[arg-type]
                    event_id=event_id,
                )
            )
    out.metric("ingestion_loss", len(missing))
    out.detail("ingestion", {"acknowledged": acknowledged, "missing": len(missing)})


def _platform_cause(ctx: CheckContext, exit_event_id: str | None, send_ms: int | None) -> tuple[str, str]:
    """Why observed and platform-rule sends disagree: the request clock, wall-clock timing, or unexplained."""
    if not ctx.observed.comparable_times:
        return (
            "timing",
            "wall-clock run: arrivals were not spaced as planned (pace with --speed to compare timing)",
        )
    if exit_event_id and send_ms is not None:
        ev = ctx.evidence
        arrivals = [
            i.arrival_ms
            for i in ev.deliveries_of(ev.truth_id(exit_event_id))
            if i.event_id == exit_event_id and i.arrived
        ]
        if arrivals and abs(min(arrivals) - send_ms) <= ctx.clock_tolerance_ms:
            return (
                "batch_clock",
                f"exit event arrived within {ctx.clock_tolerance_ms} ms of the send: the request's clock "
                "(its first event's arrival) decided the order",
            )
    return "unexplained", "unexplained (platform or pipeline bug)"


@check
def platform_rules(ctx: CheckContext, out: Collector) -> None:
    """Observed sends against what a correct platform must do with what it received (delivered basis)."""
    ev = ctx.evidence
    expected: dict[tuple[str, str], bool] = {}
    per_expected: dict[str, int] = dict.fromkeys(ev.scenario.campaigns, 0)
    for exp in ev.delivered:
        if exp.outcome is _SEND:
            expected[(exp.campaign, exp.trigger_event_id)] = False
            per_expected[exp.campaign] = per_expected.get(exp.campaign, 0) + 1
    per_hit: dict[str, int] = {}
    for send in ctx.observed.sends:
        key = (send.campaign, send.trigger_event_id)
        if key in expected:
            if not expected[key]:
                expected[key] = True
                per_hit[send.campaign] = per_hit.get(send.campaign, 0) + 1
            continue
        rule = ctx.delivered_by_trigger.get(send.campaign, send.trigger_event_id)
        why = (
            f"platform rules say no ({rule.reason})" if rule is not None else "no delivered event triggers it"
        )
        kind, cause = _platform_cause(ctx, rule.exit_event_id if rule is not None else None, send.at_ms)
        out.fail(
            Failure(
                check="platform_rules",
                severity=Severity.HIGH if kind == "unexplained" else Severity.LOW,
                title=f"{send.campaign} sent against the platform rules",
                message=f"{send.person} got {send.campaign} (trigger {send.trigger_event_id}); {why}",
                cause=cause,
                cause_kind=kind,
                campaign=send.campaign,
                person=send.person,
                shopper=ctx.shopper_of(send.person),
                event_id=send.trigger_event_id,
            )
        )
    exits = {(j.campaign, j.trigger_event_id): j.exit_event_id for j in ctx.observed.exits}
    for exp in ev.delivered:
        if exp.outcome is not _SEND or expected.get((exp.campaign, exp.trigger_event_id)):
            continue
        kind, cause = _platform_cause(ctx, exits.get((exp.campaign, exp.trigger_event_id)), exp.send_ms)
        out.fail(
            Failure(
                check="platform_rules",
                severity=Severity.HIGH if kind == "unexplained" else Severity.LOW,
                title=f"{exp.campaign} not sent though the platform rules require it",
                message=f"{exp.person} should have got {exp.campaign} at {exp.send_ms} from what the target "
                f"received (trigger {exp.trigger_event_id}); nothing was sent",
                cause=cause,
                cause_kind=kind,
                campaign=exp.campaign,
                person=exp.person,
                shopper=exp.shopper,
                event_id=exp.trigger_event_id,
            )
        )
    total = sum(per_expected.values())
    _recall(out, "delivered_recall", sum(per_hit.values()), total)
    for campaign, n in per_expected.items():
        _recall(out, "delivered_recall", per_hit.get(campaign, 0), n, scope=campaign)


@check
def campaign_outcomes(ctx: CheckContext, out: Collector) -> None:
    """The per-campaign outcome table of the report (no failures of its own)."""
    ev = ctx.evidence
    rows: dict[str, dict[str, int]] = {
        name: {
            "truth_send": 0,
            "truth_suppressed": 0,
            "truth_unaddressable": 0,
            "delivered_send": 0,
            "entered": 0,
            "sent": 0,
            "exited": 0,
            "ok": 0,
            "violation": 0,
            "duplicate": 0,
            "false": 0,
        }
        for name in ev.scenario.campaigns
    }
    for (campaign_name, outcome, reason), n in ctx.truth_outcomes.items():
        row = rows.setdefault(campaign_name, {})
        if outcome is _SEND:
            row["truth_send"] = row.get("truth_send", 0) + n
        elif reason in ("purchased", "exited"):
            row["truth_suppressed"] = row.get("truth_suppressed", 0) + n
        elif reason == "unaddressable":
            row["truth_unaddressable"] = row.get("truth_unaddressable", 0) + n
    for (campaign_name, outcome, _), n in ctx.delivered_outcomes.items():
        if outcome is _SEND:
            row = rows.setdefault(campaign_name, {})
            row["delivered_send"] = row.get("delivered_send", 0) + n
    observed = ctx.observed
    for kind, journeys in (
        ("entered", observed.entries),
        ("sent", observed.sends),
        ("exited", observed.exits),
    ):
        for j in journeys:
            row = rows.setdefault(j.campaign, {})
            row[kind] = row.get(kind, 0) + 1
    for verdict in ctx.pairing.verdicts:
        row = rows.setdefault(verdict.send.campaign, {})
        row[verdict.category] = row.get(verdict.category, 0) + 1
    out.detail("campaigns", rows)
