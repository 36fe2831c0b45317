"""The emulated workspace: applies decoded operations (identify, events, merges, deletes).

Platform rules implemented here (reference/customerio.md §2, §6, §7; campaign rules live in
``campaigns.py``):

- Dedupe: an event whose id (Track ``id`` / Pipelines ``messageId``) was already accepted is
  recorded as ``duplicate`` and otherwise ignored; the window is configurable (default: the
  whole run).
- Identify upserts: the path/``userId`` identifier, else a body email, finds the person; else a
  person is created (``_update: true`` never creates). ``_timestamp`` orders updates per
  attribute: an older update does not overwrite a newer one.
- Anonymous events are kept for 30 days of event time; the first identify carrying the anonymous
  id merges them (``merged_anonymous``), and anonymous events arriving up to 5 minutes after that
  identify merge on arrival; later ones stay anonymous. Merged events are processed by the
  campaign engine at merge time.
- ``merge_customers``: the secondary's last 30 days of events move to the primary as
  ``merged_secondary`` (never triggering), unset attributes are copied, in-progress journeys
  continue on the primary; the secondary is retired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from generator.emulator.campaigns import CampaignEngine, EventFacts
from generator.emulator.decode import DeleteOp, EventOp, IdentifyOp, MergeOp, NoOp, Op, SuppressOp
from generator.emulator.identity import People, Profile
from generator.emulator.store import Store

ANON_RETENTION_MS = 30 * 86_400_000
LATE_MERGE_MS = 5 * 60_000

_INSERT_EVENT = (
    "INSERT INTO events(seq, event_id, name, type, cio_id, anonymous_id, timestamp_ms, received_ms, outcome,"
    " properties, api) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(slots=True)
class Counters:
    """What the workspace has done since start (for /_shopsim/stats)."""

    events: int = 0
    duplicates: int = 0
    identifies: int = 0
    merges: int = 0
    anon_merged: int = 0
    dropped_items: dict[str, int] = field(default_factory=dict)


class Workspace:
    """People, events and campaigns of one emulated workspace."""

    def __init__(
        self,
        store: Store,
        engine_factory: Callable[[People], CampaignEngine],
        *,
        dedupe_window_ms: int | None = None,
        dedupe_message_id: bool = True,
    ) -> None:
        self.store = store
        self.people = People(store)
        self.campaigns = engine_factory(self.people)
        self.dedupe_window_ms = dedupe_window_ms
        self.dedupe_message_id = dedupe_message_id
        """Whether Pipelines ``messageId`` dedupes like Track ``id`` (Customer.io: unconfirmed)."""
        self.counters = Counters()
        self._seen: dict[str, int] = {}
        rows = store.query("SELECT MAX(seq) FROM events")
        self._next_event = (rows[0][0] or 0) + 1
        for event_id, received in store.query(
            "SELECT event_id, received_ms FROM events WHERE outcome != 'duplicate'"
        ):
            previous = self._seen.get(event_id)
            if previous is None or received > previous:
                self._seen[event_id] = received

    # ------------------------------------------------------------------ dispatch

    def apply(self, op: Op, now_ms: int) -> None:
        """Apply one validated operation at time ``now_ms``."""
        if isinstance(op, EventOp):
            self.event(op, now_ms)
        elif isinstance(op, IdentifyOp):
            self.identify(op, now_ms)
        elif isinstance(op, MergeOp):
            self.merge(op, now_ms)
        elif isinstance(op, DeleteOp):
            self.delete(op, now_ms)
        elif isinstance(op, SuppressOp):
            self.suppress(op, now_ms)
        elif isinstance(op, NoOp):
            return

    # ------------------------------------------------------------------ events

    def _duplicate(self, event_id: str, now_ms: int) -> bool:
        seen = self._seen.get(event_id)
        if seen is not None and (self.dedupe_window_ms is None or now_ms - seen <= self.dedupe_window_ms):
            return True
        self._seen[event_id] = now_ms
        return False

    def event(self, op: EventOp, now_ms: int) -> None:
        """Store an event and process it for its person (or keep it anonymous)."""
        seq = self._next_event
        self._next_event += 1
        self.counters.events += 1
        timestamp = op.timestamp_ms if op.timestamp_ms is not None else now_ms
        event_id = op.event_id if op.event_id is not None else f"emu{seq:013d}"
        properties = orjson.dumps(op.properties)
        checked = self.dedupe_message_id or op.api != "pipelines"
        if op.event_id is not None and checked and self._duplicate(op.event_id, now_ms):
            self.counters.duplicates += 1
            self.store.append(
                _INSERT_EVENT,
                (
                    seq,
                    event_id,
                    op.name,
                    op.type,
                    None,
                    op.anonymous_id,
                    timestamp,
                    now_ms,
                    "duplicate",
                    properties,
                    op.api,
                ),
            )
            return
        profile: Profile | None = None
        outcome = "accepted"
        if op.who is not None:
            profile = self.people.find(op.who)
            if profile is None:
                kind, value = op.who
                if kind == "cio_id":
                    # an unknown cio_id cannot create a person: the event stays unattributed
                    outcome = "anonymous_pending"
                else:
                    profile = self.people.create(
                        id=value if kind == "id" else None,
                        email=value if kind == "email" else None,
                        now_ms=now_ms,
                    )
        elif op.anonymous_id is not None:
            profile = self._late_merge_target(op.anonymous_id, now_ms)
            outcome = "merged_anonymous" if profile is not None else "anonymous_pending"
        else:
            outcome = "anonymous_pending"
        if profile is None and outcome == "anonymous_pending" and now_ms - timestamp > ANON_RETENTION_MS:
            outcome = "expired"
        self.store.append(
            _INSERT_EVENT,
            (
                seq,
                event_id,
                op.name,
                op.type,
                profile.cio_id if profile is not None else None,
                op.anonymous_id,
                timestamp,
                now_ms,
                outcome,
                properties,
                op.api,
            ),
        )
        if outcome == "merged_anonymous":
            self.counters.anon_merged += 1
        engine = self.campaigns
        if not engine.relevant(op.name):
            return  # the common case under load: no campaign cares about this event
        facts = EventFacts(
            event_id=event_id, name=op.name, type=op.type, timestamp_ms=timestamp, properties=op.properties
        )
        if profile is not None:
            self.campaigns.process(profile, facts, now_ms)
        else:
            self.campaigns.process_anonymous(facts, now_ms)

    def _late_merge_target(self, anonymous_id: str, now_ms: int) -> Profile | None:
        """The person an anonymous event joins on arrival: the anonymous id was merged by an
        identify at most five minutes ago."""
        link = self.people.anon_links.get(anonymous_id)
        if link is None or now_ms - link[1] > LATE_MERGE_MS:
            return None
        return self._surviving(self.people.by_cio.get(link[0]))

    def _surviving(self, profile: Profile | None) -> Profile | None:
        hops = 0
        while profile is not None and profile.state == "merged" and profile.merged_into and hops < 64:
            profile = self.people.by_cio.get(profile.merged_into)
            hops += 1
        return profile if profile is not None and profile.state == "live" else None

    # ------------------------------------------------------------------ identify

    def identify(self, op: IdentifyOp, now_ms: int) -> None:
        """Create or update a person, then merge the anonymous id it carries."""
        self.counters.identifies += 1
        people = self.people
        profile = people.find(op.who) if op.who is not None else None
        if profile is None and op.email is not None:
            profile = people.find(("email", op.email))
        if profile is None and op.new_id is not None:
            profile = people.find(("id", op.new_id))
        if profile is None:
            if op.update_only or (op.who is not None and op.who[0] == "cio_id"):
                return  # _update: true never creates; an unknown cio_id is dropped
            kind = op.who[0] if op.who is not None else None
            new_id = op.who[1] if op.who is not None and kind == "id" else op.new_id
            email = op.email or (op.who[1] if op.who is not None and kind == "email" else None)
            profile = people.create(id=new_id, email=email, now_ms=now_ms)
        else:
            wanted_id = op.new_id
            if wanted_id is None and op.who is not None and op.who[0] == "id" and profile.id is None:
                wanted_id = op.who[1]  # found by email: the person gets the path id
            if not people.set_identifiers(profile, id=wanted_id, email=op.email, now_ms=now_ms):
                self._activity(
                    profile,
                    "failed_attribute_change",
                    None,
                    now_ms,
                    {"reason": "identifier belongs to another person"},
                )
        stamp = op.attr_timestamp_ms
        for key, value in op.attributes.items():
            if stamp is not None and profile.attr_ts.get(key, -(2**62)) > stamp:
                continue  # a newer _timestamp already set this attribute
            if value is None or value == "":
                profile.attributes.pop(key, None)
            else:
                profile.attributes[key] = value
            if stamp is not None:
                profile.attr_ts[key] = stamp
        people.save(profile, now_ms)
        if op.anonymous_id is not None:
            self.merge_anonymous(profile, op.anonymous_id, now_ms)

    def merge_anonymous(self, profile: Profile, anonymous_id: str, now_ms: int) -> None:
        """Associate the anonymous id's pending events with ``profile`` (30-day retention).

        An anonymous id merges once: the first identify that carries it anchors the five-minute
        window for late anonymous events. Repeating it in later identifies (SDKs send it on every
        call) neither re-merges events that missed the window nor extends it — the docs' "not
        reusable": late events only merge under a new anonymous id.
        """
        link = self.people.anon_links.get(anonymous_id)
        if link is not None and self._surviving(self.people.by_cio.get(link[0])) is self._surviving(profile):
            return
        if (
            link is not None
            and link[0] != profile.cio_id
            and self._surviving(self.people.by_cio.get(link[0]))
        ):
            # "This value must be unique and is not reusable": another person keeps it.
            self._activity(
                profile,
                "failed_attribute_change",
                None,
                now_ms,
                {"reason": "anonymous_id already merged into another person", "anonymous_id": anonymous_id},
            )
            return
        self.people.link_anonymous(profile, anonymous_id, now_ms)
        self.people.save(profile, now_ms)
        rows = self.store.query(
            "SELECT seq, event_id, name, type, timestamp_ms, properties FROM events"
            " WHERE anonymous_id = ? AND outcome = 'anonymous_pending' ORDER BY timestamp_ms, seq",
            (anonymous_id,),
        )
        merged: list[tuple[str, int]] = []
        expired: list[tuple[int]] = []
        for seq, event_id, name, kind, timestamp, properties in rows:
            if now_ms - timestamp > ANON_RETENTION_MS:
                expired.append((seq,))
                continue
            merged.append((profile.cio_id, seq))
            if not self.campaigns.relevant(name):
                continue  # as for a live event: no campaign reads it (and its properties stay unparsed)
            self.campaigns.process(
                profile,
                EventFacts(
                    event_id=event_id,
                    name=name,
                    type=kind,
                    timestamp_ms=timestamp,
                    properties=orjson.loads(properties),
                ),
                now_ms,
            )
        # One statement per kind of change, not one per event (the campaign writes above touch
        # other tables).
        self.store.executemany(
            "UPDATE events SET cio_id = ?, outcome = 'merged_anonymous' WHERE seq = ?", merged
        )
        self.store.executemany("UPDATE events SET outcome = 'expired' WHERE seq = ?", expired)
        self.counters.anon_merged += len(merged)
        self._activity(
            profile, "anon_merge", None, now_ms, {"anonymous_id": anonymous_id, "events": len(merged)}
        )

    # ------------------------------------------------------------------ merge / delete / suppress

    def merge(self, op: MergeOp, now_ms: int) -> None:
        """``merge_customers``: nothing happens unless both people exist (primary must exist)."""
        primary = self.people.find(op.primary)
        secondary = self.people.find(op.secondary)
        if primary is None or secondary is None or primary is secondary:
            return
        self.counters.merges += 1
        for key, value in secondary.attributes.items():
            if primary.attributes.get(key) in (None, ""):
                primary.attributes[key] = value
        for anonymous_id in secondary.anonymous_ids:
            if anonymous_id not in primary.anonymous_ids:
                link = self.people.anon_links.get(anonymous_id)
                self.people.link_anonymous(primary, anonymous_id, link[1] if link else now_ms)
        cutoff = now_ms - ANON_RETENTION_MS
        self.store.ensure_person_index()
        rows = self.store.query(
            "SELECT seq, event_id, name, type, timestamp_ms, properties FROM events"
            " WHERE cio_id = ? AND timestamp_ms >= ? AND outcome != 'duplicate' ORDER BY timestamp_ms, seq",
            (secondary.cio_id, cutoff),
        )
        self.store.execute(
            "UPDATE events SET cio_id = ?, outcome = 'merged_secondary'"
            " WHERE cio_id = ? AND timestamp_ms >= ? AND outcome != 'duplicate'",
            (primary.cio_id, secondary.cio_id, cutoff),
        )
        self.campaigns.absorb_secondary(
            primary,
            [
                EventFacts(
                    event_id=r[1], name=r[2], type=r[3], timestamp_ms=r[4], properties=orjson.loads(r[5])
                )
                for r in rows
            ],
            now_ms,
        )
        self.campaigns.reassign(secondary.cio_id, primary.cio_id)
        self.people.retire(secondary, state="merged", merged_into=primary.cio_id, now_ms=now_ms)
        self.people.save(primary, now_ms)
        self._activity(
            primary,
            "profile_merge",
            None,
            now_ms,
            {"secondary": secondary.identifiers(), "events": len(rows)},
        )

    def delete(self, op: DeleteOp, now_ms: int) -> None:
        """Delete a person; pending messages will be dropped (``deleted``)."""
        profile = self.people.find(op.who)
        if profile is None:
            return
        self.people.retire(profile, state="deleted", merged_into=None, now_ms=now_ms)
        self._activity(profile, "profile_delete", None, now_ms, {})

    def suppress(self, op: SuppressOp, now_ms: int) -> None:
        """Suppress (messages dropped) or unsuppress a person."""
        profile = self.people.find(op.who)
        if profile is None:
            return
        profile.suppressed = op.suppress
        self.people.save(profile, now_ms)

    def _activity(
        self, profile: Profile, kind: str, name: str | None, now_ms: int, data: dict[str, Any]
    ) -> None:
        self.store.execute(
            "INSERT INTO activities(cio_id, type, name, timestamp_ms, data) VALUES (?, ?, ?, ?, ?)",
            (profile.cio_id, kind, name, now_ms, orjson.dumps(data)),
        )

    def note_dropped(self, reason: str, count: int = 1) -> None:
        """Count items a permissive API dropped (exposed by /_shopsim/stats)."""
        self.counters.dropped_items[reason] = self.counters.dropped_items.get(reason, 0) + count
