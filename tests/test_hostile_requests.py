"""Hostile and unusual requests against the server core, fed as bytes and over sockets."""

from __future__ import annotations

import asyncio

import pytest
from corpus.hostile import CASES
from corpus.unusual import VALID
from test_server import FakeTransport, parse_responses

from daw_popular import responses
from daw_popular.routing import Route, Router
from daw_popular.server import HttpProtocol, HttpServer, Limits, Request, Result

GLUED = b"GET /hello/smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


class Recorder:
    """A router whose route handler and dispatch both record what reached them."""

    def __init__(self) -> None:
        self.dispatched: list[Request] = []
        self.handled: list[tuple[Request, str]] = []
        self.router = Router([Route("/hello/{name}", self.hello)])

    def hello(self, request: Request, name: str) -> Result:
        self.handled.append((request, name))
        return responses.response(200, f"hello {name}".encode(), head_only=request.method == "HEAD")

    def __call__(self, request: Request) -> Result:
        self.dispatched.append(request)
        return self.router(request)


def feed(raw: bytes, limits: Limits | None = None) -> tuple[Recorder, FakeTransport]:
    recorder = Recorder()
    protocol = HttpProtocol(HttpServer(recorder, limits))
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(raw)
    return recorder, transport


def test_the_corpus_is_big_and_its_names_unique() -> None:
    assert len(CASES) >= 150
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("raw", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_hostile_request_is_refused_once_and_closes(raw: bytes, status: int) -> None:
    recorder, transport = feed(raw + GLUED)
    got = parse_responses(bytes(transport.written))
    assert [s for s, _, _ in got] == [status]
    assert got[0][1]["connection"] == "close"
    assert transport.closed
    assert recorder.handled == []  # no route handler, so no upstream call
    if status == 405:
        assert got[0][1]["allow"] == "GET, HEAD"
        assert [r.path for r in recorder.dispatched] == [b"/hello/a"]
    else:
        assert recorder.dispatched == []


@pytest.mark.parametrize(("raw", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_hostile_request_after_a_good_one_keeps_the_first_answer(
    raw: bytes, status: int
) -> None:
    """Mid-pipeline: the earlier request is answered, then exactly one refusal."""
    good = b"GET /hello/first HTTP/1.1\r\nHost: t\r\n\r\n"
    recorder, transport = feed(good + raw + GLUED)
    got = parse_responses(bytes(transport.written))
    assert [s for s, _, _ in got] == [200, status]
    assert got[0][2] == b"hello first" and "connection" not in got[0][1]
    assert got[1][1]["connection"] == "close" and transport.closed
    assert [name for _, name in recorder.handled] == ["first"]


async def test_trailer_fields_are_never_merged_into_the_header_section() -> None:
    """RFC 9110, 6.5.1: an If-None-Match in a trailer must not make a 304 (or anything)."""
    chunked = b"GET /hello/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    recorder, transport = feed(chunked + b"3\r\nabc\r\n0\r\nIf-None-Match: *\r\nX-T: 1\r\n\r\n")
    assert [s for s, _, _ in parse_responses(bytes(transport.written))] == [200]
    ((request, _),) = recorder.handled
    assert request.if_none_match is None
    assert [name.lower() for name, _ in request.headers] == [b"host", b"transfer-encoding"]
    assert not transport.closed


async def test_an_endless_trailer_line_is_refused_like_an_endless_header_line() -> None:
    """httptools buffers an unfinished trailer field: its bytes are bounded (431)."""
    limits = Limits()
    recorder = Recorder()
    protocol = HttpProtocol(HttpServer(recorder, limits))
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: "
    )
    piece = b"v" * 16384
    bound = limits.max_head_bytes + limits.max_body_bytes
    for _ in range(bound // len(piece) + 2):
        if transport.closed:
            break
        protocol.data_received(piece)
    got = parse_responses(bytes(transport.written))
    assert [s for s, _, _ in got] == [431] and transport.closed
    assert recorder.handled == []


async def test_hostile_requests_over_real_sockets_close_the_socket() -> None:
    """Every case once over TCP: one answer, then EOF from the server, no more."""
    recorder = Recorder()
    server = HttpServer(recorder)
    await server.start("127.0.0.1", 0)
    failures = []

    async def one(name: str, raw: bytes, status: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(raw + GLUED)
        try:
            data = await asyncio.wait_for(reader.read(-1), 5)
        except (TimeoutError, ConnectionError) as exc:
            failures.append((name, repr(exc)))
            return
        finally:
            writer.close()
        got = [s for s, _, _ in parse_responses(data)]
        if got != [status]:
            failures.append((name, got))

    for start in range(0, len(CASES), 20):
        await asyncio.gather(*(one(*case) for case in CASES[start : start + 20]))
    await server.shutdown(1.0)
    assert failures == []
    assert recorder.handled == []
    assert server.stats.rejected >= len([c for c in CASES if c[2] != 405])


@pytest.mark.parametrize(("raw", "body"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
async def test_unusual_but_valid_request_is_answered(raw: bytes, body: bytes) -> None:
    recorder, transport = feed(raw)
    heads = frozenset({0}) if raw[:4] == b"HEAD" else frozenset()
    got = parse_responses(bytes(transport.written), heads=heads)
    assert [(s, b) for s, _, b in got] == [(200, body)]
    assert len(recorder.handled) == 1


async def test_an_endless_header_line_is_cut_off_at_the_head_bound() -> None:
    """httptools buffers an unfinished header line; the core bounds it (431, close)."""
    limits = Limits(max_request_line=1000, max_head_bytes=4000, max_header_bytes=100_000)
    recorder = Recorder()
    protocol = HttpProtocol(HttpServer(recorder, limits))
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(b"GET /hello/a HTTP/1.1\r\nHost: t\r\nX: ")
    for _ in range(49):
        protocol.data_received(b"a" * 100)
    assert transport.written == b""  # 4,900 bytes: under the bound
    for _ in range(10):
        protocol.data_received(b"a" * 100)
    ((status, headers, _),) = parse_responses(bytes(transport.written))
    assert (status, headers["connection"], transport.closed) == (431, "close", True)
    assert recorder.dispatched == []


async def test_a_tab_split_from_transfer_encoding_is_still_refused() -> None:
    raw = b"GET /hello/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"
    for cut in range(1, len(raw)):
        recorder = Recorder()
        protocol = HttpProtocol(HttpServer(recorder))
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(raw[:cut])
        protocol.data_received(raw[cut:] + GLUED)
        assert [s for s, _, _ in parse_responses(bytes(transport.written))] == [400], cut


async def test_expect_100_continue_is_answered_before_the_body() -> None:
    recorder = Recorder()
    protocol = HttpProtocol(HttpServer(recorder))
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    )
    assert bytes(transport.written) == b"HTTP/1.1 100 Continue\r\n\r\n"
    protocol.data_received(b"hello")
    final = bytes(transport.written)[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    assert parse_responses(final)[0][2] == b"hello a"


async def test_upgrade_is_ignored_and_the_answer_says_close() -> None:
    _, transport = feed(
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        + GLUED
    )
    ((status, headers, body),) = parse_responses(bytes(transport.written))
    assert (status, body, headers["connection"]) == (200, b"hello a", "close")
    assert transport.closed
