"""Wire encoders: canonical events → HTTP requests of one ingest API (encode only, no I/O).

=============  ==========================================  =================  ====================
api            endpoints                                   timestamps         auth
=============  ==========================================  =================  ====================
``track-v1``   PUT /api/v1/customers/{id}, POST .../events  Unix seconds       Basic site_id:api_key
               POST /api/v1/events (anonymous)
``track-v2``   POST /api/v2/entity, /api/v2/batch           Unix seconds       Basic site_id:api_key
``pipelines``  POST /v1/identify|track|page|screen, /batch  ISO-8601 ms ``Z``  Basic key: (empty pw)
``browser``    POST /v1/i|t|p|s, /v1/b (text/plain)         ISO-8601 ms ``Z``  ``writeKey`` in body
=============  ==========================================  =================  ====================

Each API lives in its own module; :func:`encoder_for` picks one by name, :func:`ndjson_line`
renders the file formats of ``shopsim generate``.
"""

from __future__ import annotations

from generator.credentials import Credentials
from generator.errors import DeliveryError
from generator.wire.base import (
    BATCH_LIMIT_BYTES,
    ITEM_LIMIT_BYTES,
    TRACK_EVENT_DATA_LIMIT_BYTES,
    Encoder,
    WireRequest,
    iso_ms,
)
from generator.wire.browser import BrowserEncoder
from generator.wire.ndjson import FORMATS, delivery_line, ndjson_line
from generator.wire.pipelines import PipelinesEncoder
from generator.wire.track_v1 import TrackV1Encoder, merge_customers
from generator.wire.track_v2 import TrackV2Encoder

APIS = ("track-v1", "track-v2", "pipelines", "browser")


def encoder_for(api: str, *, creds: Credentials | None = None) -> Encoder:
    """The encoder for ``api``; ``creds`` only matters for ``browser`` (its ``writeKey`` is in the body).

    Raises :class:`~generator.errors.ShopsimError` (exit 2) for an unknown api name.
    """
    if api == "track-v1":
        return TrackV1Encoder()
    if api == "track-v2":
        return TrackV2Encoder()
    if api == "pipelines":
        return PipelinesEncoder()
    if api == "browser":
        return BrowserEncoder(creds.pipelines_key if creds else None)
    raise DeliveryError(f"unknown API {api!r}; choose one of: {', '.join(APIS)}")


__all__ = [
    "APIS",
    "BATCH_LIMIT_BYTES",
    "FORMATS",
    "ITEM_LIMIT_BYTES",
    "TRACK_EVENT_DATA_LIMIT_BYTES",
    "BrowserEncoder",
    "Encoder",
    "PipelinesEncoder",
    "TrackV1Encoder",
    "TrackV2Encoder",
    "WireRequest",
    "delivery_line",
    "encoder_for",
    "iso_ms",
    "merge_customers",
    "ndjson_line",
]
