"""The official Customer.io Python clients, unchanged, against the emulator.

- ``customerio`` (Track): it always builds ``https://{host}:{port}`` URLs, so the emulator serves
  TLS here with a throwaway self-signed certificate for 127.0.0.1, trusted through
  ``REQUESTS_CA_BUNDLE`` (environment, not client code). Only ``host``/``port`` differ from a
  production setup.
- ``customerio.analytics`` (Pipelines, package ``customerio-cdp-analytics``): only ``host``.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest

from generator.emulator import EmulatorHandle, start_emulator
from generator.scenario.model import Campaign


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def _export(emu: EmulatorHandle, cafile: str | None = None) -> list[dict]:
    import ssl

    context = ssl.create_default_context(cafile=cafile) if cafile else None
    with urllib.request.urlopen(emu.url + "/_shopsim/export", timeout=10, context=context) as response:
        return [orjson.loads(line) for line in response.read().splitlines() if line]


@pytest.fixture()
def tls_emulator(certificate: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorHandle]:
    cert, key = certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    campaigns = {"cart": Campaign.model_validate({"trigger": {"event": "Added to Cart"}, "delay": "0s"})}
    with start_emulator(scenario=None, clock="wall", campaigns=campaigns, certfile=cert, keyfile=key) as emu:
        yield emu


def test_customerio_track_client_works_unchanged(
    tls_emulator: EmulatorHandle, certificate: tuple[str, str]
) -> None:
    from customerio import CustomerIO, CustomerIOException

    emu = tls_emulator
    assert emu.url.startswith("https://127.0.0.1:")
    cio = CustomerIO(
        site_id="shopsim-site", api_key="shopsim-track-key", host="127.0.0.1", port=emu.port, retries=0
    )
    now = int(datetime.now(UTC).timestamp())
    cio.track_anonymous(
        "anon-1", "Product Viewed", {"sku": "s1"}, id="01TRACKANON00000000000000A", timestamp=now
    )
    cio.identify("u1", email="u1@example.com", first_name="Ann", anonymous_id="anon-1")
    cio.track("u1", "Added to Cart", {"cart_total": 30}, id="01TRACKCART00000000000000A", timestamp=now)
    cio.pageview("u1", "https://shop.example.com/p/1", title="P1")
    cio.identify("u2", email="u2@example.com")
    cio.track("u2", "Viewed", id="01TRACKU2000000000000000AA")
    cio.merge_customers("id", "u1", "id", "u2")
    cio.batch(
        [
            {
                "type": "person",
                "identifiers": {"id": "u3"},
                "action": "identify",
                "attributes": {"email": "u3@example.com"},
            }
        ]
    )
    cio.suppress("u3")
    cio.delete("u3")
    bad = CustomerIO(site_id="shopsim-site", api_key="wrong", host="127.0.0.1", port=emu.port, retries=0)
    with pytest.raises(CustomerIOException, match="401"):
        bad.track("u1", "x")
    cio.close()
    bad.close()

    records = _export(emu, certificate[0])
    profiles = {p["id"]: p for p in records if p["kind"] == "profile"}
    assert set(profiles) == {"u1"}
    assert profiles["u1"]["anonymous_ids"] == ["anon-1"]
    events = {e["event_id"]: e for e in records if e["kind"] == "event"}
    assert events["01TRACKANON00000000000000A"]["outcome"] == "merged_anonymous"
    assert events["01TRACKCART00000000000000A"]["timestamp_ms"] == now * 1000
    assert events["01TRACKU2000000000000000AA"]["outcome"] == "merged_secondary"
    pages = [e for e in records if e["kind"] == "event" and e["type"] == "page"]
    assert pages[0]["name"] == "https://shop.example.com/p/1" and pages[0]["properties"] == {"title": "P1"}
    journeys = [j for j in records if j["kind"] == "journey"]
    assert [(j["trigger_event_id"], j["outcome"]) for j in journeys] == [
        ("01TRACKCART00000000000000A", "sent")
    ]


@pytest.mark.parametrize("mode", ["sync", "queued_gzip"])
def test_cdp_analytics_client_works_unchanged(mode: str) -> None:
    from customerio.analytics import Client

    with start_emulator(scenario=None, clock="wall") as emu:
        if mode == "sync":
            client = Client("shopsim-pipelines-key", host=emu.url, sync_mode=True, max_retries=0)
        else:
            client = Client(
                "shopsim-pipelines-key", host=emu.url, gzip=True, upload_interval=0.05, max_retries=0
            )
        client.page(anonymous_id="a1", name="Home", properties={"url": "https://shop.example.com/"})
        client.track(
            anonymous_id="a1", event="Product Viewed", properties={"sku": "s1"}, message_id=f"{mode}-1"
        )
        client.identify("u1", {"email": "u1@example.com"}, anonymous_id="a1")
        client.track("u1", "Added to Cart", {"cart_total": 30}, message_id=f"{mode}-2")
        client.screen("u1", name="Cart")
        client.group("u1", "acme", {"name": "Acme"})
        client.alias("a1", "u1")
        if mode != "sync":
            client.shutdown()
        records = _export(emu)
    profile = next(r for r in records if r["kind"] == "profile")
    assert (profile["id"], profile["email"], profile["anonymous_ids"]) == ("u1", "u1@example.com", ["a1"])
    events = [r for r in records if r["kind"] == "event"]
    assert [(e["type"], e["name"], e["person"]) for e in events] == [
        ("page", "Home", "u1"),
        ("event", "Product Viewed", "u1"),
        ("event", "Added to Cart", "u1"),
        ("screen", "Cart", "u1"),
    ]
    assert {e["event_id"] for e in events} >= {f"{mode}-1", f"{mode}-2"}
    assert events[1]["outcome"] == "merged_anonymous"


def test_cdp_analytics_wrong_key_is_acknowledged_but_dropped() -> None:
    """Pipelines is permissive: a wrong key still gets 200 (the SDK cannot tell), nothing is stored."""
    from customerio.analytics.request import post

    with start_emulator(scenario=None) as emu:
        response = post("wrong-key", host=emu.url, batch=[{"type": "track", "userId": "u", "event": "x"}])
        assert response.status_code == 200
        assert [r for r in _export(emu) if r["kind"] == "event"] == []


def test_region_endpoint_answers_for_credential_checks() -> None:
    import base64

    with start_emulator(scenario=None) as emu:
        request = urllib.request.Request(
            emu.url + "/api/v1/accounts/region",
            headers={
                "Authorization": "Basic " + base64.b64encode(b"shopsim-site:shopsim-track-key").decode()
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert orjson.loads(response.read()) == {"url": emu.url, "region": "us", "environment_id": 1}
