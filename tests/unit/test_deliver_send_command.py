"""`shopsim send` helpers: credentials per target, the 72-hour backfill warning."""

from __future__ import annotations

import io

import pytest

from generator.commands.send import STALE_AFTER_MS, _StaleCounter, resolve_credentials
from generator.credentials import LOCAL_DEFAULTS
from generator.errors import DeliveryError
from tests.support.deliveries import T0, make_plan

CIO_NAMES = ("CIO_SITE_ID", "CIO_API_KEY", "CIO_PIPELINES_KEY", "CIO_APP_KEY", "CIO_WEBHOOK_SECRET")


@pytest.fixture
def no_cio_env(monkeypatch):
    for name in CIO_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_loopback_falls_back_to_local_defaults(no_cio_env):
    assert resolve_credentials("track-v1", "http://127.0.0.1:8085", file=None) == LOCAL_DEFAULTS


def test_loopback_prefers_the_environment(no_cio_env, monkeypatch):
    monkeypatch.setenv("CIO_PIPELINES_KEY", "from-env")
    creds = resolve_credentials("pipelines", "http://localhost:1", file=None)
    assert creds.pipelines_key == "from-env" and creds.site_id == LOCAL_DEFAULTS.site_id


@pytest.mark.parametrize(
    ("api", "missing"),
    [
        ("track-v1", "CIO_SITE_ID and CIO_API_KEY"),
        ("track-v2", "CIO_SITE_ID"),
        ("pipelines", "CIO_PIPELINES_KEY"),
        ("browser", "CIO_PIPELINES_KEY"),
    ],
)
def test_remote_targets_never_get_local_defaults(no_cio_env, api, missing):
    with pytest.raises(DeliveryError, match=missing):
        resolve_credentials(api, "https://collector.example.com", file=None)


def test_remote_target_with_env_credentials(no_cio_env, monkeypatch):
    monkeypatch.setenv("CIO_SITE_ID", "s")
    monkeypatch.setenv("CIO_API_KEY", "k")
    creds = resolve_credentials("track-v2", "https://track-eu.customer.io", file=None)
    assert (creds.site_id, creds.api_key, creds.pipelines_key) == ("s", "k", None)


def test_remote_target_with_a_credentials_file(no_cio_env, tmp_path):
    path = tmp_path / "creds"
    path.write_text("CIO_PIPELINES_KEY=pk\n")
    assert resolve_credentials("pipelines", "https://cdp.customer.io", file=path).pipelines_key == "pk"


def test_stale_counter_warns_once_and_counts_only_old_sent_events():
    plan = make_plan(6, step_ms=3600_000, dropped=[0])  # hourly events starting at T0
    now = T0 + STALE_AFTER_MS + 3 * 3600_000  # events 0..2 are older than 72 h at "now"
    err = io.StringIO()
    counter = _StaleCounter(warn=err, now_ms=lambda: now)
    assert list(counter.wrap(plan)) == plan  # passes the plan through untouched
    assert counter.count == 2  # events 1 and 2 (0 is dropped, never sent)
    assert err.getvalue().count("warning") == 1
    assert "72 h" in err.getvalue() and "never trigger campaigns" in err.getvalue()


def test_stale_counter_is_silent_for_recent_events():
    err = io.StringIO()
    counter = _StaleCounter(warn=err, now_ms=lambda: T0 + 3600_000)
    list(counter.wrap(make_plan(5)))
    assert counter.count == 0 and err.getvalue() == ""
