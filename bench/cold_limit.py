"""The cold limit: the least a Python server of this design can do for a cold answer.

The limit server is the floor of a cache hit; this is the floor of an answer that
needs the upstream. It answers `GET /api/recent_purchases/{name}` with the service's
upstream calls (the user's purchases and the user lookup at once, then the object and
the buyers of each product it has not seen, at once) and the service's business rules
(`daw_popular.popular`), on uvloop and httptools, driven by protocol callbacks alone:
no task, coroutine or future per call; no read timeouts, retries, breaker,
single-flight, metrics, answer cache, ETag or shape checks. Products and their buyers
stay in dicts for the whole run (the service keeps them longer than a run too).
An upstream answer other than a 200 with JSON, or a lost upstream connection, closes
the client's connection; the answers' shapes are not checked. One request at a time per
client connection (no pipelining), as wrk sends them.

The cold scenario runs it on other cold users beside the service, in the same run: its
p50 shows how close to two upstream round trips a Python answer can come on the machine,
and the service's p50 beside it what the service's layers cost.

    python -m bench.cold_limit --port 8082 --upstream http://127.0.0.1:8081
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import orjson
import uvloop

from daw_popular import popular, responses
from daw_popular.errors import ServiceError
from daw_popular.usernames import decode_segment, upstream_segment

from .limit_server import serve_until_stopped

PREFIX = b"/api/recent_purchases/"
PAGE = 1000  # buyers per page, as the service asks for them

# Called with the decoded JSON of a 200 answer, or None for any other outcome.
Done = Callable[[Any], None]


class _Upstream(asyncio.Protocol):
    """One keep-alive upstream connection, one request at a time."""

    def __init__(self, pool: _Pool, request: bytes, done: Done) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._body: list[bytes] = []
        self._request = request
        self._done: Done | None = done

    def send(self, request: bytes, done: Done) -> None:
        self._done = done
        cast(asyncio.Transport, self._transport).write(request)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self._body)
        self._body = []
        done, self._done = self._done, None
        if self._parser.should_keep_alive():
            self._pool.idle.append(self)
        elif self._transport is not None:
            self._transport.close()
        if done is None:
            return
        try:
            doc = orjson.loads(body) if self._parser.get_status_code() == 200 else None
        except orjson.JSONDecodeError:
            doc = None
        done(doc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self._pool.idle:
            self._pool.idle.remove(self)
        done, self._done = self._done, None
        if done is not None:
            done(None)


class _Pool:
    """Idle connections to the upstream, reused last in first out; a new one when none is."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._format = b"GET %s HTTP/1.1\r\nHost: " + parts.netloc.encode("ascii") + b"\r\n\r\n"
        self.idle: list[_Upstream] = []
        self._connecting: set[asyncio.Task[Any]] = set()

    def get(self, target: bytes, done: Done) -> None:
        request = self._format % target
        if self.idle:
            self.idle.pop().send(request, done)
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(
            loop.create_connection(lambda: _Upstream(self, request, done), self._host, self._port)
        )
        self._connecting.add(task)
        task.add_done_callback(partial(self._connected, done))

    def _connected(self, done: Done, task: asyncio.Task[Any]) -> None:
        self._connecting.discard(task)
        if task.cancelled() or task.exception() is not None:
            done(None)


class _Answer:
    """One cold answer: two rounds of upstream calls, then the composition."""

    __slots__ = ("_client", "_exists", "_ids", "_left", "_name", "_pages", "_run")

    def __init__(self, client: _Client, name: str, run: _Run) -> None:
        self._client = client
        self._name = name
        self._run = run
        self._left = 2
        self._exists = False
        self._ids: list[int] = []
        self._pages: dict[int, list[Any]] = {}
        segment = upstream_segment(name).encode("ascii")
        pool = run.pool
        pool.get(
            b"/api/purchases/by_user/%s?limit=%d" % (segment, popular.RECENT_PURCHASES),
            self._purchases,
        )
        pool.get(b"/api/users/%s" % segment, self._user)

    def _user(self, doc: Any) -> None:
        if doc is None:
            self._client.abort()
            return
        self._exists = doc != {}
        self._landed()

    def _purchases(self, doc: Any) -> None:
        if doc is None:
            self._client.abort()
            return
        self._ids = popular.product_ids(doc["purchases"])
        run = self._run
        for pid in self._ids:
            if pid not in run.products:
                self._left += 1
                run.pool.get(b"/api/products/%d" % pid, partial(self._product, pid))
            if pid not in run.buyers:
                self._left += 1
                self._pages[pid] = []
                self._page(pid, 0)
        self._landed()

    def _page(self, pid: int, skip: int) -> None:
        target = b"/api/purchases/by_product/%d?limit=%d&skip=%d" % (pid, self._run.page, skip)
        self._run.pool.get(target, partial(self._buyers, pid, skip))

    def _product(self, pid: int, doc: Any) -> None:
        if doc is None:
            self._client.abort()
            return
        self._run.products[pid] = doc.get("product")
        self._landed()

    def _buyers(self, pid: int, skip: int, doc: Any) -> None:
        if doc is None:
            self._client.abort()
            return
        page = doc["purchases"]
        purchases = self._pages[pid]
        purchases += page
        if len(page) == self._run.page:
            self._page(pid, skip + self._run.page)
            return
        self._run.buyers[pid] = popular.buyers_newest_first(purchases)
        self._landed()

    def _landed(self) -> None:
        self._left -= 1
        if self._left:
            return
        if not self._exists:
            message = f"User with username of '{self._name}' was not found"
            self._client.send(responses.text(404, message))
            return
        run = self._run
        entries = popular.compose(self._name, self._ids, run.products, run.buyers)
        self._client.send(
            responses.response(200, popular.render(entries), content_type=responses.JSON)
        )


class _Run:
    """What every answer shares for the whole run: the pool, products and their buyers."""

    def __init__(self, pool: _Pool, page: int) -> None:
        self.pool = pool
        self.page = page
        self.products: dict[int, Any] = {}
        self.buyers: dict[int, tuple[str, ...]] = {}


class _Client(asyncio.Protocol):
    """One client connection: each complete request starts an answer."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.abort()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_message_complete(self) -> None:
        url, self._url = self._url, b""
        self._keep_alive = self._parser.should_keep_alive()
        if not url.startswith(PREFIX):
            self.send(responses.text(404, "Not Found"))
            return
        try:
            name = decode_segment(url[len(PREFIX) :])
        except ServiceError as exc:
            self.send(responses.text(exc.status, exc.message))
            return
        _Answer(self, name, self._run)

    def send(self, wire: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(wire)
            if not self._keep_alive:
                transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def start(
    upstream: str, host: str = "127.0.0.1", port: int = 0, *, page: int = PAGE
) -> asyncio.Server:
    """Listen and answer recent-purchases requests from `upstream`; the caller closes it."""
    loop = asyncio.get_running_loop()
    run = _Run(_Pool(upstream), page)
    return await loop.create_server(
        lambda: _Client(run), host, port, backlog=4096, reuse_address=True
    )


async def _serve(upstream: str, host: str, port: int) -> None:
    server = await start(upstream, host, port)
    await serve_until_stopped(server, f"cold limit (upstream {upstream})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_limit", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", required=True, help="base URL of the DAW data API")
    args = parser.parse_args(argv)
    uvloop.run(_serve(args.upstream, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
