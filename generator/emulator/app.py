"""HTTP routing for the emulator: ingestion APIs, App API reads and ``/_shopsim`` control.

Routes (paths as the real APIs have them; reference/customerio.md §2–4, §9):

==========================================  =========================================================
``GET  /api/v1/accounts/region``             Track: credential check
``PUT  /api/v1/customers/{id}``              Track v1 identify
``DELETE /api/v1/customers/{id}``            Track v1 delete
``POST /api/v1/customers/{id}/events``       Track v1 event / page / screen
``POST /api/v1/events``                      Track v1 anonymous event
``POST /api/v1/merge_customers``             Track v1 merge
``POST /api/v1/customers/{id}/suppress``     and ``/unsuppress``; devices, push, metrics: accepted
``POST /api/v2/entity``, ``/api/v2/batch``   Track v2 (batch: 207 with per-item errors)
``POST /v1/{identify,track,page,screen,group,alias,batch}``   Pipelines (Basic ``key:`` or Bearer)
``POST /v1/{t,i,p,s,g,a,b}``                 Pipelines browser style (``writeKey`` in a text/plain body)
``GET  /v1/customers/{id}/activities``, ``/v1/messages[/{id}]``, ``/v1/campaigns[/{id}[/metrics]]``  App API
``GET  /_shopsim/health`` · ``GET|POST /_shopsim/clock`` · ``GET /_shopsim/export`` · ``GET /_shopsim/stats``
==========================================  =========================================================

A request is answered only after its writes are committed (``Store.barrier``). Pipelines is
permissive (``200`` and invalid items dropped and counted) unless ``X-Strict-Mode: 1``.

Virtual clock: a request is processed at ``X-Shopsim-Clock``; a batch (``/v1/batch``, ``/v1/b``,
``/api/v2/batch``) that also carries ``X-Shopsim-Arrivals`` has each item processed at its own
arrival time (``clock + offset[i]``), firing what is due before each item (generator/emulator/clock.py).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gevent
import orjson

from generator.credentials import Credentials
from generator.emulator import decode, observe_api
from generator.emulator.clock import (
    ARRIVALS_HEADER,
    CLOCK_HEADER,
    MAX_CLOCK_MS,
    ClockError,
    VirtualClock,
    WallClock,
    parse_arrivals_header,
    parse_clock_header,
)
from generator.emulator.decode import Decoded, DecodeError, ItemError, Op
from generator.emulator.httpserver import Request, Response
from generator.emulator.server_faults import ServerFaults
from generator.emulator.store import StoreError
from generator.emulator.webhooks import Outbox
from generator.emulator.workspace import Workspace

_log = logging.getLogger("shopsim.emulator")
_EMPTY = b"{}"


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(payload), headers=headers or {})


def _meta_error(status: int, *messages: str) -> Response:
    return _json(status, {"meta": {"errors": list(messages)}})


def _ok() -> Response:
    return Response(200, _EMPTY)


def _clock_problem(req: Request, *, batch: bool) -> Response | None:
    """A 400 for malformed clock headers, checked before anything is processed.

    ``X-Shopsim-Arrivals`` needs ``X-Shopsim-Clock`` (its offsets are relative to it); on an
    endpoint that takes one item (``batch`` False) it must carry exactly one offset. A batch's
    offset count is checked against its items once the body is decoded.
    """
    try:
        clock = parse_clock_header(req.headers.get(CLOCK_HEADER))
        arrivals = parse_arrivals_header(req.headers.get(ARRIVALS_HEADER))
    except ClockError as exc:
        return _meta_error(400, str(exc))
    if arrivals is not None:
        if clock is None:
            return _meta_error(
                400, "X-Shopsim-Arrivals needs X-Shopsim-Clock (its offsets are relative to it)"
            )
        if not batch and len(arrivals) != 1:
            return _meta_error(
                400, f"this endpoint takes one item but X-Shopsim-Arrivals carries {len(arrivals)} offsets"
            )
    return None


@dataclass(slots=True)
class Stats:
    """Request counters and timings (``GET /_shopsim/stats``)."""

    requests: int = 0
    ingest_requests: int = 0
    rejected: int = 0
    handler_s: float = 0.0


class EmulatorApp:
    """The request handler: ``app(request) -> response``."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: VirtualClock | WallClock,
        creds: Credentials,
        faults: ServerFaults | None = None,
        on_after_fire: Callable[[], None] | None = None,
    ) -> None:
        self.workspace = workspace
        self.store = workspace.store
        self.clock = clock
        self.creds = creds
        self.faults = faults if faults is not None and faults.active else None
        self.stats = Stats()
        self._persisted_clock: int | None = None
        self._track_auth = (
            self._basic(creds.site_id, creds.api_key).encode() if creds.site_id and creds.api_key else None
        )
        self.base_url = ""
        self._on_after_fire = on_after_fire
        saved = self.store.get_meta("clock_ms")
        if saved is not None and isinstance(clock, VirtualClock) and clock.now_ms is None:
            clock.now_ms = int(saved)
            self._persisted_clock = clock.now_ms

    @staticmethod
    def _basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    # ------------------------------------------------------------------ entry

    def __call__(self, req: Request) -> Response:
        started = time.perf_counter()
        self.stats.requests += 1
        try:
            return self._route(req)
        except StoreError as exc:
            _log.error("store failure: %s", exc)
            return _meta_error(503, "storage unavailable; nothing was acknowledged")
        finally:
            self.stats.handler_s += time.perf_counter() - started

    def _route(self, req: Request) -> Response:
        path = req.path
        if path.startswith("/_shopsim/"):
            return self._control(req)
        if path.startswith("/api/"):
            return self._with_faults(req, self._track)
        if path.startswith("/v1/"):
            head = path[4:].split("/", 1)[0]
            if head in ("customers", "messages", "campaigns", "activities"):
                return self._app_api(req)
            return self._with_faults(req, self._pipelines)
        if path == "/" and req.method in ("GET", "HEAD"):
            return _json(200, {"service": "shopsim emulator", "health": "/_shopsim/health"})
        return _meta_error(404, f"no route for {req.method} {path[:200]}")

    def _with_faults(self, req: Request, handler: Callable[[Request], Response]) -> Response:
        self.stats.ingest_requests += 1
        if self.faults is not None:
            verdict = self.faults.decide()
            if verdict.delay_s > 0:
                gevent.sleep(verdict.delay_s)
            if verdict.status == 429:
                return Response(
                    429,
                    orjson.dumps({"meta": {"errors": ["rate limit exceeded"]}}),
                    headers={"Retry-After": str(verdict.retry_after_s)},
                )
            if verdict.status is not None:
                return _meta_error(verdict.status, "injected server error (--error-rate)")
        response = handler(req)
        if response.status >= 400:
            self.stats.rejected += 1
        return response

    # ------------------------------------------------------------------ time

    def _now(self, req: Request) -> int:
        """Process time for a request: fire everything due first (virtual clock semantics).

        A one-item request's ``X-Shopsim-Arrivals`` offset (validated by :func:`_clock_problem`)
        is added to its clock.
        """
        requested = None
        if self.clock.mode == "virtual":
            requested = parse_clock_header(req.headers.get(CLOCK_HEADER))
            arrivals = parse_arrivals_header(req.headers.get(ARRIVALS_HEADER))
            if requested is not None and arrivals:
                requested += arrivals[0]
        now = self.clock.at(requested)
        self.fire(now)
        return now

    def fire(self, now: int) -> int:
        """Fire due messages up to ``now`` and persist the virtual clock."""
        fired = self.workspace.campaigns.fire_due(now, at_due_time=self.clock.mode == "virtual")
        if self.clock.mode == "virtual" and now != self._persisted_clock:
            self.store.set_meta("clock_ms", str(now))
            self._persisted_clock = now
        if fired and self._on_after_fire is not None:
            self._on_after_fire()
        return fired

    def _apply(self, ops: list[Op], now: int) -> None:
        for op in ops:
            self.workspace.apply(op, now)
        self.store.barrier()

    def _apply_batch(self, req: Request, decoded: Decoded) -> Response | None:
        """Apply a batch's operations; a 400 response when ``X-Shopsim-Arrivals`` does not fit it.

        Without the header every item is processed at the request's clock. With it (virtual
        clock) item ``i`` is processed at ``clock + offset[i]`` after firing every send due by
        then, exactly as if each item had come in its own request; the wall clock ignores the
        offsets (after checking them). Nothing is acknowledged before the barrier commits.
        """
        arrivals = parse_arrivals_header(req.headers.get(ARRIVALS_HEADER))
        if arrivals is None:
            self._apply(decoded.ops, self._now(req))
            return None
        if decoded.items is not None and len(arrivals) != decoded.items:
            return _meta_error(
                400,
                f"X-Shopsim-Arrivals carries {len(arrivals)} offsets but the body has {decoded.items} items "
                "(one offset per item, in body order)",
            )
        base = parse_clock_header(req.headers.get(CLOCK_HEADER))
        if self.clock.mode != "virtual" or base is None:
            self._apply(decoded.ops, self._now(req))
            return None
        clock = self.clock
        fire_due = self.workspace.campaigns.fire_due
        apply = self.workspace.apply
        fired = 0
        for op, index in zip(decoded.ops, decoded.op_items, strict=True):
            now = clock.at(base + arrivals[index])
            # Inline fire (no clock persist per item): the clock is persisted once below,
            # in the same transaction, before anything is acknowledged.
            fired += fire_due(now, at_due_time=True)
            apply(op, now)
        # The clock ends at the last item's arrival, as if it had come alone (also when it
        # was invalid and produced no operation).
        last_fired = self.fire(clock.at(base + arrivals[-1]))
        if fired and not last_fired and self._on_after_fire is not None:
            self._on_after_fire()
        self.store.barrier()
        return None

    # ------------------------------------------------------------------ Track API

    def _track(self, req: Request) -> Response:
        segs = req.segments()
        if len(segs) < 3 or segs[1] not in ("v1", "v2"):
            return _meta_error(404, f"no route for {req.method} {req.path[:200]}")
        route = self._track_route(req.method, segs)
        if isinstance(route, Response):
            return route
        if self._track_auth is not None and not hmac.compare_digest(
            req.headers.get("authorization", "").encode(), self._track_auth
        ):
            return _meta_error(
                401, "Unauthorized request: use Basic auth with your site id and Track API key"
            )
        bad_clock = _clock_problem(req, batch=route == self._v2_batch)
        if bad_clock is not None:
            return bad_clock
        try:
            return route(req)
        except DecodeError as exc:
            return _meta_error(exc.status, exc.message)

    def _track_route(self, method: str, segs: list[str]) -> Callable[[Request], Response] | Response:
        version = segs[1]
        rest = segs[2:]
        if version == "v2":
            if rest == ["entity"] or rest == ["batch"]:
                if method != "POST":
                    return _meta_error(405, f"{method} not allowed here; use POST")
                return self._v2_entity if rest == ["entity"] else self._v2_batch
            return _meta_error(404, "no such Track v2 endpoint")
        if rest == ["accounts", "region"]:
            if method not in ("GET", "HEAD"):
                return _meta_error(405, "use GET")
            return lambda req: _json(200, {"url": self.base_url, "region": "us", "environment_id": 1})
        if rest == ["events"]:
            return self._v1_anonymous_event if method == "POST" else _meta_error(405, "use POST")
        if rest == ["merge_customers"]:
            return self._v1_merge if method == "POST" else _meta_error(405, "use POST")
        if rest in (["push", "events"], ["metrics"]):
            return self._v1_accept_json if method == "POST" else _meta_error(405, "use POST")
        if len(rest) >= 2 and rest[0] == "customers":
            identifier = rest[1]
            tail = rest[2:]
            if not tail:
                if method == "PUT":
                    return lambda req: self._v1_identify(req, identifier)
                if method == "DELETE":
                    return lambda req: self._v1_simple(
                        req, decode.DeleteOp(who=decode.path_identifier(identifier))
                    )
                return _meta_error(405, "use PUT (identify) or DELETE")
            if tail == ["events"]:
                if method != "POST":
                    return _meta_error(405, "use POST")
                return lambda req: self._v1_event(req, identifier)
            if tail in (["suppress"], ["unsuppress"]):
                if method != "POST":
                    return _meta_error(405, "use POST")
                suppress = tail == ["suppress"]
                return lambda req: self._v1_simple(
                    req, decode.SuppressOp(who=decode.path_identifier(identifier), suppress=suppress)
                )
            if tail == ["devices"]:
                return self._v1_accept_json if method == "PUT" else _meta_error(405, "use PUT")
            if len(tail) == 2 and tail[0] == "devices":
                return self._v1_accept_json if method == "DELETE" else _meta_error(405, "use DELETE")
        return _meta_error(404, "no such Track v1 endpoint")

    def _track_body(self, req: Request) -> dict[str, Any]:
        decode.check_content_type(req.headers, allow_text=False)
        return decode.json_object(decode.body_bytes(req.body, req.headers))

    def _v1_identify(self, req: Request, identifier: str) -> Response:
        try:
            body = self._track_body(req)
            op = decode.track_v1_identify(identifier, body)
        except DecodeError as exc:
            return _meta_error(exc.status, exc.message)
        self._apply([op], self._now(req))
        return _ok()

    def _v1_event(self, req: Request, identifier: str | None) -> Response:
        try:
            body = self._track_body(req)
            op = decode.track_v1_event(identifier, body)
        except DecodeError as exc:
            return _meta_error(exc.status, exc.message)
        self._apply([op], self._now(req))
        return _ok()

    def _v1_anonymous_event(self, req: Request) -> Response:
        return self._v1_event(req, None)

    def _v1_merge(self, req: Request) -> Response:
        try:
            body = self._track_body(req)
            op = decode.track_v1_merge(body)
        except DecodeError as exc:
            return _json(exc.status, {"meta": {"error": exc.message, "errors": [exc.message]}})
        self._apply([op], self._now(req))
        return _ok()

    def _v1_simple(self, req: Request, op: Op) -> Response:
        if req.body:
            try:
                decode.body_bytes(req.body, req.headers)
            except DecodeError as exc:
                return _meta_error(exc.status, exc.message)
        self._apply([op], self._now(req))
        return _ok()

    def _v1_accept_json(self, req: Request) -> Response:
        try:
            if req.body.strip():
                self._track_body(req)
        except DecodeError as exc:
            return _meta_error(exc.status, exc.message)
        self._now(req)
        self.store.barrier()
        return _ok()

    @staticmethod
    def _v2_error(status: int, exc: DecodeError | ItemError) -> Response:
        return _json(status, {"errors": [{"reason": exc.reason, "field": exc.field, "message": exc.message}]})

    def _v2_entity(self, req: Request) -> Response:
        try:
            raw = decode.body_bytes(req.body, req.headers)
            if len(raw) > decode.ITEM_LIMIT:
                raise DecodeError(f"entity request larger than {decode.ITEM_LIMIT} bytes", reason="too_large")
            decode.check_content_type(req.headers, allow_text=False)
            op = decode.track_v2_item(decode.json_object(raw))
        except DecodeError as exc:
            return self._v2_error(exc.status, exc)
        except ItemError as exc:
            return self._v2_error(400, exc)
        self._apply([op], self._now(req))
        return _ok()

    def _v2_batch(self, req: Request) -> Response:
        try:
            raw = decode.body_bytes(req.body, req.headers)
            decode.check_content_type(req.headers, allow_text=False)
            decoded = decode.track_v2_batch(decode.json_object(raw), raw_size=len(raw))
        except DecodeError as exc:
            return self._v2_error(exc.status, exc)
        bad_arrivals = self._apply_batch(req, decoded)
        if bad_arrivals is not None:
            return bad_arrivals
        if decoded.errors:
            return _json(
                207,
                {
                    "errors": [
                        {
                            "batch_index": index,
                            "reason": err.reason,
                            "field": err.field,
                            "message": err.message,
                        }
                        for index, err in decoded.errors
                    ]
                },
            )
        return _ok()

    # ------------------------------------------------------------------ Pipelines

    def _pipelines(self, req: Request) -> Response:
        segs = req.path[1:].split("/")
        if len(segs) != 2 or not segs[1]:
            return _meta_error(404, f"no route for {req.method} {req.path[:200]}")
        name = segs[1]
        browser = name in decode.BROWSER_TYPES or name == "b"
        if not browser and name not in decode.PIPELINES_TYPES and name != "batch":
            return _meta_error(404, f"no Pipelines endpoint /v1/{name[:100]}")
        if req.method != "POST":
            return _meta_error(405, f"{req.method} not allowed; use POST")
        strict = req.headers.get("x-strict-mode", "").strip() == "1"
        kind: str | None
        if name in ("batch", "b"):
            kind = None
        elif browser:
            kind = decode.BROWSER_TYPES[name]
        else:
            kind = name
        bad_clock = _clock_problem(req, batch=kind is None)
        if bad_clock is not None:
            return bad_clock
        header_ok = self._pipelines_header_auth(req.headers.get("authorization"))
        try:
            decode.check_content_type(req.headers, allow_text=True)
            raw = decode.body_bytes(req.body, req.headers)
            body = decode.json_object(raw)
        except DecodeError as exc:
            if not header_ok and strict:
                return _meta_error(401, "Unauthorized request: use Basic auth with your Pipelines API key")
            return self._pipelines_drop(
                strict, exc.status if exc.status != 415 else 400, exc.message, "malformed"
            )
        write_key = body.pop("writeKey", None)
        key = self.creds.pipelines_key
        body_ok = (
            key is not None
            and isinstance(write_key, str)
            and hmac.compare_digest(write_key.encode(), key.encode())
        )
        if not (header_ok or body_ok):
            if strict:
                return _meta_error(401, "Unauthorized request: use Basic auth with your Pipelines API key")
            self.workspace.note_dropped("unauthorized")
            return _ok()
        decoded: Decoded = decode.pipelines_body(body, kind, raw_size=len(raw))
        if decoded.errors and strict:
            return _meta_error(
                400,
                *(f"item {i}: {err.message}" if kind is None else err.message for i, err in decoded.errors),
            )
        bad_arrivals = self._apply_batch(req, decoded)
        if bad_arrivals is not None:
            return bad_arrivals
        for _index, err in decoded.errors:
            self.workspace.note_dropped(err.reason)
        return _ok()

    def _pipelines_header_auth(self, header: str | None) -> bool:
        key = self.creds.pipelines_key
        if key is None:
            return True
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer":
            return hmac.compare_digest(value.encode(), key.encode())
        if scheme == "basic":
            try:
                user = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[0]
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return False
            return hmac.compare_digest(user.encode(), key.encode())
        return False

    def _pipelines_drop(self, strict: bool, status: int, message: str, reason: str) -> Response:
        if strict:
            return _meta_error(status if status in (400, 413) else 400, message)
        self.workspace.note_dropped(reason)
        return _ok()

    # ------------------------------------------------------------------ App API

    def _app_api(self, req: Request) -> Response:
        if req.method not in ("GET", "HEAD"):
            return _meta_error(405, "the App API reads are GET only")
        key = self.creds.app_key
        if key is not None:
            header = req.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
                return _meta_error(401, "Unauthorized request: use Authorization: Bearer <app api key>")
        segs = req.segments()[1:]  # drop "v1"
        self.store.barrier()
        params = observe_api.query_params(req.query)
        workspace = self.workspace
        try:
            if len(segs) == 3 and segs[0] == "customers" and segs[2] == "activities":
                profile = observe_api.find_customer(workspace, segs[1], params.get("id_type") or "id")
                if profile is None:
                    return _meta_error(404, "customer not found")
                return _json(200, observe_api.activities(workspace, profile, params))
            if segs == ["messages"]:
                return _json(200, observe_api.messages(workspace, params))
            if len(segs) == 2 and segs[0] == "messages":
                found = observe_api.message(workspace, segs[1])
                return _json(200, found) if found is not None else _meta_error(404, "message not found")
            if segs == ["campaigns"]:
                return _json(200, observe_api.campaigns(workspace))
            if len(segs) in (2, 3) and segs[0] == "campaigns":
                # ASCII digits only (str.isdigit() accepts '²' and int() then raised: a 500), and
                # short enough for int() (which refuses over 4300 digits); no campaign id is longer
                if not (segs[1].isascii() and segs[1].isdigit()) or len(segs[1]) > 19:
                    return _meta_error(404, "campaign not found")
                name = observe_api.campaign_by_id(workspace, int(segs[1]))
                if name is None:
                    return _meta_error(404, "campaign not found")
                if len(segs) == 2:
                    return _json(200, {"campaign": observe_api.campaign_object(workspace, name)})
                if segs[2] == "metrics":
                    now = self.clock.current() or int(time.time() * 1000)
                    return _json(200, observe_api.campaign_metrics(workspace, int(segs[1]), params, now))
        except observe_api.QueryError as exc:
            return _meta_error(400, str(exc))
        return _meta_error(404, f"no App API route {req.path[:200]}")

    # ------------------------------------------------------------------ control

    def _control(self, req: Request) -> Response:
        name = req.path[len("/_shopsim/") :]
        if name == "health":
            return _json(200, {"status": "ok", "clock": self.clock.mode})
        if name == "clock":
            if req.method in ("GET", "HEAD"):
                return _json(
                    200,
                    {
                        "now_ms": self.clock.current(),
                        "mode": self.clock.mode,
                        "next_due_ms": self.workspace.campaigns.next_due(),
                    },
                )
            if req.method != "POST":
                return _meta_error(405, "use GET or POST")
            return self._set_clock(req)
        if name == "export":
            if req.method not in ("GET", "HEAD"):
                return _meta_error(405, "use GET")
            params = observe_api.query_params(req.query)
            kinds = tuple(
                k for k in (params.get("kinds") or ",".join(observe_api.EXPORT_KINDS)).split(",") if k
            )
            known = observe_api.EXPORT_KINDS + observe_api.OPTIONAL_EXPORT_KINDS
            unknown = [k for k in kinds if k not in known]
            if unknown:
                return _meta_error(400, f"unknown export kind(s) {unknown}; choose from {known}")
            self.store.barrier()
            body = observe_api.export_lines(self.workspace, kinds=kinds, now_ms=self.clock.current())
            return Response(200, body, content_type="application/x-ndjson")
        if name == "stats":
            return _json(200, self.stats_snapshot())
        return _meta_error(404, f"no control endpoint {name[:100]!r}")

    def _set_clock(self, req: Request) -> Response:
        if self.clock.mode != "virtual":
            return _meta_error(409, "the emulator runs on the wall clock; start it with --clock virtual")
        try:
            body = decode.json_object(req.body)
        except DecodeError as exc:
            return _meta_error(400, exc.message)
        now_ms = body.get("now_ms")
        advance = body.get("advance_ms")
        current = self.clock.current()
        if advance is not None and now_ms is None:
            if not isinstance(advance, int) or isinstance(advance, bool) or advance < 0:
                return _meta_error(400, "'advance_ms' must be a non-negative integer")
            if current is None:
                return _meta_error(409, "the clock has not started; set 'now_ms' first")
            now_ms = current + advance
        if not isinstance(now_ms, int) or isinstance(now_ms, bool):
            return _meta_error(400, 'send {"now_ms": <epoch ms>} or {"advance_ms": <ms>}')
        if abs(now_ms) > MAX_CLOCK_MS:
            # a clock near 2**64 was accepted, then every later request failed in SQLite (a 500)
            return _meta_error(400, f"the clock must stay between -{MAX_CLOCK_MS} and {MAX_CLOCK_MS} ms")
        if current is not None and now_ms < current:
            return _json(
                409,
                {"meta": {"errors": [f"the clock never goes backwards (now {current})"]}, "now_ms": current},
            )
        now = self.clock.at(now_ms)
        fired = self.fire(now)
        self.store.barrier()
        return _json(200, {"now_ms": now, "fired": fired, "pending": len(self.workspace.campaigns.pending)})

    def stats_snapshot(self) -> dict[str, Any]:
        """Counters and timings: requests, SQLite seconds, commits, process CPU seconds, and the
        reporting-webhook outbox by state (``pending``, ``given_up``; delivered reports leave it)."""
        counters = self.workspace.counters
        out: dict[str, Any] = {
            "requests": self.stats.requests,
            "ingest_requests": self.stats.ingest_requests,
            "rejected": self.stats.rejected,
            "handler_s": round(self.stats.handler_s, 6),
            "sqlite_s": round(self.store.sqlite_s, 6),
            "commit_s": round(self.store.commit_s, 6),
            "commits": self.store.commits,
            "process_cpu_s": round(time.process_time(), 6),
            "events": counters.events,
            "duplicates": counters.duplicates,
            "identifies": counters.identifies,
            "merges": counters.merges,
            "anon_merged": counters.anon_merged,
            "dropped_items": dict(counters.dropped_items),
            "pending_journeys": len(self.workspace.campaigns.pending),
            "webhook_outbox": Outbox(self.store).counts(),
            "clock_ms": self.clock.now_ms,
        }
        if self.faults is not None:
            out["faults"] = {"throttled": self.faults.throttled, "failed": self.faults.failed}
        return out


def header_map(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased header names (for building :class:`Request` objects in tests)."""
    return {k.lower(): v for k, v in headers.items()}
