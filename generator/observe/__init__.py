"""Observation readers: one record type (:class:`~generator.events.Observation`) from three sources.

- :mod:`generator.observe.emulator` — the embedded emulator's bulk export (complete: every
  ingested event, profile, entry, exit, send and skip);
- :mod:`generator.observe.app_api` — Customer.io's App API (messages; activities per person),
  rate-limited and paged; works against the emulator's App-API-shaped endpoints too;
- :mod:`generator.observe.webhooks` — a receiver of signed reporting webhooks.
"""

from __future__ import annotations

from generator.observe.app_api import AppApiReader
from generator.observe.emulator import parse_export, read_export
from generator.observe.webhooks import SignatureError, WebhookReceiver, sign, verify_signature

__all__ = [
    "AppApiReader",
    "SignatureError",
    "WebhookReceiver",
    "parse_export",
    "read_export",
    "sign",
    "verify_signature",
]
