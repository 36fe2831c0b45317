"""NDJSON lines for files (``shopsim generate``): one event or one delivery per line.

Formats:

- ``pipelines``: one Segment-spec message per line, exactly the body of a Pipelines single
  call (:func:`generator.wire.pipelines.message`): ``type``, ``event``/``name``, ``userId``,
  ``anonymousId``, ``messageId``, ``timestamp`` (ISO-8601, ms, ``Z``), ``properties``/``traits``,
  ``context``.
- ``track-v1``: one Track API v1 request per line, ``{"method", "path", "body"}`` with the
  path relative to the host (``/api/v1/...``) and the JSON body as an object
  (:func:`generator.wire.track_v1.request_parts`).

Delivered lines (``--delivered``) carry the fault record under a namespaced key that real
endpoints ignore: ``context.shopsim`` in a Pipelines message, a top-level ``shopsim`` next to
``method``/``path``/``body`` in a Track line::

    "shopsim": {"truth_id": <id of the truth event>, "shopper": <k>, "arrival_ms": <epoch ms>,
                "faults": [<tag>, ...], "dropped": <bool>}

A dropped delivery (``"dropped": true``) never reaches the target; it is listed so the file
accounts for the whole plan. Strip ``context.shopsim`` and skip dropped lines before replaying
such a file against a real workspace. Every line ends with ``\\n``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from generator.errors import ShopsimError
from generator.events import Delivery, Event
from generator.wire.base import dumps_line
from generator.wire.pipelines import message
from generator.wire.track_v1 import request_parts

FORMATS = ("pipelines", "track-v1")


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ShopsimError(f"unknown NDJSON format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def ndjson_line(event: Event, fmt: str) -> bytes:
    """One truth event as an NDJSON line (with the trailing newline) in ``fmt``."""
    if fmt == "pipelines":
        return dumps_line(message(event))
    _check(fmt)
    return _track_v1_line(event)


def _track_v1_line(event: Event) -> bytes:
    method, path, body = request_parts(event)
    return dumps_line({"method": method, "path": path, "body": body})


def _pipelines_line(event: Event) -> bytes:
    return dumps_line(message(event))


def line_renderer(fmt: str) -> Callable[[Event], bytes]:
    """``ndjson_line`` with the format resolved once (for loops over many events)."""
    _check(fmt)
    return _pipelines_line if fmt == "pipelines" else _track_v1_line


def shopsim_record(delivery: Delivery) -> dict[str, Any]:
    """The ``shopsim`` fault record of a delivery (see the module docstring)."""
    return {
        "truth_id": delivery.truth_id,
        "shopper": delivery.event.shopper,
        "arrival_ms": delivery.arrival_ms,
        "faults": list(delivery.faults),
        "dropped": delivery.dropped,
    }


def delivery_line(delivery: Delivery, fmt: str) -> bytes:
    """One delivery as an NDJSON line in ``fmt``, with its ``shopsim`` fault record."""
    _check(fmt)
    event = delivery.event
    if fmt == "pipelines":
        msg = message(event)
        msg["context"] = {**event.context, "shopsim": shopsim_record(delivery)}
        return dumps_line(msg)
    method, path, body = request_parts(event)
    return dumps_line({"method": method, "path": path, "body": body, "shopsim": shopsim_record(delivery)})
