"""The Locust user pool: ``ShopperUser`` takes due shoppers from the schedule and replays them.

Import this module only after ``locust`` (the locustfile does: ``import locust`` first, so
gevent patches the standard library before anything else is imported).

A ``ShopperUser`` is a worker of the pool, not a shopper: its one task takes the next due
shopper from the process's :class:`~generator.load.session.LoadSession` and replays it, then
takes the next. Each HTTP call is one Locust request:

- named by call type and event name (``track: Added to Cart``, ``page``, ``identify``,
  ``batch``), never by id, so the statistics table stays bounded;
- ``catch_response=True``: a ``200`` with an error body, a ``207`` with item errors, ``4xx`` and
  ``5xx`` are marked failed with the reason (:func:`~generator.load.outcome.classify`);
- ``context={"event_id": first id carried, "shopper": k, "events": n}`` for request listeners.

Users keep no cookie jar unless ``--keep-cookies`` is given: the Track and Pipelines APIs
authenticate every request by header and set no cookies, and offering a jar each request and
parsing each response into it cost 7-9% of a request's client CPU (the load generator's
own CPU is what limits how much load one core offers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gevent
from locust import FastHttpUser, constant, task
from locust.env import Environment

from generator.load.outcome import Verdict, classify
from generator.load.plugin import session_of
from generator.wire.base import WireRequest

__all__ = ["ShopperUser"]


class ShopperUser(FastHttpUser):
    """One worker of the shopper pool (``--users`` sizes the pool)."""

    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0
    # Retries are shopsim's (ledger attempts, backoff, 429/5xx only), never the client's.
    max_retries = 0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        options = environment.parsed_options
        if not (options is not None and getattr(options, "keep_cookies", False)):
            # geventhttpclient's user agent skips cookie handling when it has no jar.
            self.client.client.cookiejar = None

    @task
    def shopper(self) -> None:
        """Take the next due shopper (waits up to 0.5 s for one) and replay it."""
        session = session_of(self.environment)
        if session is None:  # the test is starting or the schedule failed to load
            gevent.sleep(0.2)
            return
        turn = session.take()
        if turn is not None:
            session.replay(turn, self.send)

    def send(
        self,
        request: WireRequest,
        name: str,
        context: Mapping[str, Any],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Verdict:
        """One HTTP attempt (``body``: what to send, see ``SendFn``), recorded in Locust's
        statistics and classified for the ledger."""
        # headers and context go to Locust as they are: it copies both into its own dicts.
        with self.client.request(
            request.method,
            request.path,
            name=name,
            data=body,  # type: ignore[arg-type]  # geventhttpclient sends bytes as is
            headers=headers,  # type: ignore[arg-type]
            catch_response=True,
            context=context,  # type: ignore[arg-type]
        ) as resp:
            status = resp.status_code or 0
            if status:
                verdict = classify(status, resp.content, len(request.event_ids))
            else:
                error = getattr(resp, "error", None)
                kind = type(error).__name__ if error is not None else ""
                verdict = classify(0, None, len(request.event_ids), error=kind)
            if verdict.ok:
                resp.success()
            else:
                resp.failure(verdict.message)
        return verdict
