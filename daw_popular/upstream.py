"""Pooled keep-alive HTTP/1.1 client for the upstream data API, on uvloop and httptools.

Theory of operation: one `_Connection` (an asyncio protocol with its own httptools
parser) per TCP connection, carrying one request at a time; its per-request future
resolves when the answer is complete, or fails on error, timeout or close (the read
deadlines of all requests due within the same 10 ms share one timer). The pool
hands out the most recently used idle connection (LIFO keeps a warm set and lets the
rest age out), else opens one while fewer than `max_connections` are open, else the
caller queues FIFO. A connection goes back to the pool only after a complete answer
that allows keep-alive. Every other ending (error, timeout, the caller cancelled,
`Connection: close`, a body delimited by EOF, bytes nobody asked for) closes it, so no
caller can ever read bytes that belong to another request.

A *slot* is the right to one open connection. `_checkout` takes one; it is given back
exactly once, by `_release` (the connection goes to a waiter or to the idle stack) or
by `_discard` (the connection is closed and the slot goes to a waiter or back).
Decisions are made first and synchronously; only connecting and queueing await.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, cast
from urllib.parse import urlsplit

import httptools
import orjson
from mypy_extensions import mypyc_attr

from daw_popular import errors

# Status line and headers of one answer. llhttp has no limit of its own; node allows
# 16 KiB, nginx 8 KiB buffers: 64 KiB is generous and still bounds a hostile peer.
HEAD_LIMIT: Final = 64 * 1024


def visible_path(target: str) -> bool:
    """Whether `target` is "/" then visible ASCII only (0x21-0x7E): no space, CR, LF or
    controls may reach the request line, so a target can never add a header or a second
    request. (Three C scans: a regex cost 1k instructions per upstream call.)"""
    return target[:1] == "/" and target.isascii() and target.isprintable() and " " not in target


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """Bounds for one upstream: pool size, queue length, time and answer size."""

    max_connections: int = 100  # per upstream
    max_waiting: int = 1000  # callers queued for a connection; beyond it errors.Overloaded
    connect_timeout: float = 1.0
    read_timeout: float = 2.0  # from sending the request to the complete answer
    max_response_bytes: int = 8 * 1024 * 1024  # body bytes, after de-chunking
    # Below the real upstream's idle close (about 5 s), so we rarely reuse a dying one.
    idle_timeout: float = 4.0


class UpstreamResponse:
    """A complete answer: status code and the whole (de-chunked) body."""

    # One per upstream answer: a plain class that mypyc compiles, as loader.Freshness.
    __slots__ = ("body", "content_type", "status")

    def __init__(self, status: int, body: bytes, content_type: bytes = b"") -> None:
        self.status = status
        self.body = body
        self.content_type = content_type

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UpstreamResponse):
            return NotImplemented
        return (self.status, self.body, self.content_type) == (
            other.status,
            other.body,
            other.content_type,
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, and mutable

    def __repr__(self) -> str:
        return f"UpstreamResponse({self.status!r}, {self.body!r}, {self.content_type!r})"


# What the upstream sends (Express's `res.json`), compared whole before any parsing: three
# byte-string methods per answer were 1% of a cold answer's instructions.
_PLAIN_JSON: Final = (b"application/json; charset=utf-8", b"application/json")
# Compiled, a C static rather than an attribute lookup on the module per upstream call.
_LOADS: Final = orjson.loads


def json_body(target: str, response: UpstreamResponse) -> Any:
    """The decoded body of a 200 JSON answer; anything else is `UpstreamBadResponse`.

    A 200 that is not JSON (a proxy's HTML error page, a captive portal) must never
    be read as data: `{}` would mean "unknown user".
    """
    if response.status != 200:
        raise errors.UpstreamBadResponse(f"upstream GET {target}: status {response.status}")
    content_type = response.content_type
    if content_type not in _PLAIN_JSON and not _is_json(content_type):
        shown = response.content_type.decode("latin-1") or "none"
        raise errors.UpstreamBadResponse(
            f"upstream GET {target}: content type {shown!r} is not JSON"
        )
    try:
        return _LOADS(response.body)
    except orjson.JSONDecodeError as exc:
        raise errors.UpstreamBadResponse(f"upstream GET {target}: invalid JSON ({exc})") from exc


def _is_json(content_type: bytes) -> bool:
    """A JSON media type (`application/json`, `application/*+json`), parameters aside."""
    media_type = content_type.partition(b";")[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A snapshot of the pool (`UpstreamClient.statistics()`)."""

    connections_open: int  # open or being opened
    connections_idle: int
    connections_in_use: int
    waiting: int  # callers queued for a connection
    requests_sent: int  # including retries
    connections_opened: int
    connections_reused: int
    retries: int
    failures: int  # calls that raised an UpstreamError


class _State(IntEnum):
    ACTIVE = 1  # checked out by one caller
    IDLE = 2  # in the pool
    CLOSED = 3


# Hot paths read the members through these names: a member read through its class
# goes through EnumType.__getattr__ on Python 3.11, six times the cost of a global.
_ACTIVE: Final = _State.ACTIVE
_IDLE: Final = _State.IDLE
_CLOSED: Final = _State.CLOSED


# A plain Python class under mypyc, whose classes can only subclass Exception (setup.py).
@mypyc_attr(native_class=False)
class _PeerClosed(ConnectionError):
    """The upstream closed the connection before the answer was complete."""


class _BadAnswer(Exception):
    """The answer is malformed or too large."""


class _OutOfStep(Exception):
    """A second answer arrived for one request."""


# Read deadlines are checked once per tick of this many seconds: one timer for every
# request due in the same tick, where a timer per request (call_later, then its cancel)
# cost 2.7% of a cold answer's instructions. A timeout fires up to a tick late, never early.
DEADLINE_TICK: Final = 0.01
_TICKS_PER_SECOND: Final = round(1 / DEADLINE_TICK)


class _Deadlines:
    """The read deadlines of a pool's requests: one timer per tick that has any.

    A deadline is never cancelled. A connection notes the tick its request is due in;
    when a tick's timer fires, each connection listed there fails its request only if
    that request is still waiting and due by then (a later request on the same
    connection has a later tick). The lists hold connections, which live long anyway,
    and nothing per request: a record per request kept for the whole timeout (a second,
    thousands at a time) would outlive the young generation and grow the collector's
    older ones.
    """

    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due: dict[int, list[_Connection]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, when: float, conn: _Connection) -> int:
        """List `conn` in the tick that `when` falls in; that tick."""
        # The tick after the one `when` falls in (`math.ceil` is a Python call here).
        tick = int(when * _TICKS_PER_SECOND) + 1
        due = self._due.get(tick)
        if due is None:
            due = self._due[tick] = []
            loop.call_at(tick * DEADLINE_TICK, self._expire, tick)
        due.append(conn)
        return tick

    def _expire(self, tick: int) -> None:
        for conn in self._due.pop(tick):
            # The check reads the connection's fields here, not through a method: most
            # requests listed have long been answered, and a method call for each would
            # cost what the shared timer saves.
            waiter = conn._waiter
            if waiter is not None and conn._due_tick <= tick and not waiter.done():
                conn.time_out()


class _Connection(asyncio.Protocol):
    """One upstream TCP connection; one request at a time."""

    def __init__(self, pool: UpstreamClient, max_body: int) -> None:
        # per-connection state
        self._pool = pool
        self._max_body = max_body
        self._max_answer = max_body + HEAD_LIMIT
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._state = _ACTIVE
        self._idle_since = 0.0
        self._answers = 0
        self._lost: asyncio.Future[None] = self._loop.create_future()

        # per-request state
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._due_tick = 0  # the read deadline, as a tick of the pool's `_Deadlines`
        self._received = 0
        self._complete = False
        self._keep_alive = False

        # per-answer state (a 1xx interim answer precedes the final one)
        self._status = 0
        self._content_type = b""
        self._headers_done = False
        self._length: int | None = None
        self._chunked = False
        self._body_size = 0
        self._chunks: list[bytes] = []

    # predicates

    def is_idle(self) -> bool:
        return self._state is _IDLE

    def is_closed(self) -> bool:
        return self._state is _CLOSED

    def has_expired(self, idle_timeout: float) -> bool:
        return self._loop.time() - self._idle_since > idle_timeout

    def is_reusable(self) -> bool:
        return self._state is _ACTIVE and self._complete and self._keep_alive

    def may_retry(self) -> bool:
        """True when the request failed on a reused connection before any answer byte.

        That is the race with the upstream's idle close: it never saw the request, or
        saw it and answered nothing, so resending an idempotent GET is safe.
        """
        return self._answers > 0 and self._received == 0

    # pool interface

    def checkout(self) -> None:
        self._state = _ACTIVE

    def park(self) -> None:
        self._state = _IDLE
        self._idle_since = self._loop.time()

    def exchange(self, request: bytes, timeout: float) -> asyncio.Future[UpstreamResponse]:
        """Send one request; the future resolves with its answer or fails."""
        waiter: asyncio.Future[UpstreamResponse] = self._loop.create_future()
        self._waiter = waiter
        self._received = 0
        self._complete = False
        transport = self._transport
        if transport is None or self._state is _CLOSED:
            waiter.set_exception(_PeerClosed("connection closed before the request was sent"))
            return waiter
        self._due_tick = self._pool._deadlines.add(self._loop, self._loop.time() + timeout, self)
        transport.write(request)
        return waiter

    def close(self) -> None:
        if self._state is not _CLOSED:
            self._mark_closed()
            if self._transport is not None:
                self._transport.close()

    async def wait_closed(self) -> None:
        await self._lost

    # protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            # Bytes nobody asked for: the upstream is out of step with us, and
            # anything more it sends here could be taken for the next answer.
            self.close()
            return
        self._received += len(data)
        if self._received > self._max_answer:
            self._fail(_BadAnswer(f"answer larger than {self._max_body} bytes"))
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self._complete:
                self._keep_alive = False
            else:
                self._fail(_BadAnswer(f"malformed answer ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if exc is None and self._headers_done and self._length is None and not self._chunked:
                # RFC 9112, 6.3 (8): no length and not chunked, so the close ends the body.
                self._complete = True
                self._keep_alive = False
                waiter.set_result(self._answer())
            elif exc is None:
                waiter.set_exception(
                    _PeerClosed("connection closed before the answer was complete")
                )
            else:
                waiter.set_exception(exc)
        self._mark_closed()
        self._pool._connections.discard(self)
        self._lost.set_result(None)

    # parser callbacks

    def on_message_begin(self) -> None:
        if self._complete:
            # Raising stops llhttp from parsing the second answer into this one.
            raise _OutOfStep
        self._headers_done = False
        self._content_type = b""
        self._length = None
        self._chunked = False
        self._body_size = 0
        self._chunks = []

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self._length = int(value)
        elif size == 17 and name.lower() == b"transfer-encoding":
            self._chunked = value.rstrip().lower().endswith(b"chunked")
        elif size == 12 and name.lower() == b"content-type":
            self._content_type = value

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        if self._length is not None and self._length > self._max_body:
            self._fail(
                _BadAnswer(f"answer of {self._length} bytes is larger than {self._max_body} bytes")
            )

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_body:
            self._fail(_BadAnswer(f"answer larger than {self._max_body} bytes"))
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:
            return
        self._complete = True
        self._answers += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self._answer())

    # internals

    def _answer(self) -> UpstreamResponse:
        return UpstreamResponse(self._status, b"".join(self._chunks), self._content_type)

    def time_out(self) -> None:
        """The request in flight reached its read deadline."""
        self._fail(TimeoutError())

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def _mark_closed(self) -> None:
        was_idle = self.is_idle()
        self._state = _CLOSED
        if was_idle:
            self._pool._forget_idle(self)


class UpstreamClient:
    """A keep-alive connection pool to one `http://` upstream, for GET requests."""

    def __init__(self, base_url: str, limits: ClientLimits = ClientLimits()) -> None:
        parts = urlsplit(base_url)
        if (
            parts.scheme != "http"
            or not parts.hostname
            or parts.username is not None
            or parts.query
            or parts.fragment
        ):
            raise ValueError(f"upstream URL must look like http://host:port/prefix: {base_url!r}")
        prefix = parts.path.rstrip("/")
        if prefix and not visible_path(prefix):
            raise ValueError(f"upstream URL path must be visible ASCII: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._authority = parts.netloc
        try:
            host_header = parts.netloc.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"upstream host must be ASCII: {base_url!r}") from None
        self._request_format = (
            b"GET "
            + prefix.encode().replace(b"%", b"%%")
            + b"%s HTTP/1.1\r\nHost: "
            + host_header.replace(b"%", b"%%")
            + b"\r\n\r\n"
        )
        self._limits = limits
        self._read_timeout = limits.read_timeout
        self._idle_timeout = limits.idle_timeout
        self._max_connections = limits.max_connections
        self._max_waiting = limits.max_waiting

        # pool state
        self._deadlines = _Deadlines()
        self._idle: deque[_Connection] = deque()  # oldest first, reused from the right
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._connections: set[_Connection] = set()
        self._open = 0  # slots taken: connections open or being opened
        self._closed = False

        # counters
        self._requests_sent = 0
        self._opened = 0
        self._reused = 0
        self._retries = 0
        self._failures = 0

    # The read timeout is the connection's own timer, one handle per request: cheaper
    # than an `asyncio.timeout` scope, and the error it raises can name the target.
    async def get(
        self,
        target: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        retry_reused: bool = True,
    ) -> UpstreamResponse:
        """GET `target` (an encoded path and query starting with "/"), any status.

        `timeout` replaces `read_timeout` for this call: the time from sending the
        request to the complete answer. `retry_reused=False` leaves the retry of a
        reused connection that closed before answering to a caller that counts its
        retries against a budget (it raises `UpstreamUnavailable` instead).
        """
        if not visible_path(target):
            raise ValueError(f"upstream target must be an encoded path: {target!r}")
        request = self._request_format % target.encode()
        read_timeout = self._read_timeout if timeout is None else timeout
        conn = self._take_idle()
        if conn is None:
            try:
                conn = await self._checkout(target)
            except errors.UpstreamError:
                self._failures += 1
                raise
        try:
            self._requests_sent += 1
            retry = False
            try:
                response = await conn.exchange(request, read_timeout)
            except ConnectionError:
                if not (retry_reused and conn.may_retry()):
                    raise
                retry = True
            if retry:
                # Not awaited in the `except` block: see `resilience.GuardedUpstream`.
                self._retries += 1
                # A fresh connection, not another idle one, which could be stale too.
                conn = await self._connect(target)
                self._requests_sent += 1
                response = await conn.exchange(request, read_timeout)
        except errors.UpstreamError:
            self._discard(conn)
            self._failures += 1
            raise
        except (OSError, _BadAnswer) as exc:
            self._discard(conn)
            self._failures += 1
            raise _error(exc, target, read_timeout) from exc
        except BaseException:
            # Cancelled (or a bug): the answer may be half read, so never pool it.
            self._discard(conn)
            raise
        if conn.is_reusable():
            self._release(conn)
        else:
            self._discard(conn)
        return response

    async def get_json(self, target: str, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """GET `target` and decode its JSON body (see `json_body`)."""
        return json_body(target, await self.get(target, timeout=timeout))

    def statistics(self) -> ClientStats:
        """A snapshot of the pool's counts and counters."""
        idle = len(self._idle)
        return ClientStats(
            connections_open=self._open,
            connections_idle=idle,
            connections_in_use=self._open - idle,
            waiting=sum(1 for fut in self._waiters if not fut.done()),
            requests_sent=self._requests_sent,
            connections_opened=self._opened,
            connections_reused=self._reused,
            retries=self._retries,
            failures=self._failures,
        )

    async def close(self) -> None:
        """Close every connection; queued and later calls fail with UpstreamUnavailable."""
        self._closed = True
        waiters, self._waiters = self._waiters, deque()
        for fut in waiters:
            if not fut.done():
                fut.set_exception(errors.UpstreamUnavailable("upstream client closed"))
        while self._idle:
            conn = self._idle.pop()
            conn.checkout()
            self._discard(conn)
        connections = list(self._connections)
        for conn in connections:
            conn.close()
        await asyncio.gather(*[conn.wait_closed() for conn in connections])

    # pool internals

    def _take_idle(self) -> _Connection | None:
        """The most recently used idle connection, if one has not expired."""
        idle = self._idle
        if not idle:
            return None
        # LIFO reuse leaves the oldest at the left: drop the expired ones there
        # (the upstream may already be closing them).
        while idle and idle[0].has_expired(self._idle_timeout):
            stale = idle.popleft()
            stale.checkout()
            self._discard(stale)
        if not idle:
            return None
        conn = idle.pop()
        conn.checkout()
        self._reused += 1
        return conn

    async def _checkout(self, target: str) -> _Connection:
        """A slot and a new connection, or a connection or slot handed over in turn."""
        if self._closed:
            raise errors.UpstreamUnavailable(f"upstream GET {target}: client closed")
        if self._open < self._max_connections:
            self._open += 1
            return await self._connect_in_slot(target)
        if len(self._waiters) >= self._max_waiting:
            raise errors.Overloaded(
                f"upstream GET {target}: {len(self._waiters)} calls already waiting"
                f" for {self._max_connections} connections"
            )
        fut: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            given = await fut
        except BaseException:
            if fut.cancelled():
                if fut in self._waiters:
                    self._waiters.remove(fut)
            elif fut.exception() is None:
                # Handed a connection or a slot, then cancelled before running: pass it on.
                handed = fut.result()
                if handed is None:
                    self._free_slot()
                else:
                    self._release(handed)
            raise
        if given is None:
            return await self._connect_in_slot(target)
        self._reused += 1
        return given

    async def _connect_in_slot(self, target: str) -> _Connection:
        try:
            return await self._connect(target)
        except BaseException:
            self._free_slot()
            raise

    async def _connect(self, target: str) -> _Connection:
        if self._closed:
            raise errors.UpstreamUnavailable(f"upstream GET {target}: client closed")
        conn = _Connection(self, self._limits.max_response_bytes)
        timeout = self._limits.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().create_connection(
                    lambda: conn, self._host, self._port
                )
        except TimeoutError as exc:
            raise errors.UpstreamTimeout(
                f"upstream GET {target}: connecting to {self._authority}"
                f" timed out after {timeout} s"
            ) from exc
        except OSError as exc:
            raise errors.UpstreamUnavailable(
                f"upstream GET {target}: cannot connect to {self._authority}"
                f" ({exc.strerror or exc})"
            ) from exc
        if self._is_closed():  # a call, which mypy does not narrow from the check above
            # `close()` ran while this one was connecting: it could not close what it did
            # not know of, so nothing may be sent on it now.
            conn.close()
            raise errors.UpstreamUnavailable(f"upstream GET {target}: client closed")
        self._connections.add(conn)
        self._opened += 1
        return conn

    def _is_closed(self) -> bool:
        return self._closed

    def _release(self, conn: _Connection) -> None:
        """Give a clean connection to the first live waiter, else to the idle stack."""
        if self._closed or conn.is_closed():
            self._discard(conn)
        elif not self._hand_over(conn):
            conn.park()
            self._idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._free_slot()

    def _free_slot(self) -> None:
        if not self._hand_over(None):
            self._open -= 1

    def _hand_over(self, given: _Connection | None) -> bool:
        """Give a connection, or (None) a free slot, to the first live waiter, if any."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(given)
                return True
        return False

    def _forget_idle(self, conn: _Connection) -> None:
        """An idle connection closed by itself (peer EOF, reset, unsolicited bytes)."""
        self._idle.remove(conn)
        self._free_slot()


def _error(exc: Exception, target: str, timeout: float) -> errors.UpstreamError:
    where = f"upstream GET {target}"
    if isinstance(exc, TimeoutError):
        return errors.UpstreamTimeout(f"{where}: timed out after {timeout} s")
    if isinstance(exc, _BadAnswer):
        return errors.UpstreamBadResponse(f"{where}: {exc}")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return errors.UpstreamUnavailable(f"{where}: {reason or type(exc).__name__}")
