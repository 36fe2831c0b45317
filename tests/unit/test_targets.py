"""Target safety rules: decided on the URL text, never by connecting."""

from __future__ import annotations

import pytest

from generator.errors import TargetError
from generator.targets import (
    DEFAULT_TARGET,
    check_target,
    is_loopback,
    is_production_host,
    target_is_loopback,
)


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "app.localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost."],
)
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["example.com", "10.0.0.1", "0.0.0.0", "128.0.0.1", "::2", "localhost.example.com"]
)
def test_non_loopback_hosts(host):
    assert not is_loopback(host)


@pytest.mark.parametrize(
    "host",
    ["track.customer.io", "track-eu.customer.io", "cdp.customer.io", "cdp-eu.customer.io", "api.customer.io",
     "api-eu.customer.io", "customer.io", "TRACK.Customer.IO", "beta-api.customer.io"],
)  # fmt: skip
def test_production_hosts(host):
    assert is_production_host(host)


@pytest.mark.parametrize("host", ["customer.io.example.com", "mycustomer.io", "127.0.0.1", "customerio.com"])
def test_not_production_hosts(host):
    assert not is_production_host(host)


def test_none_means_the_loopback_default():
    assert check_target(None, allow_production=False) == DEFAULT_TARGET
    assert target_is_loopback(DEFAULT_TARGET)


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("http://127.0.0.1:8085/", "http://127.0.0.1:8085"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://[::1]:9000/ingest/", "http://[::1]:9000/ingest"),
        ("https://collector.example.com", "https://collector.example.com"),
        ("HTTP://127.0.0.1:1", "http://127.0.0.1:1"),
    ],
)
def test_explicit_targets_are_allowed_and_normalized(url, normalized):
    assert check_target(url, allow_production=False) == normalized


@pytest.mark.parametrize(
    "url", ["https://track.customer.io", "https://cdp-eu.customer.io/v1", "https://api.customer.io"]
)
def test_production_needs_allow_production(url):
    with pytest.raises(TargetError, match="--allow-production"):
        check_target(url, allow_production=False)
    assert check_target(url, allow_production=True).startswith("https://")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("127.0.0.1:8085", "add the scheme"),
        ("ftp://127.0.0.1", "http:// or https://"),
        ("http://", "names no host"),
        ("http://127.0.0.1:99999", "not a valid URL"),
        ("http://127.0.0.1/x?a=1", "query string"),
        ("https://cdp.customer.io%2e", "not a host name"),
        ("http://exa mple.com", "not a host name"),
    ],
)
def test_bad_targets(url, message):
    with pytest.raises(TargetError, match=message):
        check_target(url, allow_production=True)


def test_credentials_in_the_url_are_refused_and_not_echoed():
    with pytest.raises(TargetError) as info:
        check_target("https://site:s3cr3t-key@track.customer.io", allow_production=True)
    assert "s3cr3t" not in str(info.value)
    assert "CIO_SITE_ID" in str(info.value)


def test_port_error_does_not_echo_credentials():
    with pytest.raises(TargetError) as info:
        check_target("http://user:hunter2@127.0.0.1:notaport", allow_production=False)
    assert "hunter2" not in str(info.value)
