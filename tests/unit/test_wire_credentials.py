"""Credentials: environment, file, defaults; secrets never shown."""

from __future__ import annotations

import pytest

from generator.credentials import LOCAL_DEFAULTS, Credentials, load_credentials
from generator.errors import DeliveryError


def test_repr_hides_every_secret():
    creds = Credentials(
        site_id="site-1", api_key="sekret-a", pipelines_key="sekret-b", webhook_secret="sekret-c"
    )
    for text in (repr(creds), str(creds), f"{creds}"):
        assert "sekret" not in text and "site-1" not in text
        assert "api_key=<set>" in text and "app_key=None" in text


def test_environment_then_defaults():
    creds = load_credentials(
        env={"CIO_SITE_ID": "s", "CIO_API_KEY": "k", "CIO_APP_KEY": ""}, defaults=LOCAL_DEFAULTS
    )
    assert (creds.site_id, creds.api_key) == ("s", "k")
    assert creds.pipelines_key == LOCAL_DEFAULTS.pipelines_key
    assert creds.app_key == LOCAL_DEFAULTS.app_key  # empty counts as unset


def test_no_defaults_means_none():
    assert load_credentials(env={}) == Credentials()


def test_file_wins_over_environment(tmp_path):
    path = tmp_path / "cio.env"
    path.write_text(
        "# Customer.io keys\n\nexport CIO_SITE_ID=file-site\nCIO_API_KEY = 'file key'\n"
        'CIO_PIPELINES_KEY="pk"\nOTHER_TOOL=ignored\n'
    )
    creds = load_credentials(env={"CIO_SITE_ID": "env-site", "CIO_APP_KEY": "app"}, file=path)
    assert creds == Credentials(site_id="file-site", api_key="file key", pipelines_key="pk", app_key="app")


def test_malformed_file_names_the_line_not_the_value(tmp_path):
    path = tmp_path / "cio.env"
    path.write_text("CIO_SITE_ID=s\nthis-is-a-secret-without-equals\n")
    with pytest.raises(DeliveryError) as info:
        load_credentials(env={}, file=path)
    message = str(info.value)
    assert f"{path}:2" in message and "KEY=VALUE" in message
    assert "this-is-a-secret" not in message


def test_missing_file(tmp_path):
    with pytest.raises(DeliveryError, match="cannot read credentials file"):
        load_credentials(env={}, file=tmp_path / "nope.env")
