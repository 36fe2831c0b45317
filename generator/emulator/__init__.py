"""The embedded Customer.io workspace emulator (issue 4).

A local HTTP server that speaks Customer.io's ingestion APIs (Track v1/v2, Data Pipelines,
browser Pipelines), behaves by the documented platform rules (identity and anonymous merge,
dedupe, the 72-hour rule, campaigns with delays, exits and frequency) and exposes what it did
through App-API-shaped reads, signed reporting webhooks and an NDJSON export.

Independence rule: this package never imports the simulator, the faults, the encoders or the
expectations; it only sees HTTP requests, exactly like a real workspace.

Usage::

    with start_emulator(scenario=scenario) as emu:      # port 0: a free port
        requests.post(emu.url + "/v1/track", ...)
        emu.url                                          # "http://127.0.0.1:PORT"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal

import gevent

from generator.credentials import LOCAL_DEFAULTS, Credentials
from generator.emulator.app import EmulatorApp
from generator.emulator.campaigns import CampaignEngine, Delivery
from generator.emulator.clock import VirtualClock, WallClock
from generator.emulator.httpserver import HttpServer
from generator.emulator.identity import People
from generator.emulator.server_faults import ServerFaults
from generator.emulator.store import Store
from generator.emulator.webhooks import Outbox, WebhookSender
from generator.emulator.workspace import Workspace
from generator.scenario.model import Campaign, Distribution, Scenario

__all__ = ["EmulatorHandle", "start_emulator"]


class EmulatorHandle:
    """A running emulator: ``url``, ``app`` (in-process access), ``stop()``; a context manager."""

    def __init__(
        self,
        *,
        server: HttpServer,
        app: EmulatorApp,
        store: Store,
        host: str,
        webhooks: WebhookSender | None,
        scheduler: gevent.Greenlet | None,
    ) -> None:
        self._server = server
        self.app = app
        self._store = store
        self._webhooks = webhooks
        self._scheduler = scheduler
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{server.scheme}://{shown}:{server.port}"
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        self.port = server.port
        self._stopped = False

    @property
    def webhooks(self) -> WebhookSender | None:
        """The reporting-webhook sender, when ``webhook_url`` was given."""
        return self._webhooks

    def stop(self) -> None:
        """Stop serving, commit what is pending and close the store (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self._scheduler is not None:
            self._scheduler.kill(block=False)
        self._server.stop()
        if self._webhooks is not None:
            self._webhooks.flush(timeout=2.0)
            self._webhooks.stop()
        self._store.close()

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_emulator(
    *,
    scenario: Scenario | None,
    host: str = "127.0.0.1",
    port: int = 0,
    db: Path | None = None,
    clock: Literal["virtual", "wall"] = "virtual",
    creds: Credentials = LOCAL_DEFAULTS,
    webhook_url: str | None = None,
    dedupe_window_ms: int | None = None,
    dedupe_message_id: bool = True,
    campaigns: Mapping[str, Campaign] | None = None,
    latency: Distribution | None = None,
    error_rate: float = 0.0,
    rate_limit: float | None = None,
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    certfile: str | None = None,
    keyfile: str | None = None,
    max_body: int | None = None,
) -> EmulatorHandle:
    """Start an emulator in this process (on gevent) and return its handle.

    ``dedupe_window_ms`` is how long a seen event id stays a duplicate (None: the whole run);
    ``dedupe_message_id=False`` stops Pipelines ``messageId`` from deduping (Track ``id`` always
    does). ``campaigns`` overrides ``scenario.campaigns`` (golden cases have campaigns but no
    scenario). ``db`` None keeps the store in memory; a path makes it durable (SQLite WAL; a
    restart on the same path continues where the last run stopped). ``latency``/``error_rate``/
    ``rate_limit`` inject server-side faults on ingestion requests. ``certfile``/``keyfile``
    serve HTTPS (for clients that insist on it). ``webhook_url`` receives signed sent/dropped
    reports through the store's outbox: with ``db``, reports still pending when the process
    died go out after the restart.
    """
    configured: Mapping[str, Campaign] = (
        campaigns if campaigns is not None else (scenario.campaigns if scenario is not None else {})
    )
    store = Store(db, synchronous=synchronous)
    sender: WebhookSender | None = None
    if webhook_url:
        # pending reports of an earlier run on the same --db are loaded and go out first
        sender = WebhookSender(webhook_url, creds.webhook_secret, Outbox(store))
    on_delivery: Callable[[Delivery], None] | None = sender.enqueue if sender is not None else None

    def engine(people: People) -> CampaignEngine:
        return CampaignEngine(store, people, configured, on_delivery=on_delivery)

    workspace = Workspace(
        store, engine, dedupe_window_ms=dedupe_window_ms, dedupe_message_id=dedupe_message_id
    )
    the_clock: VirtualClock | WallClock = VirtualClock() if clock == "virtual" else WallClock()
    faults = ServerFaults(latency=latency, error_rate=error_rate, rate_limit=rate_limit)
    app = EmulatorApp(workspace, clock=the_clock, creds=creds, faults=faults)
    server_kwargs = {} if max_body is None else {"max_body": max_body}
    server = HttpServer(app, host=host, port=port, certfile=certfile, keyfile=keyfile, **server_kwargs)
    scheduler = gevent.spawn(_wall_scheduler, app) if clock == "wall" else None
    server.start()
    handle = EmulatorHandle(
        server=server, app=app, store=store, host=host, webhooks=sender, scheduler=scheduler
    )
    app.base_url = handle.url
    return handle


def _wall_scheduler(app: EmulatorApp) -> None:
    """Wall clock: fire due messages as real time reaches them (checks at least once a second)."""
    engine = app.workspace.campaigns
    while True:
        due = engine.next_due()
        now = app.clock.at(None)
        if due is not None and due <= now:
            try:
                if app.fire(now):
                    app.store.barrier()
            except Exception:  # keep the scheduler alive; the store error surfaces on requests
                gevent.sleep(1.0)
            continue
        wait = 1.0 if due is None else min(1.0, max(0.001, (due - now) / 1000.0))
        gevent.sleep(wait)
