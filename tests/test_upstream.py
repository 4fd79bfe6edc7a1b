"""Tests for the pooled upstream client, against small misbehaving servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from daw_popular import errors
from daw_popular.upstream import (
    ClientLimits,
    ClientStats,
    UpstreamClient,
    UpstreamResponse,
    _Connection,
    json_body,
    visible_path,
)


def ok(body: bytes, *, status: int = 200, headers: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), headers, body)


JSON_TYPE = b"Content-Type: application/json; charset=utf-8\r\n"


def chunked(*chunks: bytes) -> bytes:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + JSON_TYPE + b"\r\n"
    return head + framed + b"0\r\n\r\n"


class Peer:
    """One connection accepted by the test server."""

    def __init__(self, number: int, writer: asyncio.StreamWriter) -> None:
        self.number = number
        self.writer = writer
        self.served = 0  # requests answered before the current one
        self.client_closed = False

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        self.writer.close()

    def reset(self) -> None:
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


# (peer, target) -> keep reading requests on this connection?
Handler = Callable[[Peer, str], Awaitable[bool]]


async def echo(peer: Peer, target: str) -> bool:
    peer.write(ok(target.encode()))
    return True


def gated(gate: asyncio.Event) -> Callable[[Peer, str], Awaitable[bool]]:
    """A handler that echoes the target once `gate` is set."""

    async def handler(peer: Peer, target: str) -> bool:
        await gate.wait()
        peer.write(ok(target.encode()))
        return True

    return handler


class Server:
    """An HTTP/1.1 server that reads request heads and lets a handler answer (or not)."""

    def __init__(self, handler: Handler = echo) -> None:
        self.handler = handler
        self.peers: list[Peer] = []
        self.heads: list[bytes] = []
        self.targets: list[str] = []
        self.open_now = 0
        self.open_max = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.url = ""

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for peer in self.peers:
            peer.writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(len(self.peers), writer)
        self.peers.append(peer)
        self.open_now += 1
        self.open_max = max(self.open_max, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    peer.client_closed = True
                    return
                target = head.split(b" ")[1].decode()
                self.heads.append(head)
                self.targets.append(target)
                if not await self.handler(peer, target):
                    return
                peer.served += 1
        except asyncio.CancelledError:
            # Shutting down; returning keeps 3.11's start_server from logging the cancel.
            return
        finally:
            self.open_now -= 1
            if not writer.is_closing():
                writer.close()


async def until(condition: Callable[[], bool], limit: float = 2.0) -> None:
    for _ in range(int(limit / 0.002)):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not met in time")


def assert_settled(stats: ClientStats) -> None:
    """Nothing in use, nobody waiting, and the counts add up."""
    assert stats.connections_in_use == 0
    assert stats.waiting == 0
    assert stats.connections_open == stats.connections_idle


# --- requests and answers ---------------------------------------------------------


async def test_get_sends_one_minimal_request_and_returns_the_answer() -> None:
    async with Server() as server:
        client = UpstreamClient(server.url)
        response = await client.get("/api/users/x?limit=5")
        assert response == UpstreamResponse(200, b"/api/users/x?limit=5")
        host = server.url.removeprefix("http://").encode()
        assert server.heads == [b"GET /api/users/x?limit=5 HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"]
        await client.close()


async def test_base_url_path_prefix_goes_before_every_target() -> None:
    async with Server() as server:
        client = UpstreamClient(server.url + "/v1%2F/")
        assert (await client.get("/api/x")).body == b"/v1%2F/api/x"
        await client.close()


@pytest.mark.parametrize(
    "url",
    [
        "https://h",
        "ftp://h/",
        "http://",
        "http://u:p@h",
        "http://h/?q=1",
        "http://h/#f",
        "http://h/a b",
        "http://hö.st/",
    ],
)
def test_base_url_must_be_plain_http(url: str) -> None:
    with pytest.raises(ValueError, match="upstream"):
        UpstreamClient(url)


@settings(max_examples=200, deadline=None)
@given(st.text().filter(lambda t: re.fullmatch(r"/[\x21-\x7e]*", t) is None))
def test_targets_that_could_inject_are_refused_before_any_io(target: str) -> None:
    """No space, CR, LF, control or non-ASCII character ever reaches the request line."""
    client = UpstreamClient("http://127.0.0.1:9")
    coro = client.get(target)
    with pytest.raises(ValueError, match="encoded path"):
        coro.send(None)
    assert client.statistics().connections_opened == 0


async def test_chunked_answer_is_decoded_and_connection_kept() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(chunked(b"[1,", b"2", b",3]"))
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        assert await client.get_json("/a") == [1, 2, 3]
        assert await client.get_json("/b") == [1, 2, 3]
        assert len(server.peers) == 1
        await client.close()


async def test_interim_1xx_answer_is_skipped() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok(b"final"))
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        assert await client.get("/a") == UpstreamResponse(200, b"final")
        assert client.statistics().connections_idle == 1
        await client.close()


async def test_body_delimited_by_eof_is_returned_and_not_pooled() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
        await asyncio.sleep(0.01)
        peer.write(b" of the stream")
        peer.close()
        return False

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        assert (await client.get("/a")).body == b"until the end of the stream"
        assert client.statistics().connections_open == 0
        await client.close()


@pytest.mark.parametrize(
    ("answer", "pooled"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi", True),
    ],
)
async def test_connection_pooled_only_when_the_answer_allows_keep_alive(
    answer: bytes, pooled: bool
) -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(answer)
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        assert (await client.get("/a")).body == b"hi"
        assert client.statistics().connections_idle == int(pooled)
        assert (await client.get("/b")).body == b"hi"
        assert len(server.peers) == (1 if pooled else 2)
        await client.close()


async def test_get_returns_error_statuses_and_get_json_refuses_them() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        if target == "/missing":
            peer.write(ok(b"Resource Not Found", status=404))
        elif target == "/broken":
            peer.write(ok(b'{"users": [', headers=JSON_TYPE))
        else:
            peer.write(ok(b'{"user": {"username": "a"}}', headers=JSON_TYPE))
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        assert await client.get("/missing") == UpstreamResponse(404, b"Resource Not Found")
        with pytest.raises(errors.UpstreamBadResponse, match="GET /missing: status 404"):
            await client.get_json("/missing")
        with pytest.raises(errors.UpstreamBadResponse, match="GET /broken: invalid JSON"):
            await client.get_json("/broken")
        assert await client.get_json("/ok") == {"user": {"username": "a"}}
        assert len(server.peers) == 1
        await client.close()


async def test_malformed_answer_is_a_bad_response_and_closes() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(b"SMTP ready\r\n\r\n")
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        with pytest.raises(errors.UpstreamBadResponse, match="GET /a: malformed answer"):
            await client.get("/a")
        assert client.statistics().connections_open == 0
        await client.close()


# --- answer size --------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        ok(b"x" * 1001),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 100,
        chunked(*[b"x" * 100] * 11),
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 2000,
    ],
    ids=["content-length", "announced-only", "chunked", "until-eof"],
)
async def test_answer_over_the_limit_is_refused_and_closed(answer: bytes) -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(answer)
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url, ClientLimits(max_response_bytes=1000))
        with pytest.raises(errors.UpstreamBadResponse, match=r"GET /big: .*larger than 1000"):
            await client.get("/big")
        assert client.statistics().connections_open == 0
        await until(lambda: server.peers[0].client_closed)
        await client.close()


async def test_answer_of_exactly_the_limit_is_accepted() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(chunked(*[b"x" * 100] * 10))
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url, ClientLimits(max_response_bytes=1000))
        assert (await client.get("/a")).body == b"x" * 1000
        await client.close()


async def test_endless_headers_are_bounded() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: yyyyyyyyyyyyyyyyyyyy\r\n" * 5000)
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url, ClientLimits(max_response_bytes=1000))
        with pytest.raises(errors.UpstreamBadResponse, match="larger than"):
            await client.get("/a")
        await client.close()


# --- timeouts and connection failures ----------------------------------------------


async def test_connection_refused_is_unavailable() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = UpstreamClient(f"http://127.0.0.1:{port}")
    with pytest.raises(
        errors.UpstreamUnavailable, match=f"GET /x: cannot connect to 127.0.0.1:{port}"
    ):
        await client.get("/x")
    stats = client.statistics()
    assert (stats.connections_open, stats.failures) == (0, 1)
    await client.close()


async def test_connect_timeout() -> None:
    """A listener whose backlog is full drops the SYN, so the connect hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        client = UpstreamClient(f"http://127.0.0.1:{port}", ClientLimits(connect_timeout=0.1))
        with pytest.raises(errors.UpstreamTimeout, match=r"GET /x: connecting to .* after 0.1 s"):
            await client.get("/x")
        assert client.statistics().connections_open == 0
        await client.close()
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def never(peer: Peer, target: str) -> bool:
    await asyncio.Event().wait()
    return False


async def test_read_timeout_when_upstream_never_answers() -> None:
    async with Server(never) as server:
        client = UpstreamClient(server.url, ClientLimits(read_timeout=0.1))
        with pytest.raises(errors.UpstreamTimeout) as caught:
            await client.get("/api/users/x")
        assert caught.value.message == "upstream GET /api/users/x: timed out after 0.1 s"
        stats = client.statistics()
        assert (stats.connections_open, stats.failures, stats.retries) == (0, 1, 0)
        await client.close()


async def test_timeout_argument_overrides_read_timeout() -> None:
    async with Server(never) as server:
        client = UpstreamClient(server.url, ClientLimits(read_timeout=30.0))
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(errors.UpstreamTimeout, match=r"after 0\.05 s"):
            await client.get("/x", timeout=0.05)
        assert loop.time() - started < 1.0
        await client.close()


async def test_a_finished_request_deadline_spares_the_next_request_on_its_connection() -> None:
    """Deadlines are never cancelled, only ignored: an old one must not fail a new request."""

    async def handler(peer: Peer, target: str) -> bool:
        if target == "/slow":
            await asyncio.sleep(0.15)
        peer.write(ok(target.encode()))
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url, ClientLimits(read_timeout=5.0))
        assert (await client.get("/fast", timeout=0.05)).body == b"/fast"
        # The same connection, while the first request's deadline passes.
        assert (await client.get("/slow", timeout=2.0)).body == b"/slow"
        stats = client.statistics()
        assert (stats.connections_opened, stats.connections_reused, stats.failures) == (1, 1, 0)
        await client.close()


async def test_requests_due_in_one_tick_time_out_together() -> None:
    async with Server(never) as server:
        client = UpstreamClient(server.url, ClientLimits(read_timeout=0.1))
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcomes = await asyncio.gather(
            *(client.get(f"/api/users/{n}") for n in range(20)), return_exceptions=True
        )
        elapsed = loop.time() - started
        assert all(isinstance(o, errors.UpstreamTimeout) for o in outcomes), outcomes
        assert 0.1 <= elapsed < 0.1 + 0.5
        assert client.statistics().connections_open == 0
        await client.close()


def trickle(step: float, pieces: int) -> Handler:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % pieces)
        for _ in range(pieces):
            await asyncio.sleep(step)
            peer.write(b"x")
        return True

    return handler


async def test_slow_answer_within_the_read_timeout_arrives_whole() -> None:
    async with Server(trickle(0.01, 10)) as server:
        client = UpstreamClient(server.url, ClientLimits(read_timeout=2.0))
        assert (await client.get("/slow")).body == b"x" * 10
        await client.close()


async def test_read_timeout_is_total_not_reset_by_each_byte() -> None:
    async with Server(trickle(0.02, 1000)) as server:
        client = UpstreamClient(server.url, ClientLimits(read_timeout=0.2))
        with pytest.raises(errors.UpstreamTimeout, match=r"timed out after 0\.2 s"):
            await client.get("/slow")
        await client.close()


@pytest.mark.parametrize("how", ["reset", "close"])
@pytest.mark.parametrize("reused", [False, True])
async def test_connection_broken_mid_body_is_unavailable_and_not_retried(
    how: str, reused: bool
) -> None:
    async def handler(peer: Peer, target: str) -> bool:
        if target == "/first":
            peer.write(ok(b"fine"))
            return True
        peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await asyncio.sleep(0.01)
        peer.reset() if how == "reset" else peer.close()
        return False

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        if reused:
            await client.get("/first")
        message = "reset" if how == "reset" else "closed before the answer was complete"
        with pytest.raises(errors.UpstreamUnavailable, match=f"GET /broken: .*{message}"):
            await client.get("/broken")
        stats = client.statistics()
        assert (stats.retries, stats.connections_open, len(server.peers)) == (0, 0, 1)
        await client.close()


# --- the one safe retry ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["reset", "close"])
async def test_reused_connection_closed_as_it_is_reused_is_retried_once(how: str) -> None:
    """The upstream's idle close races our request: nothing answered, so resend once.

    While the retry waits, nothing else sees the lost connection's error as the one being
    handled: compiled by mypyc, a coroutine that awaits inside an `except` block leaves
    it set for all the code the loop runs meanwhile (here, the upstream's handler).
    """
    handled: list[BaseException | None] = []

    async def handler(peer: Peer, target: str) -> bool:
        handled.append(sys.exc_info()[1])
        if peer.served == 0:
            peer.write(ok(target.encode()))
            return True
        peer.reset() if how == "reset" else peer.close()
        return False

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        assert (await client.get("/one")).body == b"/one"
        assert (await client.get("/two")).body == b"/two"
        assert server.targets == ["/one", "/two", "/two"]
        assert handled == [None, None, None]
        stats = client.statistics()
        assert (stats.retries, stats.connections_opened, stats.requests_sent) == (1, 2, 3)
        assert stats.failures == 0
        await client.close()


async def test_retry_of_a_stale_reused_connection_can_be_left_to_the_caller() -> None:
    """`retry_reused=False`: a caller with its own retry budget gets the failure instead."""

    async def handler(peer: Peer, target: str) -> bool:
        if peer.served == 0:
            peer.write(ok(target.encode()))
            return True
        peer.close()
        return False

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        await client.get("/one")
        with pytest.raises(errors.UpstreamUnavailable, match="GET /two: connection closed"):
            await client.get("/two", retry_reused=False)
        stats = client.statistics()
        assert (stats.retries, stats.connections_open, len(server.peers)) == (0, 0, 1)
        await client.close()


async def test_fresh_connection_failure_is_not_retried() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.close()
        return False

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        with pytest.raises(errors.UpstreamUnavailable, match="GET /x: connection closed"):
            await client.get("/x")
        assert (client.statistics().retries, len(server.targets)) == (0, 1)
        await client.close()


async def test_no_retry_once_answer_bytes_arrived() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        if peer.served == 0:
            peer.write(ok(b"fine"))
            return True
        peer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
        await asyncio.sleep(0.01)
        peer.close()
        return False

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        await client.get("/one")
        with pytest.raises(errors.UpstreamUnavailable, match="GET /two"):
            await client.get("/two")
        assert (client.statistics().retries, server.targets) == (0, ["/one", "/two"])
        await client.close()


async def test_retry_happens_at_most_once() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        if peer.number == 0 and peer.served == 0:
            peer.write(ok(b"fine"))
            return True
        peer.close()
        return False

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        await client.get("/one")
        with pytest.raises(errors.UpstreamUnavailable, match="GET /two"):
            await client.get("/two")
        stats = client.statistics()
        assert (stats.retries, len(server.peers), stats.connections_open) == (1, 2, 0)
        await client.close()


# --- pool ---------------------------------------------------------------------------


async def test_keep_alive_connection_is_reused() -> None:
    async with Server() as server:
        client = UpstreamClient(server.url)
        for target in ("/a", "/b", "/c"):
            assert (await client.get(target)).body == target.encode()
        assert len(server.peers) == 1
        stats = client.statistics()
        assert (stats.connections_opened, stats.connections_reused) == (1, 2)
        assert (stats.connections_open, stats.connections_idle, stats.requests_sent) == (1, 1, 3)
        await client.close()


async def test_most_recently_released_connection_is_reused_first() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        await asyncio.sleep(int(target.rsplit("/", 1)[1]) / 1000)
        peer.write(ok(str(peer.number).encode()))
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        answers = await asyncio.gather(*(client.get(f"/d/{ms}") for ms in (30, 1, 60)))
        assert client.statistics().connections_idle == 3
        last_released = answers[2].body
        assert (await client.get("/d/0")).body == last_released
        await client.close()


async def test_many_concurrent_gets_over_a_small_pool_each_get_their_own_answer() -> None:
    rng = random.Random(7)

    async def handler(peer: Peer, target: str) -> bool:
        await asyncio.sleep(rng.random() / 500)
        peer.write(ok(target.encode()) if rng.random() < 0.5 else chunked(target.encode()))
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=4))
        targets = [f"/api/users/u{i}" for i in range(300)]
        answers = await asyncio.gather(*(client.get(t) for t in targets))
        assert [a.body.decode() for a in answers] == targets
        assert server.open_max <= 4
        assert len(server.peers) == 4
        stats = client.statistics()
        assert_settled(stats)
        assert (stats.connections_open, stats.requests_sent) == (4, 300)
        await client.close()


async def test_waiting_callers_are_served_in_arrival_order() -> None:
    gate = asyncio.Event()

    async def handler(peer: Peer, target: str) -> bool:
        if target == "/hold":
            await gate.wait()
        peer.write(ok(target.encode()))
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=1))
        tasks = [asyncio.create_task(client.get("/hold"))]
        await until(lambda: server.targets == ["/hold"])
        for target in ("/a", "/b", "/c"):
            tasks.append(asyncio.create_task(client.get(target)))
            await asyncio.sleep(0)
        assert client.statistics().waiting == 3
        gate.set()
        answers = await asyncio.gather(*tasks)
        assert [a.body for a in answers] == [b"/hold", b"/a", b"/b", b"/c"]
        assert server.targets == ["/hold", "/a", "/b", "/c"]
        assert len(server.peers) == 1
        await client.close()


async def test_callers_beyond_max_waiting_are_refused_at_once() -> None:
    gate = asyncio.Event()
    async with Server(gated(gate)) as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=1, max_waiting=2))
        tasks = [asyncio.create_task(client.get(f"/{i}")) for i in range(3)]
        await until(lambda: client.statistics().waiting == 2)
        with pytest.raises(errors.Overloaded, match="GET /late: 2 calls already waiting") as caught:
            await client.get("/late")
        assert caught.value.status == 503
        gate.set()
        assert [a.body for a in await asyncio.gather(*tasks)] == [b"/0", b"/1", b"/2"]
        stats = client.statistics()
        assert_settled(stats)
        assert stats.failures == 1
        await client.close()


async def test_connection_idle_longer_than_idle_timeout_is_closed_not_reused() -> None:
    async with Server() as server:
        client = UpstreamClient(server.url, ClientLimits(idle_timeout=0.05))
        await client.get("/a")
        await asyncio.sleep(0.1)
        assert (await client.get("/b")).body == b"/b"
        assert len(server.peers) == 2
        await until(lambda: server.peers[0].client_closed)
        stats = client.statistics()
        assert (stats.connections_reused, stats.connections_open, stats.retries) == (0, 1, 0)
        await client.close()


async def test_idle_connection_closed_by_upstream_leaves_the_pool_at_once() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(ok(target.encode()))
        await asyncio.sleep(0.01)
        peer.close()
        return False

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        await client.get("/a")
        await until(lambda: client.statistics().connections_open == 0)
        assert (await client.get("/b")).body == b"/b"
        assert client.statistics().retries == 0
        await client.close()


# --- never another caller's answer -------------------------------------------------


async def test_second_answer_to_one_request_is_never_served_to_the_next() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        if peer.number == 0:
            peer.write(ok(target.encode()) + ok(b"intruder"))
        else:
            peer.write(ok(target.encode()))
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        assert (await client.get("/a")).body == b"/a"
        assert (await client.get("/b")).body == b"/b"
        assert len(server.peers) == 2
        await client.close()


async def test_answer_sent_while_idle_drops_the_connection() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        peer.write(ok(target.encode()))
        if peer.number == 0:
            await asyncio.sleep(0.02)
            peer.write(ok(b"intruder"))
        return True

    async with Server(handler) as server:
        client = UpstreamClient(server.url)
        assert (await client.get("/a")).body == b"/a"
        await until(lambda: client.statistics().connections_open == 0)
        assert (await client.get("/b")).body == b"/b"
        await client.close()


def phased(step: float) -> Handler:
    """/slow: head after one step, half the body after two, the rest after three."""

    async def handler(peer: Peer, target: str) -> bool:
        if target != "/slow":
            peer.write(ok(target.encode()))
            return True
        await asyncio.sleep(step)
        peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        await asyncio.sleep(step)
        peer.write(b"slow-")
        await asyncio.sleep(step)
        peer.write(b"body!")
        return True

    return handler


@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "reused"])
@pytest.mark.parametrize("delay", [None, 0.0, 0.01, 0.045, 0.075], ids=lambda d: f"cancel-at-{d}")
async def test_cancelled_get_never_leaves_a_half_read_connection(
    warm: bool, delay: float | None
) -> None:
    """Cancelled before it runs, at its first await, once sent, after the head, mid-body."""
    async with Server(phased(0.03)) as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=1))
        if warm:
            await client.get("/warm")
        task = asyncio.create_task(client.get("/slow"))
        if delay is not None:
            await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert_settled(client.statistics())
        assert (await client.get("/next")).body == b"/next"
        await asyncio.sleep(0.1)
        assert (await client.get("/again")).body == b"/again"
        assert_settled(client.statistics())
        await client.close()


async def test_wait_for_deadline_around_get_leaves_the_pool_clean() -> None:
    async with Server(phased(0.02)) as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=1))
        for deadline in (0.01, 0.03, 0.05):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.get("/slow"), deadline)
            assert (await client.get(f"/after/{deadline}")).body == f"/after/{deadline}".encode()
        assert (await client.get("/slow")).body == b"slow-body!"
        stats = client.statistics()
        assert_settled(stats)
        assert stats.failures == 0
        await client.close()


async def test_cancel_after_the_answer_completed_still_closes_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answer is whole, but the caller never took it: not pooled all the same."""
    task: asyncio.Task[UpstreamResponse] | None = None
    complete = _Connection.on_message_complete

    def complete_then_cancel(self: _Connection) -> None:
        complete(self)
        if task is not None:
            task.cancel()

    monkeypatch.setattr(_Connection, "on_message_complete", complete_then_cancel)
    async with Server() as server:
        client = UpstreamClient(server.url)
        await client.get("/warm")
        task = asyncio.create_task(client.get("/a"))
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = client.statistics()
        assert_settled(stats)
        assert stats.connections_open == 0
        assert (await client.get("/b")).body == b"/b"
        await client.close()


async def test_cancelled_waiter_leaves_the_queue() -> None:
    gate = asyncio.Event()
    async with Server(gated(gate)) as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=1, max_waiting=1))
        holder = asyncio.create_task(client.get("/hold"))
        waiter = asyncio.create_task(client.get("/waiter"))
        await until(lambda: client.statistics().waiting == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert client.statistics().waiting == 0
        follower = asyncio.create_task(client.get("/follower"))
        await asyncio.sleep(0)
        gate.set()
        assert (await holder).body == b"/hold"
        assert (await follower).body == b"/follower"
        assert server.targets == ["/hold", "/follower"]
        await client.close()


async def close_on_request(peer: Peer, target: str) -> bool:
    """Echo, with `Connection: close` for targets that end in /close."""
    closing = target.endswith("/close")
    peer.write(ok(target.encode(), headers=b"Connection: close\r\n" if closing else b""))
    return not closing


async def test_slot_of_a_closed_connection_goes_to_the_next_waiter() -> None:
    async with Server(close_on_request) as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=1))
        answers = await asyncio.gather(*(client.get(f"/{i}/close") for i in range(3)))
        assert [a.body for a in answers] == [b"/0/close", b"/1/close", b"/2/close"]
        assert (len(server.peers), server.open_max) == (3, 1)
        stats = client.statistics()
        assert_settled(stats)
        assert (stats.connections_open, stats.connections_opened) == (0, 3)
        await client.close()


async def start_holder_and_waiter(
    client: UpstreamClient, hold: str, after_release: Callable[[asyncio.Task[Any]], Awaitable[None]]
) -> asyncio.Task[UpstreamResponse]:
    """Queue a waiter behind a holder; run `after_release` before the waiter can resume."""
    handed: list[asyncio.Task[UpstreamResponse]] = []

    async def holder() -> None:
        assert (await client.get(hold)).body == hold.encode()
        # The release has just handed the connection (or its slot) to the waiter,
        # which has not run yet.
        await after_release(handed[0])

    task = asyncio.create_task(holder())
    await asyncio.sleep(0)
    handed.append(asyncio.create_task(client.get("/waiter")))
    await asyncio.sleep(0)
    assert client.statistics().waiting == 1
    await task
    return handed[0]


async def cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()


@pytest.mark.parametrize("hold", ["/hold", "/hold/close"], ids=["connection", "slot"])
async def test_waiter_cancelled_just_after_being_handed_a_connection_passes_it_on(
    hold: str,
) -> None:
    async with Server(close_on_request) as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=1))
        waiter = await start_holder_and_waiter(client, hold, cancel)
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert_settled(client.statistics())
        assert (await client.get("/next")).body == b"/next"
        assert "/waiter" not in server.targets
        assert client.statistics().connections_open == 1
        await client.close()


@pytest.mark.parametrize("cancelled", [False, True])
async def test_close_while_a_waiter_holds_a_handed_connection(cancelled: bool) -> None:
    """The handed connection is closed under the waiter: it is neither used nor pooled."""

    async def close_client(waiter: asyncio.Task[Any]) -> None:
        if cancelled:
            waiter.cancel()
        await client.close()

    async with Server() as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=1))
        await client.get("/warm")
        waiter = await start_holder_and_waiter(client, "/hold", close_client)
        expected = asyncio.CancelledError if cancelled else errors.UpstreamUnavailable
        with pytest.raises(expected):
            await waiter
        stats = client.statistics()
        assert (stats.connections_open, stats.connections_idle) == (0, 0)
        assert "/waiter" not in server.targets


async def test_failed_connect_on_the_retry_frees_the_slot() -> None:
    async def handler(peer: Peer, target: str) -> bool:
        if peer.served == 0:
            peer.write(ok(target.encode()))
            return True
        server._server.close()
        peer.close()
        return False

    async with Server(handler) as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=1))
        await client.get("/one")
        with pytest.raises(errors.UpstreamUnavailable, match="GET /two: cannot connect"):
            await client.get("/two")
        stats = client.statistics()
        assert (stats.retries, stats.connections_open, stats.failures) == (1, 0, 1)
        await client.close()


# --- close --------------------------------------------------------------------------


async def test_close_closes_connections_and_fails_waiting_and_later_calls() -> None:
    async with Server(never) as server:
        client = UpstreamClient(server.url, ClientLimits(max_connections=1))
        in_flight = asyncio.create_task(client.get("/in-flight"))
        queued = asyncio.create_task(client.get("/queued"))
        await until(lambda: client.statistics().waiting == 1)
        await client.close()
        with pytest.raises(errors.UpstreamUnavailable, match="closed"):
            await queued
        with pytest.raises(errors.UpstreamUnavailable, match="GET /in-flight"):
            await in_flight
        with pytest.raises(errors.UpstreamUnavailable, match="GET /later: client closed"):
            await client.get("/later")
        assert client.statistics().connections_open == 0


async def test_close_while_connecting_fails_the_call_instead_of_sending_it() -> None:
    async with Server(never) as server:
        client = UpstreamClient(server.url, ClientLimits(read_timeout=30.0))
        call = asyncio.create_task(client.get("/x"))
        await asyncio.sleep(0)  # the call is connecting now
        assert client.statistics().connections_open == 1
        await client.close()
        with pytest.raises(errors.UpstreamUnavailable, match="GET /x: client closed"):
            # Without the check the request goes out and waits for its 30 s timeout.
            await asyncio.wait_for(call, 2.0)
        assert client.statistics().connections_open == 0
        assert client.statistics().requests_sent == 0


async def test_close_closes_idle_connections() -> None:
    async with Server() as server:
        client = UpstreamClient(server.url)
        await asyncio.gather(client.get("/a"), client.get("/b"))
        assert client.statistics().connections_idle == 2
        await client.close()
        assert client.statistics().connections_open == 0
        await until(lambda: all(peer.client_closed for peer in server.peers))


# --- the protocol alone, without sockets --------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


@settings(max_examples=100, deadline=None)
@given(
    body=st.binary(max_size=300),
    use_chunks=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_answer_split_anywhere_parses_to_the_same_body(
    body: bytes, use_chunks: bool, cuts: list[int]
) -> None:
    """However the bytes of one answer arrive, the caller gets exactly that body."""
    answer = chunked(body[:100], body[100:]) if use_chunks and body else ok(body, headers=JSON_TYPE)
    points = sorted({min(c, len(answer)) for c in cuts} | {0, len(answer)})
    pieces = [answer[a:b] for a, b in itertools.pairwise(points) if b > a]

    async def check() -> None:
        conn = _Connection(UpstreamClient("http://127.0.0.1:9"), 1000)
        transport = FakeTransport()
        conn.connection_made(transport)
        waiter = conn.exchange(b"GET / HTTP/1.1\r\n\r\n", 1.0)
        for piece in pieces:
            conn.data_received(piece)
        assert waiter.result() == UpstreamResponse(200, body, JSON_TYPE[14:-2])
        assert conn.is_reusable()
        assert not transport.closed

    uvloop.run(check())


async def test_exchange_on_a_connection_lost_before_sending_fails_without_writing() -> None:
    conn = _Connection(UpstreamClient("http://127.0.0.1:9"), 1000)
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.connection_lost(None)
    waiter = conn.exchange(b"GET / HTTP/1.1\r\n\r\n", 1.0)
    with pytest.raises(ConnectionError, match="before the request was sent"):
        waiter.result()
    assert transport.written == b""


@pytest.mark.parametrize(
    "content_type",
    [b"application/json", b"application/json; charset=utf-8", b"Application/JSON", b"x/y+json"],
)
def test_json_body_accepts_json_media_types(content_type: bytes) -> None:
    assert json_body("/t", UpstreamResponse(200, b'{"a": 1}', content_type)) == {"a": 1}


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (UpstreamResponse(200, b"{}", b"text/html"), "not JSON"),
        (UpstreamResponse(200, b"{}", b""), "not JSON"),
        (UpstreamResponse(200, b"{", b"application/json"), "invalid JSON"),
        (UpstreamResponse(503, b"{}", b"application/json"), "status 503"),
    ],
)
def test_json_body_refuses_anything_but_a_200_json_answer(
    response: UpstreamResponse, reason: str
) -> None:
    """A 200 `{}` under the wrong type must not read as "unknown user"."""
    with pytest.raises(errors.UpstreamBadResponse, match=reason):
        json_body("/t", response)


def test_upstream_responses_compare_by_value_and_show_their_fields() -> None:
    response = UpstreamResponse(200, b"{}", b"application/json")
    assert response == UpstreamResponse(200, b"{}", b"application/json")
    assert response != UpstreamResponse(200, b"{}") and response != (200, b"{}")
    assert repr(response) == "UpstreamResponse(200, b'{}', b'application/json')"


@given(st.text(max_size=40) | st.text(alphabet=st.characters(max_codepoint=0x80), max_size=40))
def test_a_target_reaches_the_request_line_only_as_slash_then_visible_ascii(text: str) -> None:
    for target in (text, "/" + text):
        assert visible_path(target) == (re.fullmatch(r"/[\x21-\x7e]*", target) is not None)


@pytest.mark.parametrize("target", ["/a b", "/a\r\nHost: x", "/\x7f", "/é", "a/b", "", "/\t"])
def test_targets_that_could_break_the_request_line_are_refused(target: str) -> None:
    assert not visible_path(target)
    assert visible_path("/api/users/Ann%20Lee?limit=5&skip=0")
