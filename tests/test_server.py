"""Server core: feed bytes to the protocol, read the bytes it writes."""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import warnings
from typing import Any

import pytest
from support import free_port

from daw_popular import responses
from daw_popular.routing import Route, Router
from daw_popular.server import HttpProtocol, HttpServer, Later, Limits, Request, Result


class FakeTransport:
    """Collects what the protocol writes; records close and pause calls."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading_paused = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return None


def hello(request: Request, name: str) -> Result:
    return responses.response(
        200,
        f"hello {name}".encode(),
        content_type=responses.TEXT,
        head_only=request.method == "HEAD",
    )


async def slow(request: Request, name: str) -> bytes:
    await asyncio.sleep(float(name))
    return responses.response(200, f"slept {name}".encode())


def make(limits: Limits | None = None) -> tuple[HttpServer, HttpProtocol, FakeTransport]:
    router = Router([Route("/hello/{name}", hello), Route("/slow/{name}", slow)])
    server = HttpServer(router, limits)
    protocol = HttpProtocol(server)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return server, protocol, transport


def parse_responses(
    data: bytes, heads: frozenset[int] = frozenset()
) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a byte stream into (status, headers, body) using Content-Length.

    `heads` are the indexes of answers to HEAD requests, which have no body.
    """
    out: list[tuple[int, dict[str, str], bytes]] = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if len(out) in heads else int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:length]))
        data = rest[length:]
    return out


GET = b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n"


async def test_keep_alive_answers_requests_one_after_another() -> None:
    _, protocol, transport = make()
    protocol.data_received(GET % b"/hello/a")
    protocol.data_received(GET % b"/hello/b")
    got = parse_responses(bytes(transport.written))
    assert [(s, b) for s, _, b in got] == [(200, b"hello a"), (200, b"hello b")]
    assert not transport.closed


async def test_pipelined_responses_keep_request_order() -> None:
    """A slow first answer holds back the fast ones queued behind it."""
    _, protocol, transport = make()
    protocol.data_received((GET % b"/slow/0.05") + (GET % b"/hello/x") + (GET % b"/slow/0.01"))
    assert transport.written == b""
    await asyncio.sleep(0.1)
    got = parse_responses(bytes(transport.written))
    assert [b for _, _, b in got] == [b"slept 0.05", b"hello x", b"slept 0.01"]


async def test_request_split_at_every_byte_is_answered_once() -> None:
    data = (GET % b"/hello/%C3%A9t%C3%A9") + (GET % b"/hello/b")
    for cut in range(1, len(data)):
        _, protocol, transport = make()
        protocol.data_received(data[:cut])
        protocol.data_received(data[cut:])
        got = parse_responses(bytes(transport.written))
        assert [b for _, _, b in got] == ["hello été".encode(), b"hello b"], cut


@pytest.mark.parametrize("protocol_name", [b"RTSP/1.0", b"ICE/1.0"])
async def test_a_foreign_request_line_is_refused_wherever_it_is_split(
    protocol_name: bytes,
) -> None:
    """llhttp reads RTSP and ICE request lines as HTTP/1.0: refused at every split too."""
    data = b"GET /hello/a " + protocol_name + b"\r\nHost: t\r\n\r\n"
    for cut in range(len(data) + 1):
        _, protocol, transport = make()
        protocol.data_received(data[:cut])
        if not transport.closed:
            protocol.data_received(data[cut:])
        got = parse_responses(bytes(transport.written))
        assert [status for status, _, _ in got] == [400], cut
        assert transport.closed, cut


async def test_head_has_headers_of_get_and_no_body() -> None:
    _, protocol, transport = make()
    protocol.data_received(b"HEAD /hello/a HTTP/1.1\r\nHost: t\r\n\r\n" + (GET % b"/hello/z"))
    first, second = parse_responses(bytes(transport.written), heads=frozenset({0}))
    assert first[0] == 200 and first[1]["content-length"] == "7" and first[2] == b""
    # The next response starts right after the head: no body bytes were sent for HEAD.
    assert second[2] == b"hello z"


async def test_unknown_path_is_404_and_wrong_method_is_405_with_allow_then_close() -> None:
    _, protocol, transport = make()
    protocol.data_received(GET % b"/nope")
    protocol.data_received(GET % b"/hello/")
    protocol.data_received(b"DELETE /hello/a HTTP/1.1\r\nHost: t\r\n\r\n" + GET % b"/hello/b")
    (s1, _, _), (s2, _, _), (s3, h3, _) = parse_responses(bytes(transport.written))
    assert (s1, s2, s3) == (404, 404, 405)
    assert h3["allow"] == "GET, HEAD" and h3["connection"] == "close" and transport.closed


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        (b"Amiya.Hansen", "hello Amiya.Hansen"),
        (b"%41miya", "hello Amiya"),
        (b"O'Hara", "hello O'Hara"),
        (b"%E2%9C%BF", "hello ✿"),
        (b"a%2Fb", "hello a/b"),
    ],
)
async def test_path_parameter_is_percent_decoded_as_utf8(segment: bytes, expected: str) -> None:
    _, protocol, transport = make()
    protocol.data_received(GET % (b"/hello/" + segment))
    ((status, _, body),) = parse_responses(bytes(transport.written))
    assert (status, body.decode()) == (200, expected)


@pytest.mark.parametrize("segment", [b"%", b"%4", b"%zz", b"%C3", b"%FF", b"%ED%A0%80"])
async def test_invalid_percent_encoding_or_utf8_is_400(segment: bytes) -> None:
    _, protocol, transport = make()
    protocol.data_received(GET % (b"/hello/" + segment))
    protocol.data_received(GET % b"/hello/after")  # never read: the line is closed
    ((status, headers, body),) = parse_responses(bytes(transport.written))
    assert status == 400 and body.startswith(b"Bad Request")
    assert headers["connection"] == "close" and transport.closed  # every 400 closes


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"\x00", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # TLS ClientHello
        (b"get /hello/a HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET /hello/a HTTP/1.2\r\nHost: t\r\n\r\n", 400),
        (b"GET /hello/a HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET /hello/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /hello/a HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET /hello/a HTTP/1.1\nHost: t\n\n", 400),  # bare LF
        (b"GET /hello/a HTTP/1.1\r\nHost: t\r\n x\r\n\r\n", 400),  # obs-fold
        (
            b"GET /hello/a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET /hello/a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X: a\r\n" * 100 + b"\r\n", 431),
    ],
)
async def test_malformed_request_gets_one_answer_and_close(raw: bytes, status: int) -> None:
    _, protocol, transport = make()
    protocol.data_received(raw + (GET % b"/hello/smuggled"))
    got = parse_responses(bytes(transport.written))
    assert [s for s, _, _ in got] == [status]
    assert got[0][1]["connection"] == "close"
    assert transport.closed


async def test_error_after_good_pipelined_request_comes_after_its_answer() -> None:
    _, protocol, transport = make()
    protocol.data_received((GET % b"/slow/0.02") + b"BAD\r\n\r\n")
    await asyncio.sleep(0.05)
    got = parse_responses(bytes(transport.written))
    assert [s for s, _, _ in got] == [200, 400]
    assert transport.closed


async def test_get_with_body_is_read_exactly_and_never_parsed_as_a_request() -> None:
    _, protocol, transport = make()
    body = GET % b"/hello/smuggled"
    protocol.data_received(
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        + (GET % b"/hello/b")
    )
    got = parse_responses(bytes(transport.written))
    assert [b for _, _, b in got] == [b"hello a", b"hello b"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET http://a@b/hello/a HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET /hello/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ],
)
async def test_a_refusal_keeps_its_status_while_another_exception_is_handled(
    raw: bytes, status: int
) -> None:
    """httptools hands a callback's error on as its own error's `__context__`, which is
    whatever exception is being handled when there is one: the refusal must not turn
    into a 500 then."""
    _, protocol, transport = make()
    try:
        raise ConnectionResetError("an unrelated failure, still being handled")
    except ConnectionResetError:
        protocol.data_received(raw)
    got = parse_responses(bytes(transport.written))
    assert [s for s, _, _ in got] == [status]
    assert transport.closed


async def test_body_over_the_limit_is_413_and_close() -> None:
    _, protocol, transport = make(Limits(max_body_bytes=10))
    protocol.data_received(
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n" + b"x" * 11
    )
    ((status, _, _),) = parse_responses(bytes(transport.written))
    assert status == 413 and transport.closed


async def test_connection_close_is_honoured_and_announced() -> None:
    _, protocol, transport = make()
    protocol.data_received(
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + (GET % b"/hello/b")
    )
    ((status, headers, _),) = parse_responses(bytes(transport.written))
    assert status == 200 and headers["connection"] == "close" and transport.closed


async def test_http10_keep_alive_is_announced() -> None:
    _, protocol, transport = make()
    protocol.data_received(b"GET /hello/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    ((_, headers, _),) = parse_responses(bytes(transport.written))
    assert headers["connection"] == "keep-alive" and not transport.closed
    _, protocol, transport = make()
    protocol.data_received(b"GET /hello/a HTTP/1.0\r\n\r\n")
    assert transport.closed


async def test_absolute_form_target_is_accepted() -> None:
    _, protocol, transport = make()
    protocol.data_received(b"GET http://test/hello/abs HTTP/1.1\r\nHost: test\r\n\r\n")
    ((status, _, body),) = parse_responses(bytes(transport.written))
    assert (status, body) == (200, b"hello abs")


async def test_max_requests_per_connection_closes_after_the_last() -> None:
    _, protocol, transport = make(Limits(max_requests_per_connection=2))
    protocol.data_received((GET % b"/hello/1") + (GET % b"/hello/2") + (GET % b"/hello/3"))
    got = parse_responses(bytes(transport.written))
    assert [b for _, _, b in got] == [b"hello 1", b"hello 2"]
    assert got[1][1]["connection"] == "close" and transport.closed


async def test_reading_pauses_while_the_write_buffer_is_full() -> None:
    _, protocol, transport = make()
    protocol.pause_writing()
    assert transport.reading_paused
    protocol.resume_writing()
    assert not transport.reading_paused


async def test_deadlines_idle_close_partial_request_408_slow_reader_abort() -> None:
    limits = Limits(keepalive_timeout=1.0, request_timeout=2.0, send_timeout=3.0)
    server, idle, idle_t = make(limits)
    _, partial, partial_t = make(limits)
    _, reader, reader_t = make(limits)
    for conn in (idle, partial, reader):
        server.connections.add(conn)
    start = server.now
    partial.data_received(b"GET /hello/a HTTP/1.1\r\nHo")
    reader.data_received(GET % b"/hello/a")
    reader.pause_writing()
    for conn in (idle, partial, reader):
        conn.expire(start + 0.9)
    assert not (idle_t.closed or partial_t.closed or reader_t.closed)
    idle.expire(start + 1.1)
    assert idle_t.closed and idle_t.written == b""
    partial.expire(start + 1.5)  # an absolute deadline: not the idle one
    assert not partial_t.closed
    partial.expire(start + 2.1)
    ((status, _, _),) = parse_responses(bytes(partial_t.written))
    assert status == 408 and partial_t.closed
    reader.expire(start + 3.1)
    assert reader_t.aborted


async def test_a_request_in_flight_is_not_closed_by_the_keepalive_timeout() -> None:
    server, protocol, transport = make(Limits(keepalive_timeout=0.01))
    protocol.data_received(GET % b"/slow/0.05")
    protocol.expire(server.now + 1.0)
    assert not transport.closed
    await asyncio.sleep(0.08)
    assert parse_responses(bytes(transport.written))[0][2] == b"slept 0.05"


async def test_a_half_close_with_an_unfinished_request_closes_after_what_is_owed() -> None:
    """The unfinished request can never complete: no 408 ten seconds later."""
    server, protocol, transport = make()
    protocol.data_received(GET % b"/slow/0.02" + b"GET /hello/a HTTP/1.1\r\nHost: t\r\n")
    assert protocol.eof_received() is True  # keep the transport open for the answer
    await asyncio.sleep(0.06)
    got = parse_responses(bytes(transport.written))
    assert [(status, body) for status, _, body in got] == [(200, b"slept 0.02")]
    assert got[0][1]["connection"] == "close" and transport.closed
    protocol.expire(server.now + 60.0)
    assert len(parse_responses(bytes(transport.written))) == 1


async def test_disconnect_cancels_pending_handler_tasks() -> None:
    _, protocol, transport = make()
    protocol.data_received(GET % b"/slow/5")
    protocol.connection_lost(None)
    await asyncio.sleep(0)
    assert transport.written == b""


async def test_a_handler_cancelled_before_it_started_is_closed_not_left_unawaited() -> None:
    _, protocol, transport = make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        protocol.data_received(GET % b"/slow/5")
        protocol.connection_lost(None)  # the same loop turn: its task never ran
        await asyncio.sleep(0)
        gc.collect()
    assert transport.written == b""
    assert [w for w in caught if "never awaited" in str(w.message)] == []


async def test_an_awaited_answer_is_written_in_the_turn_its_handler_finishes() -> None:
    """Not one loop turn later from a done callback, behind whatever that turn brings."""
    answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def waits(request: Request) -> bytes:
        return await answer

    server = HttpServer(waits)
    protocol = HttpProtocol(server)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(GET % b"/")
    await asyncio.sleep(0)  # the handler's task starts and waits
    answer.set_result(responses.text(200, "done"))
    await asyncio.sleep(0)  # one turn: the task resumes, finishes and writes
    assert parse_responses(bytes(transport.written))[0][2] == b"done"


async def test_a_plain_future_answer_needs_no_task() -> None:
    """A plain future as the answer: no task each, just a done callback."""
    answers: list[asyncio.Future[bytes]] = []

    def later(request: Request) -> asyncio.Future[bytes]:
        answers.append(asyncio.get_running_loop().create_future())
        return answers[-1]

    server = HttpServer(later)
    protocol = HttpProtocol(server)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    tasks = len(asyncio.all_tasks())
    protocol.data_received((GET % b"/a") + (GET % b"/b"))
    assert len(asyncio.all_tasks()) == tasks
    answers[1].set_exception(RuntimeError("boom"))
    await asyncio.sleep(0)
    assert transport.written == b""  # the second waits for the first, in order
    answers[0].set_result(responses.text(200, "first"))
    await asyncio.sleep(0)
    got = parse_responses(bytes(transport.written))
    assert [(status, body) for status, _, body in got] == [
        (200, b"first"),
        (500, b"Internal Server Error"),
    ]


def later_server() -> tuple[list[Later], HttpProtocol, FakeTransport]:
    """A connection whose handler answers every request with a `Later`, kept in a list."""
    owed: list[Later] = []

    def handler(request: Request) -> Later:
        owed.append(Later())
        return owed[-1]

    protocol = HttpProtocol(HttpServer(handler))
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return owed, protocol, transport


async def test_a_later_answer_is_written_within_the_call_that_gives_it() -> None:
    """No task, and no loop turn between the answer and the write."""
    owed, protocol, transport = later_server()
    tasks = len(asyncio.all_tasks())
    protocol.data_received((GET % b"/a") + (GET % b"/b"))
    assert len(asyncio.all_tasks()) == tasks
    owed[1].give(responses.text(200, "second"))
    assert transport.written == b""  # the second waits for the first, in order
    owed[0].give(responses.text(200, "first"))
    got = parse_responses(bytes(transport.written))
    assert [body for _, _, body in got] == [b"first", b"second"]
    owed[0].give(responses.text(200, "again"))  # only the first outcome counts
    assert len(parse_responses(bytes(transport.written))) == 2


async def test_a_later_answer_given_before_the_handler_returns_is_written() -> None:
    def handler(request: Request) -> Later:
        later = Later()
        later.give(responses.text(200, "at once"))
        return later

    protocol = HttpProtocol(HttpServer(handler))
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received((GET % b"/a") + (GET % b"/b"))
    assert [body for _, _, body in parse_responses(bytes(transport.written))] == [b"at once"] * 2


@pytest.mark.parametrize(
    ("error", "status"),
    [(RuntimeError("boom"), 500), (asyncio.CancelledError(), 503)],
)
async def test_a_later_that_fails_is_answered_as_a_failed_handler(
    error: BaseException, status: int
) -> None:
    owed, protocol, transport = later_server()
    protocol.data_received(GET % b"/a")
    owed[0].fail(error)
    ((got, headers, _),) = parse_responses(bytes(transport.written))
    assert got == status and headers["connection"] == "close" and transport.closed


def test_a_later_cancelled_delivers_nothing_wherever_it_is_sent() -> None:
    later, outcomes = Later(), list[bytes | BaseException]()
    later.cancel()
    later.give(b"x")
    later.deliver_to(outcomes.append)
    later.fail(RuntimeError("after"))
    assert outcomes == []


async def test_a_later_answer_after_the_client_left_is_dropped() -> None:
    owed, protocol, transport = later_server()
    protocol.data_received(GET % b"/a")
    protocol.connection_lost(None)
    owed[0].give(responses.text(200, "too late"))  # no write to a closed transport
    assert transport.written == b""


# Real sockets


async def start(limits: Limits | None = None) -> HttpServer:
    router = Router([Route("/hello/{name}", hello), Route("/slow/{name}", slow)])
    server = HttpServer(router, limits)
    await server.start("127.0.0.1", 0)
    return server


async def test_accepted_connections_send_without_delay() -> None:
    """Small answers go out at once (TCP_NODELAY): uvloop sets it on each transport it
    makes, so the server does not set it again; this guards that reliance."""
    server = await start()
    client = socket.create_connection(("127.0.0.1", server.port))
    try:
        for _ in range(3):  # the accept, then the transport's set-up
            await asyncio.sleep(0)
        (conn,) = server.connections
        sock = conn._transport.get_extra_info("socket")  # type: ignore[union-attr]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        client.close()
        await server.shutdown(1.0)


async def test_over_real_sockets_with_keep_alive_and_graceful_shutdown() -> None:
    server = await start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(GET % b"/hello/a")
    first = await reader.readuntil(b"hello a")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    writer.write(GET % b"/slow/0.2")
    await asyncio.sleep(0.05)
    shutdown = asyncio.create_task(server.shutdown(grace=2.0))
    rest = await reader.read()  # the in-flight answer arrives, then the close
    await shutdown
    assert rest.endswith(b"slept 0.2") and b"Connection: close" in rest
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)


async def test_connections_beyond_the_maximum_get_a_quick_503() -> None:
    server = await start(Limits(max_connections=2))
    conns = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    await asyncio.sleep(0.05)
    reader, _ = await asyncio.open_connection("127.0.0.1", server.port)
    refused = await reader.read()
    assert refused.startswith(b"HTTP/1.1 503") and b"Connection: close" in refused
    r0, w0 = conns[0]
    w0.write(GET % b"/hello/still")
    assert (await r0.readuntil(b"hello still")).startswith(b"HTTP/1.1 200")
    await server.shutdown(1.0)


async def test_idle_connection_is_closed_by_the_sweeper() -> None:
    server = await start(Limits(keepalive_timeout=0.2))
    reader, _ = await asyncio.open_connection("127.0.0.1", server.port)
    began = time.monotonic()
    assert await reader.read() == b""
    assert 0.1 < time.monotonic() - began < 1.0
    await server.shutdown(1.0)


def test_sigterm_stops_the_service_process_with_exit_code_0() -> None:
    """A real `daw-popular serve` process: SIGTERM while idle exits 0 promptly."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daw_popular", "serve", "--port", str(port)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


# The fast lane


class Lane:
    """A fast lane that answers one target and records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[bytes] = []

    def __call__(self, target: bytes) -> bytes | None:
        self.asked.append(target)
        if target == b"/hello/cached":
            return responses.response(200, b"from the lane")
        return None


def make_with_lane(limits: Limits | None = None) -> tuple[Lane, HttpProtocol, FakeTransport]:
    lane = Lane()
    router = Router([Route("/hello/{name}", hello), Route("/slow/{name}", slow)])
    server = HttpServer(router, limits, fast=lane)
    protocol = HttpProtocol(server)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return lane, protocol, transport


async def test_fast_lane_answers_a_plain_keep_alive_get_without_the_handler() -> None:
    lane, protocol, transport = make_with_lane()
    protocol.data_received((GET % b"/hello/cached") + (GET % b"/hello/other"))
    got = parse_responses(bytes(transport.written))
    assert [b for _, _, b in got] == [b"from the lane", b"hello other"]
    assert lane.asked == [b"/hello/cached", b"/hello/other"]
    assert not transport.closed


@pytest.mark.parametrize(
    "raw",
    [
        b"HEAD /hello/cached HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /hello/cached HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\n\r\n",
        b"GET /hello/cached HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"GET /hello/cached HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET /hello/cached HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
        b"POST /hello/cached HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    ],
)
async def test_fast_lane_leaves_everything_unusual_to_the_full_path(raw: bytes) -> None:
    """Conditional, HEAD, closing, HTTP/1.0, bodies, other methods: never asked."""
    lane, protocol, transport = make_with_lane()
    protocol.data_received(raw)
    assert lane.asked == []
    heads = frozenset({0}) if raw.startswith(b"HEAD") else frozenset()
    ((status, _, _),) = parse_responses(bytes(transport.written), heads=heads)
    assert status in (200, 405)


async def test_fast_lane_waits_its_turn_behind_a_pending_answer() -> None:
    lane, protocol, transport = make_with_lane()
    protocol.data_received((GET % b"/slow/0.02") + (GET % b"/hello/cached"))
    await asyncio.sleep(0.05)
    got = parse_responses(bytes(transport.written))
    assert [b for _, _, b in got] == [b"slept 0.02", b"hello cached"]
    assert lane.asked == [b"/slow/0.02"]  # the second arrived while the first was owed


async def test_fast_lane_leaves_the_last_request_of_a_connection_to_the_full_path() -> None:
    _, protocol, transport = make_with_lane(Limits(max_requests_per_connection=2))
    protocol.data_received((GET % b"/hello/cached") + (GET % b"/hello/cached"))
    got = parse_responses(bytes(transport.written))
    assert [b for _, _, b in got] == [b"from the lane", b"hello cached"]
    assert got[1][1]["connection"] == "close" and transport.closed


class CountingParser:
    """Wraps the protocol's httptools parser to count the reads it parses."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.fed: list[bytes] = []

    def feed_data(self, data: bytes) -> None:
        self.fed.append(data)
        self.parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parser, name)


def counting(protocol: HttpProtocol) -> CountingParser:
    spy = CountingParser(protocol._parser)
    protocol._parser = spy
    return spy


async def test_a_repeated_read_the_lane_answered_skips_the_parser() -> None:
    """Keep-alive clients repeat the same bytes: parsed once, then answered at once."""
    lane, protocol, transport = make_with_lane()
    spy = counting(protocol)
    request = GET % b"/hello/cached"
    for _ in range(3):
        protocol.data_received(request)
    got = parse_responses(bytes(transport.written))
    assert [b for _, _, b in got] == [b"from the lane"] * 3
    assert spy.fed == [request]
    assert lane.asked == [b"/hello/cached"] * 3  # the cache is asked every time


async def test_a_repeat_the_lane_declines_is_parsed_and_handled_in_full() -> None:
    lane, protocol, transport = make_with_lane()
    spy = counting(protocol)
    request = GET % b"/hello/cached"
    protocol.data_received(request)
    lane.__class__ = type("Declining", (Lane,), {"__call__": lambda self, t: None})
    protocol.data_received(request)
    got = parse_responses(bytes(transport.written))
    assert [b for _, _, b in got] == [b"from the lane", b"hello cached"]
    assert spy.fed == [request, request]


async def test_reads_with_more_than_one_request_or_a_partial_one_are_not_remembered() -> None:
    _, protocol, transport = make_with_lane()
    spy = counting(protocol)
    two = (GET % b"/hello/cached") * 2
    protocol.data_received(two)
    protocol.data_received(two)
    head = (GET % b"/hello/cached") + b"GET /hel"
    tail = (GET % b"/hello/cached")[len(b"GET /hel") :]
    protocol.data_received(head)  # ends inside a request
    protocol.data_received(tail)  # began inside one
    protocol.data_received(tail)  # not a request at all: refused, never remembered
    assert spy.fed == [two, two, head, tail, tail]
    statuses = [s for s, _, _ in parse_responses(bytes(transport.written))]
    assert statuses == [200] * 6 + [400] and transport.closed


async def test_a_repeat_is_parsed_again_while_an_answer_is_owed_or_the_server_closes() -> None:
    _, protocol, transport = make_with_lane()
    spy = counting(protocol)
    request = GET % b"/hello/cached"
    protocol.data_received(request)
    protocol.data_received(GET % b"/slow/0.01")
    protocol.data_received(request)  # behind a pending answer: the full path, in order
    await asyncio.sleep(0.03)
    protocol._server.closing = True
    protocol.data_received(request)  # closing: the full path, which says so
    got = parse_responses(bytes(transport.written))
    bodies = [b"from the lane", b"slept 0.01", b"hello cached", b"hello cached"]
    assert [b for _, _, b in got] == bodies
    assert got[-1][1]["connection"] == "close"
    assert spy.fed.count(request) == 3


async def test_a_large_request_is_never_remembered() -> None:
    """The repeat memo holds at most a few KiB per connection, whatever the client sends."""
    _, protocol, _ = make_with_lane()
    spy = counting(protocol)
    big = b"GET /hello/cached HTTP/1.1\r\nHost: t\r\n" + b"X-Pad: %s\r\n" % (b"p" * 5000) + b"\r\n"
    protocol.data_received(big)
    protocol.data_received(big)
    assert spy.fed == [big, big]


def _somaxconn() -> int:
    try:
        with open("/proc/sys/net/core/somaxconn") as file:
            return int(file.read())
    except OSError:
        return 128  # the traditional default


@pytest.mark.parametrize("burst", [50, 1500])
async def test_a_burst_of_new_connections_is_accepted_in_one_go(burst: int) -> None:
    """libuv accepts one connection per loop iteration; ours drains the backlog at once,
    and each transport is made in the accept's own call (an eager task).

    Under load an iteration takes milliseconds, so one at a time left the last of a
    burst of new clients waiting seconds (measured: 5 s for 1,000 at 15k req/s), and
    so did 512 at a time for a burst of 10,000 at 35k req/s. Among 10,000 busy
    connections an iteration can take a second, so each turn a new connection waits
    for before `connection_made` costs its first answer that much.
    """
    # A kernel caps the listen queue (net.core.somaxconn, 4096 on Linux since 5.4): a
    # burst larger than that would wait for the kernel, not for the server.
    burst = min(burst, _somaxconn())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * burst + 256  # both ends of each connection, and what the tests hold
    assert hard == resource.RLIM_INFINITY or hard >= needed, f"ulimit -Hn is {hard}"
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    server = await start()
    clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(burst)]
    try:
        for _ in range(2):  # the accept (and the transports), then `connection_made`
            await asyncio.sleep(0)
        assert len(server.connections) == burst
    finally:
        for client in clients:
            client.close()
        await server.shutdown(1.0)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
