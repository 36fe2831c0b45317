"""Request bodies → operations, for every ingestion API the emulator speaks.

Decoding is pure: it validates a body completely and returns the operations to apply plus the
per-item problems, so the workspace never meets half-valid input (nothing is applied when a
request is rejected). Rules and limits follow reference/customerio.md §2–4:

- Track v1 (``/api/v1``): Unix-second timestamps, ``data`` ≤ 100,000 B, event name ≤ 100 B
  (page/screen name ≤ 2,000 B), identifiers ≤ 150 B, attribute names ≤ 150 B, values ≤ 1000 B,
  ≤ 300 attributes per call.
- Track v2 (``/api/v2``): ``{type, identifiers, action, ...}`` operations, ``/entity`` ≤ 32 KB,
  ``/batch`` ≤ 500 KB with items ≤ 32 KB; invalid items are reported per ``batch_index``.
  ``identifiers: {"anonymous_id": a}`` addresses an anonymous person for ``event``/``page``/
  ``screen`` only (Segment-style, unconfirmed: see ``V2_ANONYMOUS_ACTIONS``).
- Pipelines (``/v1``): Segment-spec messages with ISO-8601 timestamps; a call ≤ 32 KB, a batch
  ≤ 500 KB with items ≤ 32 KB; invalid or oversize items are dropped (permissive) or reject
  the request (strict).

Identifiers are ``(kind, value)`` with kind ``id`` | ``email`` | ``cio_id``; a value containing
``@`` given where "id or email" is allowed is an email (email identifiers are case-insensitive).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

Ident = tuple[str, str]
"""A person identifier: ``("id" | "email" | "cio_id", value)``."""

TRACK_EVENT_DATA_LIMIT = 100_000
NAME_LIMIT = 100
"""The documented event-name limit (customerio.md §2.8), for ``type: event`` / Pipelines ``track``."""
# A page view's name is its URL (customerio.md §2.5), and URLs with utm_* queries pass 100 bytes
# routinely; §2.8's 100 B is the *event name* row and the docs give no page/screen name limit.
# Our choice, unconfirmed (customerio.md §13 lists what the docs leave open): 2,000 B, a common
# practical URL ceiling, for page and screen names on every API. The wire encoders flag the same
# value as oversize (generator/wire/track_v1.py PAGE_NAME_LIMIT_BYTES; the emulator never imports
# wire, so each side defines it): change both together.
PAGE_NAME_LIMIT = 2_000
ID_LIMIT = 150
ATTR_NAME_LIMIT = 150
ATTR_VALUE_LIMIT = 1000
ATTR_COUNT_LIMIT = 300
ITEM_LIMIT = 32 * 1024
BATCH_LIMIT = 500 * 1024
MESSAGE_ID_LIMIT = 150
MAX_DECOMPRESSED = 8 * 1024 * 1024

RESERVED_IDENTIFY_KEYS = frozenset({"id", "email", "cio_id", "anonymous_id", "_timestamp", "_update"})


class DecodeError(Exception):
    """The whole request is invalid; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400, field: str = "", reason: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.reason = reason


class ItemError(Exception):
    """One item of a batch (or the single call) is invalid."""

    def __init__(self, message: str, *, field: str = "", reason: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.reason = reason


# --------------------------------------------------------------------------- operations


@dataclass(slots=True)
class IdentifyOp:
    """Create or update a person. ``who`` may be None when only ``email`` identifies."""

    who: Ident | None
    email: str | None
    new_id: str | None
    anonymous_id: str | None
    attributes: dict[str, Any]
    attr_timestamp_ms: int | None = None
    update_only: bool = False
    message_id: str | None = None


@dataclass(slots=True)
class EventOp:
    """An event, page view or screen view, for a person (``who``) or anonymous."""

    event_id: str | None
    name: str
    type: str  # "event" | "page" | "screen"
    who: Ident | None
    anonymous_id: str | None
    timestamp_ms: int | None
    properties: dict[str, Any]
    api: str


@dataclass(slots=True)
class MergeOp:
    """``merge_customers``: fold ``secondary`` into ``primary``."""

    primary: Ident
    secondary: Ident


@dataclass(slots=True)
class DeleteOp:
    who: Ident


@dataclass(slots=True)
class SuppressOp:
    who: Ident
    suppress: bool


@dataclass(slots=True)
class NoOp:
    """Accepted and acknowledged, but nothing the emulator models (devices, objects, alias)."""

    what: str


Op = IdentifyOp | EventOp | MergeOp | DeleteOp | SuppressOp | NoOp


@dataclass(slots=True)
class Decoded:
    """The operations of one request and the problems of its items (index → error).

    ``op_items[k]`` is the body index of the item ``ops[k]`` came from; ``items`` is how many
    items the body held (None when it has no item list, e.g. a dropped oversize batch). Both
    let per-item arrival times (``X-Shopsim-Arrivals``) be matched to the operations.
    """

    ops: list[Op] = field(default_factory=list)
    errors: list[tuple[int, ItemError]] = field(default_factory=list)
    oversize: int = 0
    op_items: list[int] = field(default_factory=list)
    items: int | None = None

    def add(self, index: int, op: Op) -> None:
        """Append the operation decoded from body item ``index``."""
        self.ops.append(op)
        self.op_items.append(index)


# --------------------------------------------------------------------------- body helpers


def body_bytes(body: bytes, headers: Mapping[str, str]) -> bytes:
    """The request body with ``Content-Encoding: gzip``/``deflate`` undone (bounded)."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if not encoding or encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise DecodeError(f"unsupported content-encoding {encoding!r}", status=415, field="Content-Encoding")
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, MAX_DECOMPRESSED + 1)
        if len(out) > MAX_DECOMPRESSED or inflater.unconsumed_tail:
            raise DecodeError(f"decompressed body larger than {MAX_DECOMPRESSED} bytes", status=413)
        if not inflater.eof:
            raise DecodeError("truncated compressed body", field="body")
        return out
    except (zlib.error, gzip.BadGzipFile, EOFError):
        raise DecodeError(f"body is not valid {encoding}", field="body") from None


def json_object(raw: bytes, *, what: str = "body") -> dict[str, Any]:
    """Parse a JSON object or raise :class:`DecodeError`."""
    if not raw.strip():
        raise DecodeError(f"{what} is empty; expected a JSON object", field=what)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}", field=what) from None
    if not isinstance(value, dict):
        raise DecodeError(f"{what} must be a JSON object, got {_type_name(value)}", field=what)
    return value


def check_content_type(headers: Mapping[str, str], *, allow_text: bool) -> None:
    """JSON APIs take ``application/json`` (or no content type); browsers send ``text/plain``."""
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not ctype or ctype == "application/json" or ctype.endswith("+json"):
        return
    if ctype == "text/plain" and allow_text:
        return
    raise DecodeError(
        f"unsupported content type {ctype!r}; send application/json", status=415, field="Content-Type"
    )


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _size(value: Any) -> int:
    return len(orjson.dumps(value))


def _str_field(
    obj: Mapping[str, Any], key: str, *, required: bool, limit: int, allow_number: bool = False
) -> str | None:
    value = obj.get(key)
    if type(value) is str and 0 < len(value) <= limit // 4 and not value[0].isspace():
        return value  # fast path: a plain short string is valid (≤ limit/4 chars is ≤ limit UTF-8 bytes)
    if value is None:
        if required:
            raise ItemError(f"'{key}' is required", field=key, reason="required")
        return None
    if allow_number and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ItemError(f"'{key}' must be a string, got {_type_name(value)}", field=key, reason="type")
    if not value.strip():
        if required:
            raise ItemError(f"'{key}' must not be empty", field=key, reason="required")
        return None
    if len(value.encode()) > limit:
        raise ItemError(f"'{key}' is longer than {limit} bytes", field=key, reason="too_long")
    return value


def _object_field(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ItemError(f"'{key}' must be an object, got {_type_name(value)}", field=key, reason="type")
    return value


def path_identifier(raw: str) -> Ident:
    """A Track v1 path identifier: ``cio_<id>``, an email, or an id."""
    if not raw:
        raise DecodeError("the person identifier in the path is empty", field="identifier")
    if len(raw.encode()) > ID_LIMIT:
        raise DecodeError(f"the person identifier is longer than {ID_LIMIT} bytes", field="identifier")
    if raw.startswith("cio_") and len(raw) > 4:
        return ("cio_id", raw[4:])
    if "@" in raw:
        return ("email", raw)
    return ("id", raw)


def _unix_seconds(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ItemError(
            f"'{key}' must be a Unix timestamp in seconds, got a boolean", field=key, reason="type"
        )
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        # ASCII only: str.isdigit() is True for '²', which int() rejects (that was a 500)
        if digits.isascii() and digits.isdigit():
            if len(digits) > 15:  # beyond the range below; keeps int() off its 4300-digit limit
                raise ItemError(f"'{key}' is out of range", field=key, reason="range")
            value = int(text)
    if not isinstance(value, int | float):
        raise ItemError(
            f"'{key}' must be a Unix timestamp in seconds, got {_type_name(value)}", field=key, reason="type"
        )
    if not -(2**40) < value < 2**40:
        raise ItemError(f"'{key}' is out of range", field=key, reason="range")
    return int(value * 1000)


def iso_ms(value: Any, key: str) -> int | None:
    """An ISO-8601 timestamp (Segment spec) in epoch milliseconds; a naive time is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        # tolerated: some SDKs send epoch ms
        if not -(2**50) < value < 2**50:
            raise ItemError(f"'{key}' is out of range", field=key, reason="range")
        return int(value)
    if not isinstance(value, str):
        raise ItemError(
            f"'{key}' must be an ISO-8601 string, got {_type_name(value)}", field=key, reason="type"
        )
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ItemError(
            f"'{key}' is not an ISO-8601 timestamp: {text[:40]!r}", field=key, reason="format"
        ) from None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _check_attributes(attributes: Mapping[str, Any]) -> None:
    if len(attributes) > ATTR_COUNT_LIMIT:
        raise ItemError(
            f"more than {ATTR_COUNT_LIMIT} attributes in one call", field="attributes", reason="too_many"
        )
    for key, value in attributes.items():
        if len(key.encode()) > ATTR_NAME_LIMIT:
            raise ItemError(
                f"attribute name longer than {ATTR_NAME_LIMIT} bytes", field=key[:40], reason="too_long"
            )
        if value is not None and _size(value) > ATTR_VALUE_LIMIT + 2:
            raise ItemError(
                f"attribute {key!r} is longer than {ATTR_VALUE_LIMIT} bytes", field=key, reason="too_long"
            )


def _email_value(value: Any, key: str = "email") -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ItemError(f"'{key}' must be a string, got {_type_name(value)}", field=key, reason="type")
    if len(value.encode()) > ID_LIMIT:
        raise ItemError(f"'{key}' is longer than {ID_LIMIT} bytes", field=key, reason="too_long")
    return value.strip() or None


# --------------------------------------------------------------------------- Track v1


def track_v1_identify(identifier: str, body: Mapping[str, Any]) -> IdentifyOp:
    """``PUT /api/v1/customers/{identifier}``: flat attributes."""
    who = path_identifier(identifier)
    try:
        attributes = dict(body)
        email = _email_value(attributes.pop("email", None))
        new_id = _str_field(attributes, "id", required=False, limit=ID_LIMIT, allow_number=True)
        attributes.pop("id", None)
        anonymous_id = _str_field(
            attributes, "anonymous_id", required=False, limit=ID_LIMIT, allow_number=True
        )
        attributes.pop("anonymous_id", None)
        attributes.pop("cio_id", None)
        stamp = _unix_seconds(attributes.pop("_timestamp", None), "_timestamp")
        update_only = attributes.pop("_update", False) is True
        _check_attributes(attributes)
    except ItemError as exc:
        raise DecodeError(exc.message, field=exc.field, reason=exc.reason) from None
    return IdentifyOp(
        who=who,
        email=email,
        new_id=new_id,
        anonymous_id=anonymous_id,
        attributes=attributes,
        attr_timestamp_ms=stamp,
        update_only=update_only,
    )


def track_v1_event(identifier: str | None, body: Mapping[str, Any]) -> EventOp:
    """``POST /api/v1/customers/{identifier}/events`` or anonymous ``POST /api/v1/events``."""
    who = path_identifier(identifier) if identifier is not None else None
    try:
        kind = body.get("type")
        kind = kind if kind in ("page", "screen") else "event"
        name = _str_field(body, "name", required=True, limit=_name_limit(kind), allow_number=True)
        assert name is not None
        event_id = _str_field(body, "id", required=False, limit=ID_LIMIT, allow_number=True)
        timestamp = _unix_seconds(body.get("timestamp"), "timestamp")
        data = _object_field(body, "data")
        if _size(data) > TRACK_EVENT_DATA_LIMIT:
            raise ItemError(
                f"event data is larger than {TRACK_EVENT_DATA_LIMIT} bytes", field="data", reason="too_large"
            )
        anonymous_id = None
        if who is None:
            anonymous_id = _str_field(body, "anonymous_id", required=False, limit=ID_LIMIT, allow_number=True)
    except ItemError as exc:
        raise DecodeError(exc.message, field=exc.field, reason=exc.reason) from None
    return EventOp(
        event_id=event_id,
        name=name.strip(),
        type=kind,
        who=who,
        anonymous_id=anonymous_id,
        timestamp_ms=timestamp,
        properties=data,
        api="track-v1",
    )


def _name_limit(kind: str) -> int:
    """The byte limit on the name of an ``event`` | ``page`` | ``screen`` call."""
    return NAME_LIMIT if kind == "event" else PAGE_NAME_LIMIT


def _one_identifier(obj: Any, key: str, *, allow_phone: bool = False) -> Ident:
    if not isinstance(obj, dict):
        raise ItemError(f"'{key}' must be an object with one of id, email, cio_id", field=key, reason="type")
    if "anonymous_id" in obj:
        raise ItemError(
            f"'{key}.anonymous_id' cannot identify a person here: '{key}' needs exactly one of id, "
            "email or cio_id",
            field=f"{key}.anonymous_id",
            reason="identifiers",
        )
    kinds = ("id", "email", "cio_id", "phone") if allow_phone else ("id", "email", "cio_id")
    given = [(k, obj[k]) for k in kinds if obj.get(k) not in (None, "")]
    if len(given) != 1 or len(obj) != 1:
        raise ItemError(f"'{key}' needs exactly one of id, email or cio_id", field=key, reason="identifiers")
    kind, value = given[0]
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ItemError(f"'{key}.{kind}' must be a string", field=f"{key}.{kind}", reason="type")
    if len(value.encode()) > ID_LIMIT:
        raise ItemError(
            f"'{key}.{kind}' is longer than {ID_LIMIT} bytes", field=f"{key}.{kind}", reason="too_long"
        )
    if kind == "phone":
        kind = "id"  # phone identifiers are modelled as ids (the emulator has no phone channel)
    return (kind, value)


def track_v1_merge(body: Mapping[str, Any]) -> MergeOp:
    """``POST /api/v1/merge_customers``: each side exactly one of id/email/cio_id."""
    try:
        primary = _one_identifier(body.get("primary"), "primary")
        secondary = _one_identifier(body.get("secondary"), "secondary")
    except ItemError as exc:
        raise DecodeError(exc.message, field=exc.field, reason=exc.reason) from None
    return MergeOp(primary=primary, secondary=secondary)


# --------------------------------------------------------------------------- Track v2


def track_v2_item(item: Any) -> Op:
    """One v2 ``/entity`` payload or ``/batch`` item."""
    if not isinstance(item, dict):
        raise ItemError(f"an operation must be an object, got {_type_name(item)}", reason="type")
    kind = item.get("type")
    action = item.get("action")
    if kind not in ("person", "object", "delivery"):
        raise ItemError("'type' must be one of person, object, delivery", field="type", reason="type")
    if not isinstance(action, str) or not action:
        raise ItemError("'action' is required", field="action", reason="required")
    if kind == "delivery":
        if action != "event":
            raise ItemError(f"unknown delivery action {action!r}", field="action", reason="action")
        return NoOp("delivery_event")
    if kind == "object":
        if action not in (
            "identify",
            "identify_anonymous",
            "delete",
            "add_relationships",
            "delete_relationships",
        ):
            raise ItemError(f"unknown object action {action!r}", field="action", reason="action")
        if not isinstance(item.get("identifiers"), dict):
            raise ItemError("'identifiers' is required", field="identifiers", reason="required")
        return NoOp(f"object_{action}")
    if action == "merge":
        return MergeOp(
            primary=_one_identifier(item.get("primary"), "primary"),
            secondary=_one_identifier(item.get("secondary"), "secondary"),
        )
    anonymous_id = _v2_anonymous_identifier(item.get("identifiers"), action)
    if anonymous_id is not None:
        return _v2_event(item, action, None, anonymous_id)
    who = _one_identifier(item.get("identifiers"), "identifiers", allow_phone=True)
    if action == "identify":
        attributes = dict(_object_field(item, "attributes"))
        email = _email_value(attributes.pop("email", None), "attributes.email")
        if who[0] == "email" and email is None:
            email = who[1]
        anonymous_id = _str_field(
            attributes, "anonymous_id", required=False, limit=ID_LIMIT, allow_number=True
        )
        attributes.pop("anonymous_id", None)
        new_id = _str_field(attributes, "id", required=False, limit=ID_LIMIT, allow_number=True)
        attributes.pop("id", None)
        attributes.pop("cio_id", None)
        stamp = _unix_seconds(attributes.pop("_timestamp", None), "_timestamp")
        update_only = attributes.pop("_update", False) is True
        if item.get("timestamp") is not None and stamp is None:
            stamp = _unix_seconds(item.get("timestamp"), "timestamp")
        _check_attributes(attributes)
        return IdentifyOp(
            who=who,
            email=email,
            new_id=new_id,
            anonymous_id=anonymous_id,
            attributes=attributes,
            attr_timestamp_ms=stamp,
            update_only=update_only,
        )
    if action in V2_ANONYMOUS_ACTIONS:
        return _v2_event(item, action, who, None)
    if action == "delete":
        return DeleteOp(who=who)
    if action in ("suppress", "unsuppress"):
        return SuppressOp(who=who, suppress=action == "suppress")
    if action in ("add_relationships", "delete_relationships", "add_device", "delete_device"):
        return NoOp(action)
    raise ItemError(f"unknown person action {action!r}", field="action", reason="action")


# Person actions that may address an anonymous person as ``identifiers: {"anonymous_id": a}``.
# Segment's Customer.io (Actions) destination sends anonymous events this way; Customer.io's own
# v2 schema lists only id/email/phone/cio_id (customerio.md §3; §13 lists it as unconfirmed). We
# accept it so a Segment-style sender works, and store the event exactly like Track v1's
# anonymous ``POST /api/v1/events``: pending under its anonymous id until an identify carrying
# that id (v2: ``attributes.anonymous_id``) merges it. Every other action needs a real person.
V2_ANONYMOUS_ACTIONS = ("event", "page", "screen")


def _v2_anonymous_identifier(identifiers: Any, action: str) -> str | None:
    """The anonymous id when ``identifiers`` is ``{"anonymous_id": a}`` (None when it names no
    anonymous id); an anonymous id where it cannot apply is an item error."""
    if not isinstance(identifiers, dict) or "anonymous_id" not in identifiers:
        return None
    if action not in V2_ANONYMOUS_ACTIONS:
        hint = (
            " (put the anonymous id in attributes.anonymous_id to merge it)" if action == "identify" else ""
        )
        raise ItemError(
            f"'identifiers.anonymous_id' only addresses event, page and screen actions; "
            f"{action!r} needs exactly one of id, email or cio_id{hint}",
            field="identifiers.anonymous_id",
            reason="identifiers",
        )
    if len(identifiers) != 1:
        raise ItemError(
            "'identifiers' needs exactly one of id, email, cio_id or anonymous_id",
            field="identifiers",
            reason="identifiers",
        )
    try:
        value = _str_field(identifiers, "anonymous_id", required=True, limit=ID_LIMIT, allow_number=True)
    except ItemError as exc:
        raise ItemError(
            exc.message.replace("'anonymous_id'", "'identifiers.anonymous_id'"),
            field="identifiers.anonymous_id",
            reason=exc.reason,
        ) from None
    assert value is not None
    return value


def _v2_event(item: Mapping[str, Any], action: str, who: Ident | None, anonymous_id: str | None) -> EventOp:
    """A v2 ``event``/``page``/``screen`` operation for a person (``who``) or an anonymous id."""
    name = _str_field(item, "name", required=True, limit=_name_limit(action), allow_number=True)
    assert name is not None
    attributes = _object_field(item, "attributes")
    if _size(attributes) > TRACK_EVENT_DATA_LIMIT:
        raise ItemError(
            f"event attributes larger than {TRACK_EVENT_DATA_LIMIT} bytes",
            field="attributes",
            reason="too_large",
        )
    return EventOp(
        event_id=_str_field(item, "id", required=False, limit=ID_LIMIT, allow_number=True),
        name=name.strip(),
        type=action,
        who=who,
        anonymous_id=anonymous_id,
        timestamp_ms=_unix_seconds(item.get("timestamp"), "timestamp"),
        properties=attributes,
        api="track-v2",
    )


def track_v2_batch(body: Mapping[str, Any], *, raw_size: int) -> Decoded:
    """``POST /api/v2/batch``: per-item validation (the caller answers 207 when some failed)."""
    if raw_size > BATCH_LIMIT:
        raise DecodeError(f"batch request larger than {BATCH_LIMIT} bytes", reason="too_large", field="batch")
    items = body.get("batch")
    if not isinstance(items, list):
        raise DecodeError("'batch' must be an array of operations", field="batch", reason="required")
    out = Decoded(items=len(items))
    for index, item in enumerate(items):
        try:
            if raw_size > ITEM_LIMIT and _size(item) > ITEM_LIMIT:
                raise ItemError(f"operation larger than {ITEM_LIMIT} bytes", reason="too_large")
            out.add(index, track_v2_item(item))
        except ItemError as exc:
            out.errors.append((index, exc))
    return out


# --------------------------------------------------------------------------- Pipelines


PIPELINES_TYPES = ("identify", "track", "page", "screen", "group", "alias")
BROWSER_TYPES = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias"}


def _pipelines_id(msg: Mapping[str, Any], key: str) -> str | None:
    return _str_field(msg, key, required=False, limit=ID_LIMIT, allow_number=True)


def pipelines_message(msg: Any, kind: str | None, *, shared_context: Mapping[str, Any] | None = None) -> Op:
    """One Segment-spec message (a call body or a batch item; ``kind`` None = read ``type``)."""
    if not isinstance(msg, dict):
        raise ItemError(f"a message must be an object, got {_type_name(msg)}", reason="type")
    kind = kind or msg.get("type")
    if kind not in PIPELINES_TYPES:
        raise ItemError(f"'type' must be one of {', '.join(PIPELINES_TYPES)}", field="type", reason="type")
    user_id = _pipelines_id(msg, "userId")
    anonymous_id = _pipelines_id(msg, "anonymousId")
    message_id = _str_field(msg, "messageId", required=False, limit=MESSAGE_ID_LIMIT, allow_number=True)
    timestamp = iso_ms(msg.get("timestamp"), "timestamp")
    if kind == "alias":
        if _pipelines_id(msg, "previousId") is None or user_id is None:
            raise ItemError("alias needs 'userId' and 'previousId'", field="userId", reason="required")
        return NoOp("alias")
    if kind == "identify":
        traits = dict(_object_field(msg, "traits"))
        email = _email_value(traits.pop("email", None), "traits.email")
        if user_id is None and email is None:
            if anonymous_id is None:
                raise ItemError(
                    "identify needs 'userId' (or traits.email)", field="userId", reason="required"
                )
            # an anonymous identify only sets traits on an anonymous profile: nothing to model
            return NoOp("anonymous_identify")
        who: Ident | None
        if user_id is None:
            who = None
        elif "@" in user_id:
            who = ("email", user_id)
            email = email or user_id
        else:
            who = ("id", user_id)
        traits.pop("id", None)
        traits.pop("userId", None)
        created = traits.pop("createdAt", None)
        if created is not None and "created_at" not in traits:
            try:
                created_ms = iso_ms(created, "traits.createdAt")
            except ItemError:
                created_ms = None
            traits["created_at"] = created_ms // 1000 if created_ms is not None else created
        _check_attributes(traits)
        return IdentifyOp(
            who=who,
            email=email,
            new_id=None,
            anonymous_id=anonymous_id,
            attributes=traits,
            attr_timestamp_ms=timestamp,
            message_id=message_id,
        )
    if user_id is None and anonymous_id is None:
        raise ItemError("a message needs 'userId' or 'anonymousId'", field="userId", reason="required")
    if kind == "group":
        if _pipelines_id(msg, "groupId") is None:
            raise ItemError("group needs 'groupId'", field="groupId", reason="required")
        return NoOp("group")
    properties = _object_field(msg, "properties")
    if kind == "track":
        name = _str_field(msg, "event", required=True, limit=NAME_LIMIT, allow_number=True)
        assert name is not None
        event_type = "event"
    else:
        raw_name = msg.get("name")
        if raw_name is not None and not isinstance(raw_name, str):
            raise ItemError("'name' must be a string", field="name", reason="type")
        name = (
            raw_name
            or _text(properties.get("name"))
            or _text(properties.get("title"))
            or _text(properties.get("url"))
            or ""
        )
        if len(name.encode()) > PAGE_NAME_LIMIT:
            raise ItemError(f"'name' is longer than {PAGE_NAME_LIMIT} bytes", field="name", reason="too_long")
        event_type = kind
    who_event: Ident | None = None
    if user_id is not None:
        who_event = ("email", user_id) if "@" in user_id else ("id", user_id)
    return EventOp(
        event_id=message_id,
        name=name.strip(),
        type=event_type,
        who=who_event,
        anonymous_id=anonymous_id,
        timestamp_ms=timestamp,
        properties=properties,
        api="pipelines",
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def pipelines_semantic(op: Op) -> Op:
    """Customer.io semantic events sent to ``/track`` (``User Deleted``, ``User Suppressed``, ...)."""
    if isinstance(op, EventOp) and op.type == "event" and op.who is not None:
        if op.name == "User Deleted":
            return DeleteOp(who=op.who)
        if op.name == "User Suppressed":
            return SuppressOp(who=op.who, suppress=True)
        if op.name == "User Unsuppressed":
            return SuppressOp(who=op.who, suppress=False)
    return op


def pipelines_body(body: Mapping[str, Any], kind: str | None, *, raw_size: int) -> Decoded:
    """A Pipelines call (``kind`` given) or batch (``kind`` None) → ops + dropped items."""
    out = Decoded()
    if kind is not None:
        out.items = 1
        if raw_size > ITEM_LIMIT:
            out.errors.append((0, ItemError(f"call larger than {ITEM_LIMIT} bytes", reason="too_large")))
            out.oversize += 1
            return out
        try:
            out.add(0, pipelines_semantic(pipelines_message(body, kind)))
        except ItemError as exc:
            out.errors.append((0, exc))
        return out
    if raw_size > BATCH_LIMIT:
        out.errors.append((0, ItemError(f"batch larger than {BATCH_LIMIT} bytes", reason="too_large")))
        out.oversize += 1
        return out
    items = body.get("batch")
    if not isinstance(items, list):
        out.errors.append(
            (0, ItemError("'batch' must be an array of messages", field="batch", reason="required"))
        )
        return out
    out.items = len(items)
    shared = body.get("context") if isinstance(body.get("context"), dict) else None
    for index, item in enumerate(items):
        try:
            # an item can only exceed the per-item limit when the whole body does
            if raw_size > ITEM_LIMIT and _size(item) > ITEM_LIMIT:
                out.oversize += 1
                raise ItemError(f"message larger than {ITEM_LIMIT} bytes", reason="too_large")
            out.add(index, pipelines_semantic(pipelines_message(item, None, shared_context=shared)))
        except ItemError as exc:
            out.errors.append((index, exc))
    return out
