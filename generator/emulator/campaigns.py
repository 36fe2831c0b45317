"""The campaign engine: triggers, delays, exits, frequency and sends, computed online.

This is one of shopsim's two independent implementations of the campaign model (DESIGN.md,
"The campaign model"); the other is ``generator/expect.py``. They share only the scenario's
``Campaign`` / ``Trigger`` / ``Filter`` / ``Behavior`` definitions and are pinned together by
the golden cases in ``tests/golden/campaign_cases``.

Rules, in the order they are applied when an event is processed for a person at time ``now``
(the association time: arrival, or the identify that merged an anonymous event):

1. ``exit_on``: a pending journey of the person in a campaign whose ``exit_on`` names the event
   ends as ``exited`` (the event was processed after entry and before the send).
2. Trigger: the event's name is the trigger event (track events only, names trimmed), and
   - the person is identified (anonymous events never enter: skip ``anonymous``);
   - the event is not history moved in by ``merge_customers`` (skip ``secondary``);
   - ``now - timestamp <= 72 h`` (skip ``stale``);
   - every ``where`` filter matches, and for a behaviour trigger the person has performed the
     event ``at_least`` times with timestamps in ``[ts - within, ts]`` (this one included) and
     none of ``and_not`` in ``[ts - and_not_within, ts]`` (skip ``filter``);
   - ``frequency`` allows it: ``every_time``; ``once`` = never entered before; ``once_per: D`` =
     the last entry was more than D ago (skip ``frequency``).
3. Entry: a journey is due at ``now + delay``. When the clock reaches it, the message is
   ``sent`` if the person is addressable (live, has an email, not suppressed, not unsubscribed),
   otherwise ``dropped`` with the reason (``deleted``, ``suppressed``, ``no_email``,
   ``unsubscribed``).

Why ``now`` and not the event timestamp drives delays and frequency: a real workspace acts
when it processes an event, so a late event enters late (the sender's lateness is the fault
the checker attributes).
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from generator.emulator.identity import People, Profile
from generator.emulator.store import Store
from generator.scenario.model import Campaign

STALE_MS = 72 * 3_600_000
"""An event triggers only if associated within 72 h of its timestamp."""


def campaign_ids(campaigns: Mapping[str, Campaign]) -> dict[str, int]:
    """Stable numeric ids: the configured ``id`` or the 1-based position, skipping used ids
    (the same rule as ``Scenario.campaign_ids``)."""
    used = {c.id for c in campaigns.values() if c.id is not None}
    out: dict[str, int] = {}
    next_id = 1
    for name, campaign in campaigns.items():
        if campaign.id is not None:
            out[name] = campaign.id
            continue
        while next_id in used:
            next_id += 1
        out[name] = next_id
        used.add(next_id)
    return out


@dataclass(slots=True, frozen=True)
class EventFacts:
    """What the engine needs to know about a processed event."""

    event_id: str
    name: str
    type: str
    timestamp_ms: int
    properties: Mapping[str, Any]


@dataclass(slots=True)
class Journey:
    """A pending campaign entry."""

    seq: int
    campaign: str
    campaign_id: int
    cio_id: str
    person: str | None
    trigger_event_id: str
    entered_ms: int
    due_ms: int


@dataclass(slots=True, frozen=True)
class Delivery:
    """A finished journey that produced a message (sent or dropped), for webhooks."""

    journey_seq: int
    campaign: str
    campaign_id: int
    delivery_id: str
    metric: str  # "sent" | "dropped"
    at_ms: int
    trigger_event_id: str
    identifiers: Mapping[str, str | None]
    recipient: str | None
    reason: str
    message: str


class CampaignEngine:
    """Campaign state for every person, with write-through to the store."""

    def __init__(
        self,
        store: Store,
        people: People,
        campaigns: Mapping[str, Campaign],
        *,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        self._store = store
        self._people = people
        self.campaigns = dict(campaigns)
        self.ids = campaign_ids(self.campaigns)
        self._on_delivery = on_delivery
        self._by_trigger: dict[str, list[str]] = {}
        self._by_exit: dict[str, list[str]] = {}
        self._history_names: set[str] = set()
        for name, campaign in self.campaigns.items():
            self._by_trigger.setdefault(campaign.trigger.event_name, []).append(name)
            for exit_name in campaign.exit_on:
                self._by_exit.setdefault(exit_name, []).append(name)
            behavior = campaign.trigger.behavior
            if behavior is not None:
                self._history_names.add(behavior.event)
                self._history_names.update(behavior.and_not)
        self.pending: dict[int, Journey] = {}
        self._heap: list[tuple[int, int]] = []
        self._pending_by_person: dict[str, list[int]] = {}
        self._last_entry: dict[tuple[str, str], int] = {}
        self._history: dict[str, dict[str, list[int]]] = {}
        self._next_seq = 1
        self._next_skip = 1
        self._load()

    # ------------------------------------------------------------------ recovery

    def _load(self) -> None:
        rows = self._store.query("SELECT MAX(seq) FROM journeys")
        self._next_seq = (rows[0][0] or 0) + 1
        rows = self._store.query("SELECT MAX(seq) FROM skips")
        self._next_skip = (rows[0][0] or 0) + 1
        for campaign, cio, last in self._store.query(
            "SELECT campaign, cio_id, MAX(entered_ms) FROM journeys GROUP BY campaign, cio_id"
        ):
            self._last_entry[(campaign, cio)] = last
        for row in self._store.query(
            "SELECT seq, campaign, campaign_id, cio_id, person, trigger_event_id, entered_ms, due_ms"
            " FROM journeys WHERE outcome = 'pending' ORDER BY seq"
        ):
            journey = Journey(*row)
            self._add_pending(journey)
        if self._history_names:
            marks = ",".join("?" for _ in self._history_names)
            for cio, name, ts in self._store.query(
                f"SELECT cio_id, name, timestamp_ms FROM events WHERE cio_id IS NOT NULL AND type = 'event'"
                f" AND outcome IN ('accepted', 'merged_anonymous', 'merged_secondary') AND name IN ({marks})",
                tuple(sorted(self._history_names)),
            ):
                bisect.insort(self._history.setdefault(cio, {}).setdefault(name, []), ts)

    def _add_pending(self, journey: Journey) -> None:
        self.pending[journey.seq] = journey
        heapq.heappush(self._heap, (journey.due_ms, journey.seq))
        self._pending_by_person.setdefault(journey.cio_id, []).append(journey.seq)

    # ------------------------------------------------------------------ events

    def relevant(self, name: str) -> bool:
        """Whether an event name matters to any campaign (trigger, exit or behaviour history)."""
        return name in self._by_trigger or name in self._by_exit or name in self._history_names

    def process(self, profile: Profile, event: EventFacts, now_ms: int) -> None:
        """An event processed for an identified person (live, or an anonymous event merged now)."""
        if event.type != "event" or not self.campaigns:
            return
        name = event.name
        if name in self._history_names:
            bisect.insort(
                self._history.setdefault(profile.cio_id, {}).setdefault(name, []), event.timestamp_ms
            )
        for campaign_name in self._by_exit.get(name, ()):
            self._exit(profile.cio_id, campaign_name, event, now_ms)
        for campaign_name in self._by_trigger.get(name, ()):
            self._consider(profile, campaign_name, event, now_ms)

    def process_anonymous(self, event: EventFacts, now_ms: int) -> None:
        """An event nobody is known for (yet): it cannot trigger, so matches are recorded as skips."""
        if event.type != "event":
            return
        for campaign_name in self._by_trigger.get(event.name, ()):
            self._skip(campaign_name, None, None, event, now_ms, "anonymous")

    def absorb_secondary(self, primary: Profile, events: list[EventFacts], now_ms: int) -> None:
        """History moved in by ``merge_customers``: counts for behaviour windows, never triggers or exits."""
        for event in events:
            if event.type != "event":
                continue
            if event.name in self._history_names:
                bisect.insort(
                    self._history.setdefault(primary.cio_id, {}).setdefault(event.name, []),
                    event.timestamp_ms,
                )
            for campaign_name in self._by_trigger.get(event.name, ()):
                self._skip(campaign_name, primary.cio_id, primary.label, event, now_ms, "secondary")

    def reassign(self, secondary: str, primary: str) -> None:
        """After ``merge_customers``: in-progress journeys continue on the primary; completed
        ones count for its re-entry rules."""
        for seq in self._pending_by_person.pop(secondary, []):
            journey = self.pending.get(seq)
            if journey is None:
                continue
            journey.cio_id = primary
            self._pending_by_person.setdefault(primary, []).append(seq)
            self._store.execute("UPDATE journeys SET cio_id = ? WHERE seq = ?", (primary, seq))
        for (campaign, cio), last in list(self._last_entry.items()):
            if cio == secondary:
                key = (campaign, primary)
                self._last_entry[key] = max(last, self._last_entry.get(key, last))
        moved = self._history.pop(secondary, None)
        if moved:
            target = self._history.setdefault(primary, {})
            for name, stamps in moved.items():
                merged = target.setdefault(name, [])
                for ts in stamps:
                    bisect.insort(merged, ts)

    def _exit(self, cio: str, campaign_name: str, event: EventFacts, now_ms: int) -> None:
        seqs = self._pending_by_person.get(cio)
        if not seqs:
            return
        keep: list[int] = []
        for seq in seqs:
            journey = self.pending.get(seq)
            if journey is None:
                continue
            if journey.campaign != campaign_name:
                keep.append(seq)
                continue
            del self.pending[seq]
            self._store.execute(
                "UPDATE journeys SET outcome = 'exited', at_ms = ?, exit_event_id = ?, reason = ?"
                " WHERE seq = ?",
                (now_ms, event.event_id, f"exit_on:{event.name}", seq),
            )
        if keep:
            self._pending_by_person[cio] = keep
        else:
            self._pending_by_person.pop(cio, None)

    def _consider(self, profile: Profile, campaign_name: str, event: EventFacts, now_ms: int) -> None:
        campaign = self.campaigns[campaign_name]
        if now_ms - event.timestamp_ms > STALE_MS:
            self._skip(campaign_name, profile.cio_id, profile.label, event, now_ms, "stale")
            return
        trigger = campaign.trigger
        if not all(f.matches(event.properties) for f in trigger.where) or (
            trigger.behavior is not None and not self._behaviour_holds(profile.cio_id, campaign, event)
        ):
            self._skip(campaign_name, profile.cio_id, profile.label, event, now_ms, "filter")
            return
        last = self._last_entry.get((campaign_name, profile.cio_id))
        if last is not None:
            gap = campaign.reentry_ms
            if gap is None or (gap > 0 and now_ms - last < gap):
                self._skip(campaign_name, profile.cio_id, profile.label, event, now_ms, "frequency")
                return
        self._enter(profile, campaign_name, campaign, event, now_ms)

    def _behaviour_holds(self, cio: str, campaign: Campaign, event: EventFacts) -> bool:
        behavior = campaign.trigger.behavior
        assert behavior is not None
        history = self._history.get(cio, {})
        ts = event.timestamp_ms
        stamps = history.get(behavior.event, [])
        count = bisect.bisect_right(stamps, ts) - bisect.bisect_left(stamps, ts - behavior.within)
        if count < behavior.at_least:
            return False
        window = behavior.exclusion_window
        for other in behavior.and_not:
            marks = history.get(other, [])
            if bisect.bisect_right(marks, ts) - bisect.bisect_left(marks, ts - window) > 0:
                return False
        return True

    def _enter(
        self, profile: Profile, campaign_name: str, campaign: Campaign, event: EventFacts, now_ms: int
    ) -> None:
        seq = self._next_seq
        self._next_seq += 1
        journey = Journey(
            seq=seq,
            campaign=campaign_name,
            campaign_id=self.ids[campaign_name],
            cio_id=profile.cio_id,
            person=profile.label,
            trigger_event_id=event.event_id,
            entered_ms=now_ms,
            due_ms=now_ms + campaign.delay,
        )
        self._last_entry[(campaign_name, profile.cio_id)] = now_ms
        self._store.execute(
            "INSERT INTO journeys(seq, campaign, campaign_id, cio_id, person, trigger_event_id, entered_ms,"
            " due_ms,"
            " outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', '')",
            (
                seq,
                campaign_name,
                journey.campaign_id,
                profile.cio_id,
                profile.label,
                event.event_id,
                now_ms,
                journey.due_ms,
            ),
        )
        self._add_pending(journey)

    def _skip(
        self,
        campaign_name: str,
        cio: str | None,
        person: str | None,
        event: EventFacts,
        now_ms: int,
        reason: str,
    ) -> None:
        seq = self._next_skip
        self._next_skip += 1
        # Queued, not executed: one skip per anonymous trigger event adds up, and consecutive
        # rows go to SQLite in one executemany (any other store call flushes them first).
        self._store.append(
            "INSERT INTO skips(seq, campaign, campaign_id, cio_id, person, trigger_event_id, at_ms, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, campaign_name, self.ids[campaign_name], cio, person, event.event_id, now_ms, reason),
        )

    # ------------------------------------------------------------------ time

    def next_due(self) -> int | None:
        """When the earliest pending message is due (epoch ms), if any."""
        while self._heap and self._heap[0][1] not in self.pending:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def fire_due(self, now_ms: int, *, at_due_time: bool) -> int:
        """Finish every journey due at or before ``now_ms`` (in due order); returns how many.

        ``at_due_time`` (virtual clock) stamps each message at its due time; the wall clock
        stamps the time it actually went out.
        """
        fired = 0
        while self._heap and self._heap[0][0] <= now_ms:
            due, seq = heapq.heappop(self._heap)
            journey = self.pending.pop(seq, None)
            if journey is None:
                continue
            seqs = self._pending_by_person.get(journey.cio_id)
            if seqs is not None:
                with contextlib.suppress(ValueError):
                    seqs.remove(seq)
                if not seqs:
                    del self._pending_by_person[journey.cio_id]
            self._finish(journey, due if at_due_time else max(due, now_ms))
            fired += 1
        return fired

    def _finish(self, journey: Journey, at_ms: int) -> None:
        profile = self._people.by_cio.get(journey.cio_id)
        # follow merge_customers: the journey continues on the surviving person
        hops = 0
        while profile is not None and profile.state == "merged" and profile.merged_into and hops < 64:
            profile = self._people.by_cio.get(profile.merged_into)
            hops += 1
        reason = ""
        if profile is None or profile.state != "live":
            reason = "deleted"
        elif profile.suppressed:
            reason = "suppressed"
        elif not profile.email:
            reason = "no_email"
        elif profile.unsubscribed:
            reason = "unsubscribed"
        metric = "dropped" if reason else "sent"
        delivery_id = f"dlv{journey.seq:012x}"
        person = profile.label if profile is not None else journey.person
        recipient = profile.email if profile is not None else None
        self._store.execute(
            "UPDATE journeys SET outcome = ?, at_ms = ?, reason = ?, delivery_id = ?, recipient = ?,"
            " person = ?"
            " WHERE seq = ?",
            (metric, at_ms, reason, delivery_id, recipient, person, journey.seq),
        )
        target = profile.cio_id if profile is not None else journey.cio_id
        campaign = self.campaigns.get(journey.campaign)
        message = campaign.message if campaign is not None and campaign.message else journey.campaign
        self._store.execute(
            "INSERT INTO activities(cio_id, type, name, timestamp_ms, data) VALUES (?, ?, ?, ?, ?)",
            (
                target,
                f"{metric}_email",
                message,
                at_ms,
                orjson.dumps(
                    {
                        "delivery_id": delivery_id,
                        "campaign_id": journey.campaign_id,
                        "trigger_event_id": journey.trigger_event_id,
                        "failure_message": reason or None,
                    }
                ),
            ),
        )
        if self._on_delivery is not None:
            # The webhook outbox writes its report here, in the transaction holding the outcome
            # above: nothing between them yields, so the two commit together or not at all.
            self._on_delivery(
                Delivery(
                    journey_seq=journey.seq,
                    campaign=journey.campaign,
                    campaign_id=journey.campaign_id,
                    delivery_id=delivery_id,
                    metric=metric,
                    at_ms=at_ms,
                    trigger_event_id=journey.trigger_event_id,
                    identifiers=profile.identifiers()
                    if profile is not None
                    else {"id": None, "email": None, "cio_id": journey.cio_id},
                    recipient=recipient,
                    reason=reason,
                    message=message,
                )
            )
