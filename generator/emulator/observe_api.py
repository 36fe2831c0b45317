"""Reading the emulated workspace back: the checker's NDJSON export and App-API-shaped reads.

``GET /_shopsim/export`` streams one JSON object per line (times in epoch ms):

- ``{"kind":"profile","cio_id","id","email","anonymous_ids":[...],"created_ms","attributes":{}}``
  for every live person;
- ``{"kind":"event","event_id","name","type":"event|page|screen","person","anonymous_id",
  "timestamp_ms","received_ms","outcome","properties":{}}`` for every ingested event, with
  ``outcome`` one of ``accepted | duplicate | merged_anonymous | merged_secondary |
  anonymous_pending | expired``;
- ``{"kind":"journey","campaign","campaign_id","person","trigger_event_id","entered_ms",
  "outcome":"sent|exited|dropped|pending","at_ms","exit_event_id","reason"}`` (``at_ms`` of a
  pending journey is its due time);
- ``{"kind":"skip","campaign","campaign_id","person","trigger_event_id","at_ms",
  "reason":"frequency|stale|anonymous|secondary|filter"}``.

``?kinds=`` picks record kinds (default ``profile,event,journey,skip``). One more kind is only
sent when asked for: ``event_index``, the ingested events as columns, one record per
:data:`INDEX_CHUNK` events — ``{"kind":"event_index","event_id":[...],"person":[...],
"outcome":[...]}`` (``person`` is ``""`` for nobody). It is what the checker reads: who each
event landed on and its outcome, without the names, times and properties that make up most of
an ``event`` line — parsing those was about a third of the checker's time on big runs.

App API (Bearer app key), shaped like https://api.customer.io/v1 (reference/customerio.md §9.2):
``GET /v1/customers/{id}/activities`` (``id_type``, ``type``, ``name``, ``start``, ``limit`` ≤ 100;
newest first; ``next`` → ``start``), ``GET /v1/messages`` (``start``, ``limit`` ≤ 1000, ``type``,
``metric``, ``campaign_id``, ``start_ts``, ``end_ts``), ``GET /v1/messages/{id}``,
``GET /v1/campaigns``, ``GET /v1/campaigns/{id}``, ``GET /v1/campaigns/{id}/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

import orjson

from generator.emulator.identity import Profile
from generator.emulator.workspace import ANON_RETENTION_MS, Workspace

EXPORT_KINDS = ("profile", "event", "journey", "skip")
"""The record kinds an export carries when ``?kinds=`` is not given."""
OPTIONAL_EXPORT_KINDS = ("event_index",)
"""Kinds sent only when named in ``?kinds=``."""
INDEX_CHUNK = 10_000
"""Events per ``event_index`` record."""


class QueryError(ValueError):
    """A bad query parameter (answered 400)."""


def query_params(query: str) -> dict[str, str]:
    """The first value of each query parameter."""
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def _int_param(params: Mapping[str, str], key: str, default: int | None, *, lo: int, hi: int) -> int | None:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    digits = raw[1:] if raw.startswith("-") else raw
    # ASCII only: str.isdigit() is True for '²', which int() rejects (that was a 500)
    if not (digits.isascii() and digits.isdigit()):
        raise QueryError(f"'{key}' must be an integer, got {raw[:20]!r}")
    if len(digits) > 19:  # out of every range; also keeps int() off its 4300-digit limit
        raise QueryError(f"'{key}' must be between {lo} and {hi}")
    value = int(raw)
    if not lo <= value <= hi:
        raise QueryError(f"'{key}' must be between {lo} and {hi}, got {value}")
    return value


def _label(workspace: Workspace, cio: str | None) -> str | None:
    if cio is None:
        return None
    profile = workspace.people.by_cio.get(cio)
    return profile.label if profile is not None else None


def export_lines(
    workspace: Workspace, *, kinds: tuple[str, ...] = EXPORT_KINDS, now_ms: int | None = None
) -> Iterator[bytes]:
    """The NDJSON export, streamed in chunks (yields between database pages)."""
    store = workspace.store
    if "profile" in kinds:
        for profile in list(workspace.people.live()):
            yield (
                orjson.dumps(
                    {
                        "kind": "profile",
                        "cio_id": profile.cio_id,
                        "id": profile.id,
                        "email": profile.email,
                        "anonymous_ids": list(profile.anonymous_ids),
                        "created_ms": profile.created_ms,
                        "attributes": profile.attributes,
                        "suppressed": profile.suppressed,
                    }
                )
                + b"\n"
            )
    if "event" in kinds:
        for _seq, event_id, name, kind, cio, anon, ts, received, outcome, props in store.iterate(
            "SELECT seq, event_id, name, type, cio_id, anonymous_id, timestamp_ms, received_ms, outcome,"
            " properties"
            " FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
        ):
            if outcome == "anonymous_pending" and now_ms is not None and now_ms - ts > ANON_RETENTION_MS:
                outcome = "expired"
            yield (
                b'{"kind":"event","event_id":'
                + orjson.dumps(event_id)
                + b',"name":'
                + orjson.dumps(name)
                + b',"type":'
                + orjson.dumps(kind)
                + b',"person":'
                + orjson.dumps(_label(workspace, cio))
                + b',"anonymous_id":'
                + orjson.dumps(anon)
                + b',"timestamp_ms":%d,"received_ms":%d,"outcome":' % (ts, received)
                + orjson.dumps(outcome)
                + b',"properties":'
                + bytes(props)
                + b"}\n"
            )
    if "event_index" in kinds:
        yield from _event_index(workspace, now_ms)
    if "journey" in kinds:
        for (
            _seq,
            campaign,
            campaign_id,
            person,
            trigger,
            entered,
            due,
            outcome,
            at_ms,
            exit_id,
            reason,
            delivery_id,
        ) in store.iterate(
            "SELECT seq, campaign, campaign_id, person, trigger_event_id, entered_ms, due_ms, outcome, at_ms,"
            " exit_event_id, reason, delivery_id FROM journeys WHERE seq > ? ORDER BY seq LIMIT ?"
        ):
            yield (
                orjson.dumps(
                    {
                        "kind": "journey",
                        "campaign": campaign,
                        "campaign_id": campaign_id,
                        "person": person,
                        "trigger_event_id": trigger,
                        "entered_ms": entered,
                        "outcome": outcome,
                        "at_ms": at_ms if at_ms is not None else due,
                        "exit_event_id": exit_id,
                        "reason": reason,
                        "delivery_id": delivery_id,
                    }
                )
                + b"\n"
            )
    if "skip" in kinds:
        for _seq, campaign, campaign_id, person, trigger, at_ms, reason in store.iterate(
            "SELECT seq, campaign, campaign_id, person, trigger_event_id, at_ms, reason FROM skips"
            " WHERE seq > ? ORDER BY seq LIMIT ?"
        ):
            yield (
                orjson.dumps(
                    {
                        "kind": "skip",
                        "campaign": campaign,
                        "campaign_id": campaign_id,
                        "person": person,
                        "trigger_event_id": trigger,
                        "at_ms": at_ms,
                        "reason": reason,
                    }
                )
                + b"\n"
            )


def _event_index(workspace: Workspace, now_ms: int | None) -> Iterator[bytes]:
    """``event_index`` records: (event id, person, outcome) columns, :data:`INDEX_CHUNK` rows each."""
    ids: list[str] = []
    people: list[str] = []
    outcomes: list[str] = []
    labels: dict[str, str] = {}
    for _seq, event_id, cio, ts, outcome in workspace.store.iterate(
        "SELECT seq, event_id, cio_id, timestamp_ms, outcome FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        chunk=INDEX_CHUNK,
    ):
        if outcome == "anonymous_pending" and now_ms is not None and now_ms - ts > ANON_RETENTION_MS:
            outcome = "expired"
        ids.append(event_id)
        if cio is None:
            people.append("")
        else:
            # People have many events: look each label up once per export.
            label = labels.get(cio)
            if label is None:
                label = labels[cio] = _label(workspace, cio) or ""
            people.append(label)
        outcomes.append(outcome)
        if len(ids) >= INDEX_CHUNK:
            yield _index_record(ids, people, outcomes)
            ids, people, outcomes = [], [], []
    if ids:
        yield _index_record(ids, people, outcomes)


def _index_record(ids: list[str], people: list[str], outcomes: list[str]) -> bytes:
    return (
        orjson.dumps({"kind": "event_index", "event_id": ids, "person": people, "outcome": outcomes}) + b"\n"
    )


# --------------------------------------------------------------------------- App API


def find_customer(workspace: Workspace, identifier: str, id_type: str) -> Profile | None:
    """The live person an App API path names (``id_type`` id | email | cio_id)."""
    if id_type not in ("id", "email", "cio_id"):
        raise QueryError("'id_type' must be one of id, email, cio_id")
    return workspace.people.find((id_type, identifier))


def activities(workspace: Workspace, profile: Profile, params: Mapping[str, str]) -> dict[str, Any]:
    """``GET /v1/customers/{id}/activities``: newest first, paged by ``start``/``next``."""
    limit = _int_param(params, "limit", 50, lo=1, hi=100) or 50
    start = _int_param(params, "start", 0, lo=0, hi=2**62) or 0
    want_type = params.get("type") or None
    want_name = params.get("name") or None
    items: list[tuple[int, int, dict[str, Any]]] = []
    identifiers = profile.identifiers()
    workspace.store.ensure_person_index()
    for seq, event_id, name, kind, ts, props in workspace.store.query(
        "SELECT seq, event_id, name, type, timestamp_ms, properties FROM events"
        " WHERE cio_id = ? AND outcome != 'duplicate'",
        (profile.cio_id,),
    ):
        data = orjson.loads(props)
        activity: dict[str, Any] = {
            "id": event_id,
            "type": kind,
            "timestamp": ts // 1000,
            "customer_id": profile.id,
            "customer_identifiers": identifiers,
            "delivery_id": None,
            "delivery_type": None,
            "data": data,
        }
        if kind == "page":
            url = data.get("url") if isinstance(data, dict) else None
            activity["url"] = url if isinstance(url, str) else name
            activity["name"] = name
        else:
            activity["name"] = name
        items.append((ts, seq, activity))
    for seq, kind, name, ts, data_raw in workspace.store.query(
        "SELECT seq, type, name, timestamp_ms, data FROM activities WHERE cio_id = ?", (profile.cio_id,)
    ):
        data = orjson.loads(data_raw)
        activity = {
            "id": f"act{seq:012x}",
            "type": kind,
            "name": name,
            "timestamp": ts // 1000,
            "customer_id": profile.id,
            "customer_identifiers": identifiers,
            "delivery_id": data.get("delivery_id"),
            "delivery_type": "email" if kind.endswith("_email") else None,
            "data": data,
        }
        items.append((ts, 1 << 62 | seq, activity))
    items.sort(key=lambda item: (item[0], item[1]), reverse=True)
    selected = [
        a
        for _, _, a in items
        if (want_type is None or a["type"] == want_type) and (want_name is None or a.get("name") == want_name)
    ]
    page = selected[start : start + limit]
    more = start + limit < len(selected)
    return {"activities": page, "next": str(start + limit) if more else ""}


def _message(workspace: Workspace, row: tuple[Any, ...]) -> dict[str, Any]:
    (
        _seq,
        campaign_id,
        cio,
        _person,
        trigger,
        entered,
        outcome,
        at_ms,
        reason,
        delivery_id,
        recipient,
        campaign,
    ) = row
    profile = workspace.people.by_cio.get(cio)
    identifiers = profile.identifiers() if profile is not None else {"id": None, "email": None, "cio_id": cio}
    at_s = (at_ms or entered) // 1000
    engine = workspace.campaigns
    configured = engine.campaigns.get(campaign)
    subject = configured.message if configured is not None and configured.message else campaign
    return {
        "id": delivery_id,
        "deduplicate_id": f"{delivery_id}:{at_s}",
        "message_template_id": 1,
        "action_id": 1,
        "parent_action_id": None,
        "customer_id": identifiers.get("id"),
        "customer_identifiers": identifiers,
        "recipient": recipient,
        "subject": subject,
        "metrics": {outcome: at_s},
        "created": at_s,
        "failure_message": reason or None,
        "newsletter_id": None,
        "content_id": None,
        "campaign_id": campaign_id,
        "broadcast_id": None,
        "trigger_event_id": trigger,
        "type": "email",
        "forgotten": False,
    }


_MESSAGE_COLUMNS = (
    "seq, campaign_id, cio_id, person, trigger_event_id, entered_ms, outcome, at_ms, reason, delivery_id,"
    " recipient, campaign"
)


def messages(workspace: Workspace, params: Mapping[str, str]) -> dict[str, Any]:
    """``GET /v1/messages``: deliveries (sent/dropped), oldest first, paged by ``start``/``next``."""
    limit = _int_param(params, "limit", 50, lo=1, hi=1000) or 50
    after = _int_param(params, "start", 0, lo=0, hi=2**62) or 0
    kind = params.get("type") or "email"
    if kind != "email":
        return {"messages": [], "next": ""}
    clauses = ["outcome IN ('sent', 'dropped')", "seq > ?"]
    args: list[Any] = [after]
    metric = params.get("metric")
    if metric:
        if metric not in ("sent", "dropped"):
            return {"messages": [], "next": ""}
        clauses.append("outcome = ?")
        args.append(metric)
    campaign_id = _int_param(params, "campaign_id", None, lo=0, hi=2**62)
    if campaign_id is not None:
        clauses.append("campaign_id = ?")
        args.append(campaign_id)
    start_ts = _int_param(params, "start_ts", None, lo=0, hi=2**40)
    if start_ts is not None:
        clauses.append("at_ms >= ?")
        args.append(start_ts * 1000)
    end_ts = _int_param(params, "end_ts", None, lo=0, hi=2**40)
    if end_ts is not None:
        clauses.append("at_ms <= ?")
        args.append(end_ts * 1000)
    rows = workspace.store.query(
        f"SELECT {_MESSAGE_COLUMNS} FROM journeys WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?",
        (*args, limit + 1),
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "messages": [_message(workspace, tuple(r)) for r in rows],
        "next": str(rows[-1][0]) if more and rows else "",
    }


def message(workspace: Workspace, delivery_id: str) -> dict[str, Any] | None:
    """``GET /v1/messages/{id}``."""
    rows = workspace.store.query(
        f"SELECT {_MESSAGE_COLUMNS} FROM journeys WHERE delivery_id = ?", (delivery_id,)
    )
    return {"message": _message(workspace, tuple(rows[0]))} if rows else None


def campaigns(workspace: Workspace) -> dict[str, Any]:
    """``GET /v1/campaigns``."""
    return {"campaigns": [campaign_object(workspace, name) for name in workspace.campaigns.campaigns]}


def campaign_object(workspace: Workspace, name: str) -> dict[str, Any]:
    engine = workspace.campaigns
    campaign = engine.campaigns[name]
    trigger = campaign.trigger
    return {
        "id": engine.ids[name],
        "name": name,
        "type": "event",
        "state": "running",
        "active": True,
        "event_name": trigger.event_name,
        "description": campaign.description,
    }


def campaign_by_id(workspace: Workspace, campaign_id: int) -> str | None:
    for name, cid in workspace.campaigns.ids.items():
        if cid == campaign_id:
            return name
    return None


_RES_MS = {"hours": 3_600_000, "days": 86_400_000, "weeks": 7 * 86_400_000, "months": 30 * 86_400_000}
_SERIES = (
    "attempted",
    "bounced",
    "clicked",
    "converted",
    "created",
    "deferred",
    "delivered",
    "drafted",
    "dropped",
    "failed",
    "opened",
    "sent",
    "spammed",
    "suppressed",
    "undeliverable",
    "unsubscribed",
)


def campaign_metrics(
    workspace: Workspace, campaign_id: int, params: Mapping[str, str], now_ms: int
) -> dict[str, Any]:
    """``GET /v1/campaigns/{id}/metrics``: per-period series, oldest first."""
    version = params.get("version")
    if version not in ("1", "2"):
        raise QueryError("'version' is required: 1 or 2")
    res = params.get("res") or params.get("period") or "days"
    if res not in _RES_MS:
        raise QueryError("'res' must be one of hours, days, weeks, months")
    size = _RES_MS[res]
    rows = workspace.store.query(
        "SELECT outcome, at_ms, entered_ms FROM journeys"
        " WHERE campaign_id = ? AND outcome IN ('sent', 'dropped')",
        (campaign_id,),
    )
    end_s = _int_param(params, "end", None, lo=0, hi=2**40)
    start_s = _int_param(params, "start", None, lo=0, hi=2**40)
    end_ms = end_s * 1000 if end_s is not None else now_ms
    if start_s is not None:
        start_ms = start_s * 1000
    else:
        first = min((r[1] for r in rows), default=end_ms)
        start_ms = min(first, end_ms)
    start_ms -= start_ms % size
    periods = max(1, min(1000, (end_ms - start_ms) // size + 1))
    series = {name: [0] * periods for name in _SERIES}
    for outcome, at_ms, _entered in rows:
        index = (at_ms - start_ms) // size
        if 0 <= index < periods:
            series["created"][index] += 1
            series[outcome][index] += 1
            if outcome == "sent":
                series["delivered"][index] += 1
    return {"metric": {"series": series}, "start": start_ms // 1000, "res": res}
