"""Attribution: explain each deviation by the fault tags on the deliveries involved.

Every explanation is a :class:`Cause`: a stable ``kind`` (for counting and thresholds in
reports) and human ``text`` in the words DESIGN.md uses — "late Order Completed (arrived 74 min
after purchase; delay 60 min)", "duplicate Added to Cart with new id", "never identified",
"Added to Cart dropped by ad blocker", "schema drift: product_id sent as number" — or
``unexplained`` when no fault accounts for it (a platform or pipeline bug worth a look).
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.check.evidence import DeliveryInfo, Evidence, TruthEvent
from generator.expect import MERGE_WINDOW_MS, PURCHASE_EVENTS, STALE_MS


@dataclass(frozen=True, slots=True)
class Cause:
    """Why something deviated: ``kind`` for grouping, ``text`` for people."""

    kind: str
    text: str


UNEXPLAINED = Cause("unexplained", "unexplained")


def human_ms(ms: int) -> str:
    """A duration the way people say it: ``850 ms``, ``12 s``, ``74 min``, ``3.5 h``, ``4 d``."""
    ms = abs(int(ms))
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.0f} s"
    if ms < 2 * 3_600_000:
        return f"{ms / 60_000:.0f} min"
    if ms < 3 * 86_400_000:
        hours = ms / 3_600_000
        return f"{hours:.0f} h" if hours >= 10 else f"{hours:.1f} h"
    return f"{ms / 86_400_000:.1f} d"


def _arrived(infos: list[DeliveryInfo]) -> list[DeliveryInfo]:
    return sorted((i for i in infos if i.arrived), key=lambda i: i.arrival_ms)


def _tag(infos: list[DeliveryInfo], prefix: str) -> str | None:
    for info in infos:
        for tag in info.faults:
            if tag == prefix or tag.startswith(prefix + ":"):
                return tag
    return None


def lost(name: str, infos: list[DeliveryInfo]) -> Cause | None:
    """Why an event never arrived (drop, oversize, never identified), or ``None`` if it did."""
    if _arrived(infos):
        return None
    if _tag(infos, "drop"):
        return Cause("drop", f"{name} dropped by ad blocker")
    if _tag(infos, "never_identified"):
        return Cause("never_identified", f"never identified ({name} never arrived)")
    if any(i.oversize for i in infos) or _tag(infos, "oversize"):
        return Cause("oversize", f"{name} oversize (over the API's size limit, not sent)")
    if not infos:
        return Cause("not_sent", f"{name} was never sent")
    return Cause("drop", f"{name} was never delivered")


def drift(name: str, infos: list[DeliveryInfo]) -> Cause | None:
    """Name or schema drift on the first arrival of an event, if any."""
    tag = _tag(infos, "name_drift")
    if tag:
        _, _, pair = tag.partition(":")
        original, _, renamed = pair.partition(">")
        return Cause("name_drift", f"{original or name} sent as {renamed or '?'} (name drift)")
    tag = _tag(infos, "schema_drift:retype")
    if tag:
        parts = tag.split(":")
        prop = parts[2] if len(parts) > 2 else "?"
        kind = parts[3] if len(parts) > 3 else "another type"
        return Cause("schema_drift", f"schema drift: {prop} sent as {kind}")
    tag = _tag(infos, "schema_drift:rename")
    if tag:
        _, _, pair = tag.partition("rename:")
        original, _, renamed = pair.partition(">")
        return Cause("schema_drift", f"schema drift: {original} renamed to {renamed}")
    return None


def _lateness(info: DeliveryInfo) -> int:
    return info.arrival_ms - info.timestamp_ms


def _late_kind(info: DeliveryInfo) -> str:
    for kind in ("latency", "out_of_order", "clock_skew"):
        if _tag([info], kind):
            return kind
    return "latency"


def late_exit(
    ev: Evidence,
    exit_event: TruthEvent,
    send_at_ms: int,
    trigger_id: str,
    delay_ms: int,
    tolerance_ms: int = 0,
) -> Cause:
    """Why a message went out after the person's exit event (a suppression violation).

    ``tolerance_ms`` is the request clock's granularity: an exit that arrived that close before the
    send may have been processed in a request clocked after it.
    """
    infos = ev.deliveries_of(exit_event.id)
    name = exit_event.name
    gone = lost(name, infos)
    if gone is not None:
        return gone
    drifted = drift(name, infos)
    if drifted is not None and drifted.kind == "name_drift":
        return Cause("name_drift", drifted.text + ": it cannot exit the campaign")
    first = _arrived(infos)[0]
    what = "purchase" if name in PURCHASE_EVENTS else "the event"
    if first.arrival_ms >= send_at_ms:
        return Cause(
            _late_kind(first),
            f"late {name} (arrived {human_ms(_lateness(first))} after {what}; delay {human_ms(delay_ms)})",
        )
    if send_at_ms - first.arrival_ms <= tolerance_ms:
        return Cause(
            "batch_clock",
            f"{name} arrived {human_ms(send_at_ms - first.arrival_ms)} before the send, "
            "within one request's clock",
        )
    trigger_infos = _arrived(ev.deliveries_of(trigger_id))
    if trigger_infos and trigger_infos[0].arrival_ms > first.arrival_ms:
        trig = trigger_infos[0]
        return Cause(
            _late_kind(trig),
            f"late {trig.name} (arrived {human_ms(_lateness(trig))} after the event, "
            f"after {name} was processed)",
        )
    if not first.user_id and first.anonymous_id:
        identify = ev.identifies.get(first.anonymous_id)
        if identify is None or first.arrival_ms > identify.arrival_ms + MERGE_WINDOW_MS:
            return Cause("merge_window", f"anonymous {name} was never merged into the person")
    return UNEXPLAINED


def missed(ev: Evidence, name: str, trigger_id: str, shopper: int, delay_ms: int, reason: str = "") -> Cause:
    """Why a message the truth expects was not observed (``reason``: the delivered-basis NO_SEND reason)."""
    infos = ev.deliveries_of(trigger_id)
    if shopper not in ev.identified_shoppers:
        identify = ev.identify_infos.get(shopper, [])
        if _tag(identify, "never_identified"):
            return Cause("never_identified", "never identified (identify never arrived)")
        if identify and _tag(identify, "drop"):
            return Cause("drop", "identify dropped by ad blocker")
        if not _arrived(identify):
            return Cause("never_identified", "never identified")
    gone = lost(name, infos)
    if gone is not None:
        return gone
    drifted = drift(name, infos)
    if drifted is not None:
        return drifted
    first = _arrived(infos)[0]
    if reason == "stale" or _lateness(first) > STALE_MS:
        return Cause(
            "stale",
            f"late {name} (arrived {human_ms(_lateness(first))} after the event; "
            "beyond the 72-h trigger window)",
        )
    if not first.user_id and first.anonymous_id:
        identify_info = ev.identifies.get(first.anonymous_id)
        if identify_info is not None and first.arrival_ms > identify_info.arrival_ms + MERGE_WINDOW_MS:
            return Cause(
                "merge_window",
                f"anonymous {name} arrived {human_ms(first.arrival_ms - identify_info.arrival_ms)} "
                "after identify (beyond the 5-min merge window)",
            )
        if identify_info is None or reason == "anonymous":
            return Cause("never_identified", f"never identified (anonymous {name} never merged)")
    if (
        reason in ("purchased", "exited")
        and _lateness(first) > 0
        and any(t.split(":", 1)[0] in ("latency", "out_of_order", "clock_skew") for t in first.faults)
    ):
        return Cause(
            _late_kind(first),
            f"late {name} (arrived {human_ms(_lateness(first))} after the event; "
            f"delay {human_ms(delay_ms)}): the exit event was processed before the send",
        )
    if reason == "frequency":
        return Cause("frequency", f"{name} blocked by the campaign's frequency (another entry came first)")
    if reason:
        return Cause("platform_rules", f"platform rules: {reason}")
    return UNEXPLAINED


def extra(ev: Evidence, delivered_id: str, truth_id: str) -> Cause:
    """Why a message was sent that the truth does not expect (duplicate or false trigger)."""
    infos = ev.deliveries_of(truth_id)
    name = infos[0].name if infos else "event"
    if delivered_id != truth_id or any(i.event_id != truth_id and i.arrived for i in infos):
        # Either this entry is a copy, or a copy of the same truth event entered first.
        return Cause("double_fire", f"duplicate {name} with new id")
    if (
        _tag(infos, "retry_duplicate")
        and sum(1 for i in infos if i.event_id == delivered_id and i.arrived) > 1
    ):
        return Cause("retry_duplicate", f"retried {name} with the same id (not deduplicated)")
    if _tag(infos, "clock_skew"):
        return Cause("clock_skew", f"clock skew on {name} changed what the trigger saw")
    drifted = drift(name, infos)
    if drifted is not None:
        return drifted
    return UNEXPLAINED


def identified_late(ev: Evidence, name: str, shopper: int, trigger_ms: int) -> Cause | None:
    """Why the platform messaged someone the truth saw as unaddressable: they identified after
    the ideal send time, and the platform still triggers on anonymous events merged within 72 h
    of their timestamp (customerio.md §6). ``None`` if the shopper never identified in time for
    that rule."""
    truth = ev.shoppers.get(shopper)
    if truth is None or truth.identified_ms is None:
        return None
    gap = truth.identified_ms - trigger_ms
    if not 0 <= gap <= STALE_MS:
        return None
    return Cause(
        "identified_late",
        f"identified {human_ms(gap)} after an anonymous {name}: merged within 72 h, it still "
        "triggered (platform rules), later than the campaign's delay",
    )


def unaddressable(ev: Evidence, shopper: int) -> Cause:
    """Why a shopper with intent cannot be messaged."""
    truth = ev.shoppers.get(shopper)
    if truth is None or truth.identified_ms is None:
        return Cause("never_identified", "never identified")
    identify = ev.identify_infos.get(shopper, [])
    if _tag(identify, "never_identified"):
        return Cause("never_identified", "never identified (identify never arrived)")
    if _tag(identify, "drop"):
        return Cause("drop", "identify dropped by ad blocker")
    return Cause("never_identified", "never identified (identified after the send time)")


def unmerged(info: DeliveryInfo, identify: DeliveryInfo) -> Cause:
    """Why a pre-identify anonymous event is not on the merged profile."""
    gap = info.arrival_ms - identify.arrival_ms
    if gap > MERGE_WINDOW_MS:
        kind = _late_kind(info) if info.faults else "merge_window"
        return Cause(
            kind,
            f"anonymous {info.name or info.type} arrived {human_ms(gap)} after identify "
            "(beyond the 5-min merge window)",
        )
    return UNEXPLAINED


def violation_cause(faults: tuple[str, ...], field_path: str) -> Cause:
    """Which fault produced a tracking-plan violation, from the example's tags."""
    prop = field_path.removeprefix("properties.")
    for tag in faults:
        parts = tag.split(":")
        if tag.startswith("schema_drift:retype:") and len(parts) > 3 and parts[2] == prop:
            return Cause("schema_drift", f"schema drift: {prop} sent as {parts[3]}")
        if tag.startswith("schema_drift:rename:"):
            original, _, renamed = tag.partition("rename:")[2].partition(">")
            if prop in (original, renamed):
                return Cause("schema_drift", f"schema drift: {original} renamed to {renamed}")
        if tag == "schema_drift:noise":
            return Cause("schema_drift", "schema drift: noise properties")
        if tag.startswith("name_drift:"):
            original, _, renamed = tag.partition(":")[2].partition(">")
            return Cause("name_drift", f"{original} sent as {renamed} (name drift)")
    return UNEXPLAINED
