"""Shared fixtures and guards.

gevent is shopsim's one concurrency model (Locust's). The emulator, the HTTP sender and the
Locust users are all cooperative, so the test process is monkey-patched *first*, before any
other import, exactly like a locustfile: blocking clients (urllib, requests, the official
Customer.io clients) then yield to in-process gevent servers instead of deadlocking.
"""

from gevent import monkey

monkey.patch_all()

import random  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Importing rich draws from the global `random` once (rich.style); do it at collection time so
# the guard below never blames a test for a first import of rich inside its body.
import rich.console  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _no_global_rng_use() -> Iterator[None]:
    """Fail a test whose code under test draws from the global ``random`` or ``np.random`` state.

    shopsim makes RNGs only in ``generator/simulate/seeding.py``; a global draw would make
    output depend on test order.
    """
    py_state = random.getstate()
    np_state = np.random.get_state(legacy=False)
    yield
    assert random.getstate() == py_state, "global `random` state changed: use an RNG from seeding.py"
    new_np = np.random.get_state(legacy=False)
    assert (
        new_np["state"]["pos"] == np_state["state"]["pos"]
        and (new_np["state"]["key"] == np_state["state"]["key"]).all()
    ), "global `np.random` state changed: use an RNG from seeding.py"
