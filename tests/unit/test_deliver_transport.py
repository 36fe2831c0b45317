"""The transport seam: FunctionTransport and the geventhttpclient keep-alive transport on loopback."""

from __future__ import annotations

import socket

import pytest

from generator.deliver.transport import FunctionTransport, GeventTransport, Request, Response, TransportError
from tests.support.faulty_server import Close, FaultyServer, Reset, Respond, scripted


def test_function_transport_records_and_answers():
    transport = FunctionTransport(lambda req: Response(201, {"x-seen": req.path}, req.body[::-1]))
    resp = transport.request("POST", "/v1/track", {"A": "1"}, b"abc")
    assert resp.status == 201 and resp.body == b"cba" and resp.header("X-Seen") == "/v1/track"
    assert transport.requests == [Request("POST", "/v1/track", {"A": "1"}, b"abc")]
    transport.close()
    assert transport.closed


def test_response_header_lookup_ignores_case():
    assert Response(200, {"Retry-After": "3"}).header("retry-after") == "3"
    assert Response(200, {"retry-after": "4"}).header("Retry-After") == "4"
    assert Response(200, {}).header("retry-after") is None


def test_function_transport_records_failed_attempts():
    def boom(_req):
        raise TransportError("reset")

    transport = FunctionTransport(boom)
    with pytest.raises(TransportError, match="reset"):
        transport.request("POST", "/", {}, b"")
    assert len(transport.requests) == 1


def test_gevent_transport_keeps_connections_alive_and_prefixes_paths():
    with FaultyServer() as server:
        transport = GeventTransport(server.url + "/ingest/", concurrency=1)
        for _ in range(5):
            resp = transport.request(
                "POST", "/v1/batch", {"Content-Type": "application/json"}, b'{"batch":[]}'
            )
            assert resp.status == 200 and resp.body == b"{}"
            assert resp.header("content-type") == "application/json"
        transport.close()
    assert server.connections == 1
    assert [r.path for r in server.received] == ["/ingest/v1/batch"] * 5
    assert server.received[0].body == b'{"batch":[]}'
    assert server.received[0].headers["content-type"] == "application/json"


def test_gevent_transport_returns_error_statuses_and_headers():
    policy = scripted(Respond(429, b'{"error":"slow down"}', {"Retry-After": "3"}), Respond(503, b""))
    with FaultyServer(policy) as server:
        transport = GeventTransport(server.url)
        first = transport.request("POST", "/x", {}, b"1")
        second = transport.request("POST", "/x", {}, b"2")
        third = transport.request("POST", "/x", {}, b"3")
        transport.close()
    assert (first.status, first.header("retry-after"), first.body) == (429, "3", b'{"error":"slow down"}')
    assert second.status == 503 and third.status == 200


@pytest.mark.parametrize("action", [Reset(), Close()])
def test_gevent_transport_raises_transport_error_when_no_answer(action):
    with FaultyServer(scripted(action)) as server:
        transport = GeventTransport(server.url)
        with pytest.raises(TransportError):
            transport.request("POST", "/x", {}, b"payload")
        # the pool recovers: the next request opens a new connection
        assert transport.request("POST", "/x", {}, b"again").status == 200
        transport.close()
    assert [r.action for r in server.received] == [type(action).__name__.lower(), "respond"]


def test_gevent_transport_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = GeventTransport(f"http://127.0.0.1:{port}", connection_timeout=2)
    with pytest.raises(TransportError) as info:
        transport.request("POST", "/x", {}, b"")
    assert info.value.kind in ("refused", "network")


def test_gevent_transport_timeout():
    with FaultyServer(scripted(Respond(200, delay=2.0))) as server:
        transport = GeventTransport(server.url, network_timeout=0.05)
        with pytest.raises(TransportError) as info:
            transport.request("POST", "/x", {}, b"")
        transport.close()
    assert info.value.kind == "timeout"


def test_gevent_transport_rejects_non_http_urls():
    with pytest.raises(ValueError, match="not an http"):
        GeventTransport("ftp://127.0.0.1/")
