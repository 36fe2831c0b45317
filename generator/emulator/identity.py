"""People in the emulated workspace: profiles and how identifiers resolve to them.

A person is found by ``id``, by ``email`` (case-insensitive) or by ``cio_id`` (the workspace's
own id, assigned at creation). Anonymous ids merged into a person are remembered with the time
of the identify that merged them, because anonymous events arriving up to five minutes later
still join that person (reference/customerio.md §6).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from generator.emulator.decode import Ident
from generator.emulator.store import Store


@dataclass(slots=True)
class Profile:
    """One person. ``state`` is ``live``, ``deleted`` or ``merged`` (a merge_customers secondary)."""

    cio_id: str
    id: str | None
    email: str | None
    created_ms: int
    attributes: dict[str, Any] = field(default_factory=dict)
    attr_ts: dict[str, int] = field(default_factory=dict)
    anonymous_ids: list[str] = field(default_factory=list)
    state: str = "live"
    merged_into: str | None = None
    suppressed: bool = False

    @property
    def label(self) -> str | None:
        """How exports and reports name the person: the ``id``, else the email, else ``cio_<id>``."""
        return self.id or self.email or f"cio_{self.cio_id}"

    @property
    def unsubscribed(self) -> bool:
        value = self.attributes.get("unsubscribed")
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value == 1
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return False

    def identifiers(self) -> dict[str, str | None]:
        """The App API ``customer_identifiers`` object."""
        return {"id": self.id, "email": self.email, "cio_id": self.cio_id}


class People:
    """The profile index (all live profiles in memory) with write-through to the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.by_cio: dict[str, Profile] = {}
        self._by_id: dict[str, str] = {}
        self._by_email: dict[str, str] = {}
        self.anon_links: dict[str, tuple[str, int]] = {}
        """anonymous id → (cio_id, arrival ms of the identify that merged it)."""
        self._next = 1
        self._load()

    def _load(self) -> None:
        rows = self._store.query(
            "SELECT cio_id, id, email, created_ms, attributes, attr_ts, anonymous_ids, state, merged_into,"
            " suppressed"
            " FROM profiles"
        )
        for row in rows:
            profile = Profile(
                cio_id=row[0],
                id=row[1],
                email=row[2],
                created_ms=row[3],
                attributes=orjson.loads(row[4]),
                attr_ts=orjson.loads(row[5]),
                anonymous_ids=orjson.loads(row[6]),
                state=row[7],
                merged_into=row[8],
                suppressed=bool(row[9]),
            )
            self.by_cio[profile.cio_id] = profile
            if profile.state == "live":
                self._index(profile)
            self._next = max(
                self._next, int(profile.cio_id, 16) + 1 if _is_hex(profile.cio_id) else self._next
            )
        for anon, cio, linked in self._store.query("SELECT anonymous_id, cio_id, linked_ms FROM anon_links"):
            self.anon_links[anon] = (cio, linked)

    def _index(self, profile: Profile) -> None:
        if profile.id is not None:
            self._by_id[profile.id] = profile.cio_id
        if profile.email is not None:
            self._by_email[profile.email.lower()] = profile.cio_id

    def _unindex(self, profile: Profile) -> None:
        if profile.id is not None and self._by_id.get(profile.id) == profile.cio_id:
            del self._by_id[profile.id]
        if profile.email is not None and self._by_email.get(profile.email.lower()) == profile.cio_id:
            del self._by_email[profile.email.lower()]

    # ------------------------------------------------------------------ lookups

    def find(self, who: Ident) -> Profile | None:
        """The live person an identifier names, if any."""
        kind, value = who
        if kind == "id":
            cio = self._by_id.get(value)
        elif kind == "email":
            cio = self._by_email.get(value.lower())
        else:
            cio = value
        if cio is None:
            return None
        profile = self.by_cio.get(cio)
        return profile if profile is not None and profile.state == "live" else None

    def live(self) -> Iterator[Profile]:
        """Every live profile, oldest first."""
        return (p for p in self.by_cio.values() if p.state == "live")

    # ------------------------------------------------------------------ changes

    def create(self, *, id: str | None, email: str | None, now_ms: int) -> Profile:
        """A new person with a fresh ``cio_id``."""
        cio = f"{self._next:012x}"
        self._next += 1
        profile = Profile(cio_id=cio, id=id, email=email, created_ms=now_ms)
        self.by_cio[cio] = profile
        self._index(profile)
        self.save(profile, now_ms)
        return profile

    def set_identifiers(self, profile: Profile, *, id: str | None, email: str | None, now_ms: int) -> bool:
        """Change a person's id/email; refused (False) when another live person holds it."""
        if id is not None and id != profile.id:
            holder = self._by_id.get(id)
            if holder is not None and holder != profile.cio_id:
                return False
        if email is not None and (profile.email is None or email.lower() != profile.email.lower()):
            holder = self._by_email.get(email.lower())
            if holder is not None and holder != profile.cio_id:
                return False
        self._unindex(profile)
        if id is not None:
            profile.id = id
        if email is not None:
            profile.email = email
        self._index(profile)
        return True

    def link_anonymous(self, profile: Profile, anonymous_id: str, now_ms: int) -> None:
        """Remember that ``anonymous_id`` belongs to ``profile`` as of ``now_ms`` (the merge time)."""
        self.anon_links[anonymous_id] = (profile.cio_id, now_ms)
        if anonymous_id not in profile.anonymous_ids:
            profile.anonymous_ids.append(anonymous_id)
        self._store.execute(
            "INSERT OR REPLACE INTO anon_links(anonymous_id, cio_id, linked_ms) VALUES (?, ?, ?)",
            (anonymous_id, profile.cio_id, now_ms),
        )

    def retire(self, profile: Profile, *, state: str, merged_into: str | None, now_ms: int) -> None:
        """Delete a person or mark it as merged into another; its identifiers become free."""
        self._unindex(profile)
        profile.state = state
        profile.merged_into = merged_into
        self.save(profile, now_ms)

    def save(self, profile: Profile, now_ms: int) -> None:
        """Write the profile row (insert or replace)."""
        self._store.execute(
            "INSERT OR REPLACE INTO profiles(cio_id, id, email, created_ms, attributes, attr_ts,"
            " anonymous_ids,"
            " state, merged_into, suppressed, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                profile.cio_id,
                profile.id,
                profile.email,
                profile.created_ms,
                orjson.dumps(profile.attributes),
                orjson.dumps(profile.attr_ts),
                orjson.dumps(profile.anonymous_ids),
                profile.state,
                profile.merged_into,
                int(profile.suppressed),
                now_ms,
            ),
        )


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
