"""Worker → master custom messages and their merge on the master (no Locust import).

Locust carries these over its own ZeroMQ/msgpack channel (``runner.send_message`` /
``runner.register_message``); a stand-alone process delivers them to itself. Payloads are
plain dicts of str/int/float/bytes so msgpack carries them unchanged.

=================  ==============  =================================================================
type               direction       data
=================  ==============  =================================================================
``shopsim_ledger``  worker→master   ``{"shard": int, "rows": bytes}``: ledger.ndjson lines settled
                                    since the last message (the SEND line format, verbatim)
``shopsim_done``    worker→master   :class:`DoneReport` as a dict: ledger counts, start/send lag
                                    histograms, shoppers started/unstarted; sent once, last
``shopsim_stop``    master→worker   ``{"grace_s": float}``: stop producing shoppers, finish or cut
                                    short the ones in flight, then send ``shopsim_done``
=================  ==============  =================================================================

Files the :class:`Collector` writes into the run directory:

- ``ledger.ndjson`` — every worker's ledger lines, appended as they arrive;
- ``arrival_lag.json`` — merged and per-shard start lag and send lag (ms), late share, the
  shoppers started/unstarted, the merged ledger counts, and a ``verdict`` line such as
  ``"pool too small: 12% of shoppers started late; raise --users"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from generator.deliver.ledger import LedgerCounts, merge_counts
from generator.load.lag import LagHistogram

__all__ = ["DONE", "LEDGER", "STOP", "Collector", "DoneReport", "pool_verdict"]

LEDGER = "shopsim_ledger"
DONE = "shopsim_done"
STOP = "shopsim_stop"

# Above this share of late starts the pool was too small for the arrival rate.
DEFAULT_LATE_SHARE_MAX = 0.01


@dataclass(frozen=True, slots=True, kw_only=True)
class DoneReport:
    """The final report of one load process (one shard)."""

    shard: int
    shards: int
    counts: Mapping[str, int]
    start_lag: Mapping[str, Any]
    send_lag: Mapping[str, Any]
    shoppers_started: int
    shoppers_unstarted: int
    deliveries_unstarted: int
    max_in_flight: int
    elapsed_s: float
    users: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The message payload."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DoneReport:
        """Rebuild from a message payload (unknown keys ignored: newer workers stay readable)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def pool_verdict(
    late_share: float,
    *,
    users: int,
    late_share_max: float = DEFAULT_LATE_SHARE_MAX,
    max_busy: int | None = None,
) -> str:
    """One line on whether the user pool kept up with the arrival schedule, and what to change.

    Late starts with every user busy mean the pool (or the target's speed) limited the load:
    raise ``--users`` or lower ``--speed``. Late starts while users were idle mean the load
    generator itself fell behind (CPU): add ``--workers``.
    """
    if late_share <= late_share_max:
        return f"pool kept up: {late_share:.1%} of shoppers started late with {users} users"
    head = f"{late_share:.1%} of shoppers started late (limit {late_share_max:.1%})"
    if max_busy is not None and max_busy < users:
        return (
            f"load generator too slow: {head} while at most {max_busy} of {users} users were busy; "
            "add --workers"
        )
    return f"pool too small: {head} with all {users} users busy; raise --users (or lower --speed)"


class Collector:
    """Master side: appends ledger lines, collects done reports, writes ``arrival_lag.json``.

    ``expected`` is the number of shards; ``on_all_done`` is called once when every shard
    reported. A report from a shard that already reported is ignored (a reconnecting worker).
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        expected: int,
        late_ms: float = 100.0,
        late_share_max: float = DEFAULT_LATE_SHARE_MAX,
        on_all_done: Callable[[], None] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.expected = expected
        self.late_ms = late_ms
        self.late_share_max = late_share_max
        self.on_all_done = on_all_done
        self.reports: dict[int, DoneReport] = {}
        self.users = 0
        self.ledger_lines = 0
        run_dir.mkdir(parents=True, exist_ok=True)
        self.ledger_path = run_dir / "ledger.ndjson"
        self._ledger: IO[bytes] | None = self.ledger_path.open("ab")

    @property
    def all_done(self) -> bool:
        """Every expected shard sent its done report."""
        return len(self.reports) >= self.expected

    def on_ledger(self, data: Mapping[str, Any]) -> None:
        """Append a worker's ledger lines."""
        rows = data.get("rows") or b""
        if rows and self._ledger is not None:
            self._ledger.write(rows)
            self._ledger.flush()
            self.ledger_lines += rows.count(b"\n")

    def on_done(self, data: Mapping[str, Any]) -> None:
        """Record a shard's final report; write the summary when all shards are in."""
        report = DoneReport.from_dict(data)
        if report.shard in self.reports:
            return
        self.reports[report.shard] = report
        self.write_summary()
        if self.all_done and self.on_all_done is not None:
            self.on_all_done()

    def summary(self) -> dict[str, Any]:
        """The merged arrival-lag and ledger summary (what ``arrival_lag.json`` holds)."""
        reports = [self.reports[k] for k in sorted(self.reports)]
        start = LagHistogram.merged(
            (LagHistogram.from_dict(r.start_lag) for r in reports), late_ms=self.late_ms
        )
        send = LagHistogram.merged(
            (LagHistogram.from_dict(r.send_lag) for r in reports), late_ms=self.late_ms
        )
        counts = merge_counts(LedgerCounts(**dict(r.counts)) for r in reports)
        start_summary = start.summary()
        return {
            "shards_expected": self.expected,
            "shards_reported": len(reports),
            "users": self.users,
            "start_lag": start_summary.as_dict(),
            "send_lag": send.summary().as_dict(),
            "shoppers_started": sum(r.shoppers_started for r in reports),
            "shoppers_unstarted": sum(r.shoppers_unstarted for r in reports),
            "deliveries_unstarted": sum(r.deliveries_unstarted for r in reports),
            "max_in_flight": sum(r.max_in_flight for r in reports),
            "clock_ms": max((int(r.extra.get("clock_ms", 0)) for r in reports), default=0),
            "shoppers_not_due": sum(int(r.extra.get("shoppers_not_due", 0)) for r in reports),
            "turns_parked": sum(int(r.extra.get("turns_parked", 0)) for r in reports),
            # given up only because the test ended (part of the ledger's given_up)
            "deliveries_cut_by_end": sum(int(r.extra.get("deliveries_cut_by_end", 0)) for r in reports),
            "ledger": counts.as_dict(),
            "ledger_lines": self.ledger_lines,
            # every planned delivery settled exactly once, and every settlement written on the master
            "reconciled": counts.settled == counts.planned == self.ledger_lines,
            "verdict": pool_verdict(
                start_summary.late_share,
                users=self.users,
                late_share_max=self.late_share_max,
                max_busy=sum(r.max_in_flight for r in reports),
            ),
            "late_share_max": self.late_share_max,
            "per_shard": [
                {
                    "shard": r.shard,
                    "start_lag": LagHistogram.from_dict(r.start_lag).summary().as_dict(),
                    "shoppers_started": r.shoppers_started,
                    "shoppers_unstarted": r.shoppers_unstarted,
                    "ledger": dict(r.counts),
                    "elapsed_s": r.elapsed_s,
                }
                for r in reports
            ],
        }

    def write_summary(self) -> Path:
        """Write ``arrival_lag.json`` (rewritten as shards report; complete once all are in)."""
        path = self.run_dir / "arrival_lag.json"
        path.write_bytes(orjson.dumps(self.summary(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        return path

    def close(self) -> None:
        """Flush and close the ledger file."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
