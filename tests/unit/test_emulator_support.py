"""In-process helpers for the emulator tests: build an app without sockets and call it."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from typing import Any

import orjson

from generator.credentials import LOCAL_DEFAULTS, Credentials
from generator.emulator.app import EmulatorApp
from generator.emulator.campaigns import CampaignEngine
from generator.emulator.clock import VirtualClock, WallClock
from generator.emulator.httpserver import Request, Response
from generator.emulator.server_faults import ServerFaults
from generator.emulator.store import Store
from generator.emulator.workspace import Workspace
from generator.scenario.model import Campaign

T0 = 1_793_620_800_000  # 2026-11-02T12:00:00Z
TRACK_AUTH = "Basic " + base64.b64encode(b"shopsim-site:shopsim-track-key").decode()
PIPE_AUTH = "Basic " + base64.b64encode(b"shopsim-pipelines-key:").decode()
APP_AUTH = "Bearer shopsim-app-key"


def campaigns(**specs: dict[str, Any]) -> dict[str, Campaign]:
    return {name: Campaign.model_validate(spec) for name, spec in specs.items()}


def make_app(
    campaign_map: dict[str, Campaign] | None = None,
    *,
    clock: str = "virtual",
    db: Path | None = None,
    dedupe_window_ms: int | None = None,
    dedupe_message_id: bool = True,
    faults: ServerFaults | None = None,
    creds: Credentials = LOCAL_DEFAULTS,
) -> EmulatorApp:
    store = Store(db)
    workspace = Workspace(
        store,
        lambda people: CampaignEngine(store, people, campaign_map or {}),
        dedupe_window_ms=dedupe_window_ms,
        dedupe_message_id=dedupe_message_id,
    )
    the_clock = VirtualClock() if clock == "virtual" else WallClock()
    return EmulatorApp(workspace, clock=the_clock, creds=creds, faults=faults)


def call(
    app: EmulatorApp,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    at: int | None = None,
    auth: str | None = None,
    raw: bytes | None = None,
    gzip_body: bool = False,
) -> tuple[int, Any, Response]:
    """Call the app; returns (status, decoded JSON body or raw bytes, response)."""
    path, _, query = path.partition("?")
    data = raw if raw is not None else (b"" if body is None else orjson.dumps(body))
    hdrs = {"content-type": "application/json"} if data else {}
    if gzip_body:
        data = gzip.compress(data)
        hdrs["content-encoding"] = "gzip"
    if auth is None:
        if path.startswith("/api/"):
            auth = TRACK_AUTH
        elif (
            path.startswith("/v1/customers")
            or path.startswith("/v1/messages")
            or path.startswith("/v1/campaigns")
        ):
            auth = APP_AUTH
        elif path.startswith("/v1/"):
            auth = PIPE_AUTH
    if auth:
        hdrs["authorization"] = auth
    if at is not None:
        hdrs["x-shopsim-clock"] = str(at)
    for key, value in (headers or {}).items():
        hdrs[key.lower()] = value
    response = app(Request(method=method, path=path, query=query, headers=hdrs, body=data))
    payload = response.body if isinstance(response.body, bytes) else b"".join(response.body)
    try:
        decoded = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        decoded = payload
    return response.status, decoded, response


def export(app: EmulatorApp, kinds: str | None = None) -> list[dict[str, Any]]:
    response = app(
        Request(
            method="GET",
            path="/_shopsim/export",
            query=f"kinds={kinds}" if kinds else "",
            headers={},
            body=b"",
        )
    )
    body = response.body if isinstance(response.body, bytes) else b"".join(response.body)
    return [orjson.loads(line) for line in body.splitlines() if line.strip()]


def of_kind(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == kind]
