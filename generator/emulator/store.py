"""The emulator's SQLite store: one connection, WAL, group commit.

Durability contract: a request is acknowledged only after the transaction holding its writes
has committed. Request greenlets execute their writes directly on the one connection (gevent
is cooperative and sqlite3 calls never yield, so writes never interleave mid-statement) and
then wait in :meth:`Store.barrier`; a single committer greenlet commits everything written so
far in one transaction and wakes every waiter at once. Under concurrency that turns many
requests into one commit (group commit); a lone client pays one commit per request.

``synchronous=NORMAL`` in WAL mode survives a killed process (``kill -9``) without losing a
committed transaction — the WAL is written before COMMIT returns; only an OS crash or power
loss can lose the last transactions, for which ``synchronous="FULL"`` is available.

Tables (times are epoch ms; JSON columns hold orjson bytes):

- ``meta(key, value)``: the virtual clock and counters.
- ``profiles``: one row per person ever created (``state`` live | deleted | merged).
- ``events``: every ingested event/page/screen with its ``outcome`` (indexed by person only once
  something asks by person: :meth:`Store.ensure_person_index`).
- ``anon_links(anonymous_id, cio_id, linked_ms)``: anonymous ids merged into people.
- ``journeys``: campaign entries and their end (sent | dropped | exited | pending).
- ``skips``: trigger matches that did not enter, with the reason.
- ``activities``: anon_merge, profile_merge, attribute failures and message activities.
- ``webhook_outbox``: reporting-webhook reports written with the journey outcome that produced
  them; ``pending`` until the receiver answers 2xx (then deleted) or ``given_up`` (webhooks.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles(
    cio_id TEXT PRIMARY KEY, id TEXT, email TEXT, created_ms INTEGER NOT NULL,
    attributes BLOB NOT NULL, attr_ts BLOB NOT NULL, anonymous_ids BLOB NOT NULL,
    state TEXT NOT NULL, merged_into TEXT, suppressed INTEGER NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    cio_id TEXT, anonymous_id TEXT, timestamp_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL, properties BLOB NOT NULL, api TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_pending_anon ON events(anonymous_id) WHERE outcome = 'anonymous_pending';
CREATE TABLE IF NOT EXISTS anon_links(
    anonymous_id TEXT PRIMARY KEY, cio_id TEXT NOT NULL, linked_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS journeys(
    seq INTEGER PRIMARY KEY, campaign TEXT NOT NULL, campaign_id INTEGER NOT NULL, cio_id TEXT NOT NULL,
    person TEXT, trigger_event_id TEXT NOT NULL, entered_ms INTEGER NOT NULL, due_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL, at_ms INTEGER, exit_event_id TEXT, reason TEXT NOT NULL DEFAULT '',
    delivery_id TEXT, recipient TEXT);
CREATE INDEX IF NOT EXISTS journeys_person ON journeys(cio_id);
CREATE TABLE IF NOT EXISTS skips(
    seq INTEGER PRIMARY KEY, campaign TEXT NOT NULL, campaign_id INTEGER NOT NULL, cio_id TEXT,
    person TEXT, trigger_event_id TEXT NOT NULL, at_ms INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS activities(
    seq INTEGER PRIMARY KEY, cio_id TEXT NOT NULL, type TEXT NOT NULL, name TEXT,
    timestamp_ms INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS activities_person ON activities(cio_id);
CREATE TABLE IF NOT EXISTS webhook_outbox(
    seq INTEGER PRIMARY KEY, delivery_id TEXT NOT NULL, metric TEXT NOT NULL, body BLOB NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
"""


class StoreError(Exception):
    """The store could not commit (disk full, I/O error): the request is answered 503."""


class Store:
    """One SQLite connection with timing instrumentation and a group-commit barrier."""

    def __init__(self, path: Path | None, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        target = str(path) if path is not None else ":memory:"
        self._conn = sqlite3.connect(
            target, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        if path is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("PRAGMA temp_store=MEMORY")
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.executescript(SCHEMA)
        self._person_index = bool(
            self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'events_person'"
            ).fetchall()
        )
        self._in_tx = False
        self._rows: dict[str, list[Sequence[Any]]] = {}
        """Queued INSERT rows per statement (see :meth:`append`)."""
        self._queued = 0
        self._dirty = Event()
        self._generation = Event()
        self._error: BaseException | None = None
        self._closed = False
        self.sqlite_s = 0.0
        """Seconds spent inside SQLite calls (statements + commits). Wall time from the
        monotonic clock: reading the process CPU clock is a system call (about 3 µs here), and
        two per statement cost more than many statements; on a busy machine this includes time
        the server was descheduled mid-call."""
        self.commits = 0
        self.commit_s = 0.0
        self._committer = gevent.spawn(self._commit_loop)

    # ------------------------------------------------------------------ writes

    def _begin(self) -> None:
        self._conn.execute("BEGIN")
        self._in_tx = True
        self._dirty.set()  # wake the committer once per transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement inside the current write transaction (opened lazily)."""
        started = time.perf_counter()
        if self._rows:
            self._flush()
        if not self._in_tx:
            self._begin()
        cursor = self._conn.execute(sql, params)
        self.sqlite_s += time.perf_counter() - started
        return cursor

    def append(self, sql: str, row: Sequence[Any]) -> None:
        """Queue an INSERT row; the rows of each statement go to SQLite in one executemany.

        Every other store call (and a commit) flushes the queue first. Rows keep their order per
        statement; statements of different tables may be reordered among themselves, so only
        plain inserts into tables no queued statement reads belong here (events, skips). One
        queue per statement, because the event path interleaves them: with a single queue,
        alternating event and skip rows flushed one row at a time.
        """
        queue = self._rows.get(sql)
        if queue is None:
            queue = self._rows[sql] = []
        queue.append(row)
        self._queued += 1
        if self._queued >= 512:
            self._flush()

    def _flush(self) -> None:
        queued, self._rows = self._rows, {}
        self._queued = 0
        started = time.perf_counter()
        if not self._in_tx:
            self._begin()
        for sql, rows in queued.items():
            self._conn.executemany(sql, rows)
        self.sqlite_s += time.perf_counter() - started

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many rows inside the current write transaction."""
        if not rows:
            return
        started = time.perf_counter()
        if self._rows:
            self._flush()
        if not self._in_tx:
            self._begin()
        self._conn.executemany(sql, rows)
        self.sqlite_s += time.perf_counter() - started

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Read rows (sees this connection's uncommitted writes)."""
        if self._rows:
            self._flush()
        started = time.perf_counter()
        rows = self._conn.execute(sql, params).fetchall()
        self.sqlite_s += time.perf_counter() - started
        return rows

    def iterate(self, sql: str, params: Sequence[Any] = (), *, chunk: int = 2000) -> Iterator[Any]:
        """Rows in chunks of ``chunk`` by ``seq`` (``sql`` must end ``WHERE seq > ? ... ORDER BY seq LIMIT ?``
        with the two placeholders last), yielding to other greenlets between chunks."""
        last = -1
        while True:
            rows = self.query(sql, (*params, last, chunk))
            if not rows:
                return
            yield from rows
            last = rows[-1][0]
            if len(rows) < chunk:
                return
            gevent.sleep(0)

    def ensure_person_index(self) -> None:
        """Index events by person, built on first use.

        Why lazily: an index on a person key takes random B-tree positions, so under ingestion
        every commit would write one index page per distinct person — it doubled the SQLite
        cost per event in the benchmark. Only the App API activity reads and merge_customers
        look events up by person, and they can pay for the index once.
        """
        if self._person_index:
            return
        self.execute("CREATE INDEX IF NOT EXISTS events_person ON events(cio_id) WHERE cio_id IS NOT NULL")
        self._person_index = True

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------ group commit

    def barrier(self) -> None:
        """Block this greenlet until everything written so far is committed."""
        if self._error is not None:
            raise StoreError(str(self._error))
        if self._rows:
            self._flush()
        if not self._in_tx:
            return
        generation = self._generation
        self._dirty.set()
        generation.wait()
        if self._error is not None:
            raise StoreError(str(self._error))

    def _commit_loop(self) -> None:
        while not self._closed:
            self._dirty.wait()
            self._dirty.clear()
            if self._closed:
                break
            self._commit_now()

    def _commit_now(self) -> None:
        generation = self._generation
        self._generation = Event()
        if self._rows:
            self._flush()
        if self._in_tx:
            started = time.perf_counter()
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:  # disk full / I/O error: fail loudly, never ack
                self._error = exc
            finally:
                self._in_tx = False
            elapsed = time.perf_counter() - started
            self.sqlite_s += elapsed
            self.commit_s += elapsed
            self.commits += 1
        generation.set()

    def close(self) -> None:
        """Commit what is pending and close the connection."""
        if self._closed:
            return
        self._commit_now()
        self._closed = True
        self._dirty.set()
        self._committer.kill(block=False)
        self._conn.close()
