"""The benchmark sink's request framing (pure: :func:`tests.support.fast_sink.frame`)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fast_sink import (
    BAD_REQUEST,
    HEADERS_TOO_LARGE,
    LENGTH_REQUIRED,
    MAX_BODY,
    MAX_HEADER,
    TOO_LARGE,
    frame,
)


def request(body: bytes, *, path: str = "/v1/track", extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def feed(chunks: list[bytes]) -> tuple[int, bytes | None, bool]:
    """Frame a stream arriving in ``chunks`` as the server loop does: (answered, error, closed)."""
    buf = bytearray()
    answered = 0
    for chunk in chunks:
        buf += chunk
        count, consumed, error, close, _need = frame(buf)
        answered += count
        del buf[:consumed]
        if error is not None or close:
            return answered, error, close
    return answered, None, False


def test_one_request_with_body() -> None:
    data = request(b'{"a":1}')
    assert frame(data) == (1, len(data), None, False, 0)


def test_pipelined_requests_are_all_framed() -> None:
    data = request(b"{}") + request(b'{"x":"y"}') + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    assert frame(data) == (3, len(data), None, False, 0)


def test_incomplete_body_says_how_much_it_needs() -> None:
    data = request(b"0123456789")
    answered, consumed, error, close, need = frame(data[:-4])
    assert (answered, consumed, error, close) == (0, 0, None, False)
    assert need == len(data)


def test_incomplete_header_block_waits() -> None:
    assert frame(b"POST /v1/track HTTP/1.1\r\nContent-Le") == (0, 0, None, False, 0)


def test_header_names_are_case_insensitive() -> None:
    data = b"POST / HTTP/1.1\r\ncOnTeNt-LeNgTh: 2\r\n\r\n{}"
    assert frame(data)[:2] == (1, len(data))


def test_empty_lines_before_a_request_are_skipped() -> None:
    data = b"\r\n\r\n" + request(b"{}")
    assert frame(data)[:3] == (1, len(data), None)


def test_connection_close_and_http10() -> None:
    assert frame(request(b"{}", extra="Connection: close\r\n"))[3] is True
    assert frame(b"GET / HTTP/1.0\r\n\r\n")[3] is True
    assert frame(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")[3] is False
    assert frame(request(b"{}", extra="Connection: keep-alive\r\n"))[3] is False


def test_close_stops_framing_what_follows() -> None:
    first = request(b"{}", extra="Connection: close\r\n")
    assert frame(first + request(b"{}")) == (1, len(first), None, True, 0)


def test_bad_requests_get_4xx_after_the_good_ones() -> None:
    good = request(b"{}")
    cases = {
        b"NONSENSE\r\n\r\n": BAD_REQUEST,
        b"POST / HTTP/2.0\r\n\r\n": BAD_REQUEST,
        b"POST  / HTTP/1.1\r\n\r\n": BAD_REQUEST,
        b"PO$T / HTTP/1.1\r\n\r\n": BAD_REQUEST,
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n": BAD_REQUEST,
        b"POST / HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n": BAD_REQUEST,
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx": BAD_REQUEST,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n": LENGTH_REQUIRED,
        f"POST / HTTP/1.1\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode(): TOO_LARGE,
        b"POST / HTTP/1.1\r\nX: " + b"a" * (MAX_HEADER + 1) + b"\r\n\r\n": HEADERS_TOO_LARGE,
        b"POST / HTTP/1.1\r\nX: " + b"a" * (MAX_HEADER + 1): HEADERS_TOO_LARGE,
    }
    for bad, answer in cases.items():
        assert frame(good + bad) == (1, len(good), answer, False, 0), bad[:40]
    for answer in (BAD_REQUEST, LENGTH_REQUIRED, TOO_LARGE, HEADERS_TOO_LARGE):
        assert answer.split(b" ", 2)[1].startswith(b"4")
        assert b"Connection: close" in answer


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_any_split_of_a_pipelined_stream_frames_every_request(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(request(body) for body in bodies)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    assert feed(chunks) == (len(bodies), None, False)


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=200))
def test_garbage_never_raises(garbage: bytes) -> None:
    answered, consumed, error, _close, need = frame(garbage)
    assert 0 <= consumed <= len(garbage) and need >= 0
    assert error is None or error.split(b" ", 2)[1].startswith(b"4")
    if error is None and not answered and garbage.find(b"\r\n\r\n") >= 0 and not garbage.startswith(b"\r\n"):
        assert need > 0  # a header block was accepted: it waits for its body
