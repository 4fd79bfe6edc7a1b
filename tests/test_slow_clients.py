"""Slow, greedy and vanishing clients against a real listening server, with short limits."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import time
from collections.abc import Callable

from test_hostile_requests import Recorder
from test_server import parse_responses

from daw_popular import responses
from daw_popular.routing import Route, Router
from daw_popular.server import HttpServer, Limits, Request, Result

GET = b"GET /hello/%s HTTP/1.1\r\nHost: t\r\n\r\n"
SHORT = Limits(keepalive_timeout=0.3, request_timeout=0.5, send_timeout=0.5)


async def serve(limits: Limits = SHORT, handler: object | None = None) -> HttpServer:
    server = HttpServer(handler or Recorder(), limits)  # type: ignore[arg-type]
    await server.start("127.0.0.1", 0)
    return server


async def settle(done: Callable[[], bool], seconds: float = 3.0) -> None:
    """Poll until `done()` or the time is up (the server gives no event for these)."""
    for _ in range(int(seconds / 0.05)):
        if done():
            return
        await asyncio.sleep(0.05)


async def read_all(reader: asyncio.StreamReader, seconds: float = 3.0) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(-1), seconds)
    except ConnectionResetError:
        return b""


async def test_silent_client_is_closed_quietly_after_the_keepalive_timeout() -> None:
    server = await serve()
    reader, _ = await asyncio.open_connection("127.0.0.1", server.port)
    began = time.monotonic()
    assert await read_all(reader) == b""
    assert 0.2 < time.monotonic() - began < 1.5
    await server.shutdown(1.0)


async def test_half_a_request_gets_408_at_the_absolute_deadline() -> None:
    server = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /hello/a HTTP/1.1\r\nHo")
    began = time.monotonic()
    ((status, headers, _),) = parse_responses(await read_all(reader))
    assert (status, headers["connection"]) == (408, "close")
    assert 0.4 < time.monotonic() - began < 1.5
    await server.shutdown(1.0)


async def test_a_trickling_client_cannot_extend_the_deadline() -> None:
    """One byte every 50 ms keeps arriving, yet the request deadline still fires."""
    server = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    began = time.monotonic()

    async def trickle() -> None:
        for byte in b"GET /hello/" + b"a" * 200:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    task = asyncio.create_task(trickle())
    data = await read_all(reader)
    task.cancel()
    assert parse_responses(data)[0][0] == 408
    assert time.monotonic() - began < 1.5
    await server.shutdown(1.0)


async def test_limits_after_a_keepalive_request_and_mid_pipeline() -> None:
    server = await serve(Limits(max_request_line=200, max_headers=8))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(GET % b"one")
    assert (await reader.readuntil(b"hello one")).startswith(b"HTTP/1.1 200")
    writer.write(GET % (b"x" * 300))
    ((status, headers, _),) = parse_responses(await read_all(reader))
    assert (status, headers["connection"]) == (414, "close")

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    many = b"GET /hello/b HTTP/1.1\r\nHost: t\r\n" + b"X: y\r\n" * 20 + b"\r\n"
    writer.write(GET % b"a" + many + GET % b"c")
    got = parse_responses(await read_all(reader))
    assert [(s, b) for s, _, b in got] == [(200, b"hello a"), (431, got[1][2])]
    await server.shutdown(1.0)


class BigAnswers(Recorder):
    """Answers of 16 KiB, so that kernel socket buffers cannot absorb them all."""

    def hello(self, request: Request, name: str) -> Result:
        self.handled.append((request, name))
        return responses.response(200, b"x" * 16384)


async def _pipeline_without_reading(limits: Limits, count: int) -> tuple[HttpServer, Recorder]:
    recorder = BigAnswers()
    server = await serve(limits, recorder)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    payload = b"".join(GET % str(i).encode() for i in range(count))
    await loop.sock_sendall(sock, payload)
    await settle(lambda: server.stats.accepted == 1)  # set up after the kernel's accept
    await settle(lambda: not server.connections)
    sock.close()
    await server.shutdown(1.0)
    return server, recorder


async def test_a_pipeliner_that_never_reads_is_dropped_after_the_send_timeout() -> None:
    """Writes pause (so reading pauses), and the send timeout drops the client."""
    limits = Limits(
        send_timeout=0.3,
        max_requests_per_connection=100_000,
        write_high_water=8192,
        write_low_water=2048,
        max_write_buffer=1 << 30,
    )
    server, recorder = await _pipeline_without_reading(limits, 5000)
    assert server.stats.timed_out == 1
    assert len(recorder.handled) < 5000  # reading stopped while writes were paused


async def test_a_pipeliner_that_never_reads_cannot_make_us_buffer_more() -> None:
    """Beyond `max_write_buffer` unsent bytes the connection reads no further request."""
    limits = Limits(
        send_timeout=0.5,
        max_requests_per_connection=100_000,
        write_high_water=8192,
        write_low_water=2048,
        max_write_buffer=65536,
    )
    server, recorder = await _pipeline_without_reading(limits, 5000)
    # Closing does not let it linger: the send timeout still aborts the flush.
    assert server.stats.timed_out == 1
    # What the kernel's buffers took plus the 64 KiB cap: a few hundred answers, not 5000.
    assert len(recorder.handled) < 1000


async def test_idle_keepalive_closes_but_an_inflight_request_is_not_cut() -> None:
    async def slow(request: Request, name: str) -> bytes:
        await asyncio.sleep(float(name))
        return responses.response(200, b"slept")

    server = await serve(handler=Router([Route("/slow/{name}", slow)]))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /slow/0.8 HTTP/1.1\r\nHost: t\r\n\r\n")  # longer than keep-alive
    assert (await reader.readuntil(b"slept")).startswith(b"HTTP/1.1 200")
    began = time.monotonic()
    assert await read_all(reader) == b""  # then idle: closed by the keep-alive timeout
    assert time.monotonic() - began < 1.0
    await server.shutdown(1.0)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_aborted_connections_leave_no_task_fd_or_connection() -> None:
    """Clients vanish (FIN or RST) at random points of a request; nothing is left."""

    async def slow(request: Request, name: str) -> bytes:
        await asyncio.sleep(0.2)
        return responses.response(200, b"late")

    def hello(request: Request, name: str) -> Result:
        return responses.response(200, b"hi")

    server = await serve(handler=Router([Route("/slow/{x}", slow), Route("/hello/{x}", hello)]))
    # One connection first: libuv opens its reserved descriptor (for EMFILE) once, lazily.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(GET % b"warm")
    await reader.readuntil(b"hi")
    writer.close()
    await settle(lambda: not server.connections)
    tasks_before = len(asyncio.all_tasks())
    fds_before = _fds()
    rng = random.Random(6)
    requests = [GET % b"a", b"GET /slow/x HTTP/1.1\r\nHost: t\r\n\r\n", b"BAD\r\n\r\n"]

    async def one() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        raw = b"".join(rng.choice(requests) for _ in range(3))
        writer.write(raw[: rng.randrange(len(raw) + 1)])
        await asyncio.sleep(rng.random() * 0.05)
        if rng.random() < 0.5:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    for _ in range(6):
        await asyncio.gather(*(one() for _ in range(50)))
    await settle(lambda: not server.connections and len(asyncio.all_tasks()) <= tasks_before)
    assert not server.connections
    assert len(asyncio.all_tasks()) == tasks_before
    assert _fds() <= fds_before
    await server.shutdown(1.0)
