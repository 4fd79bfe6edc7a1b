"""HTTP/1.1 server core on uvloop + httptools, shared by the service and the simulator.

Theory of operation
-------------------
One `HttpProtocol` per connection feeds received bytes to an httptools parser.
When a request is complete the handler is called at once. A handler returns
the complete response as `bytes` (the cache-hit path: no task, no coroutine), a
`Later` it gives the response to from a callback of its own (written within that
call), or an awaitable of it. Responses leave in request order: while an earlier
response is still awaited, later ones queue behind it in `_pending`.

Time-based limits are not per-request timers (two timer handles per request
cost more than the rest of a cache hit): each connection keeps one deadline,
and the server's ticker, which also refreshes the `Date` header, sweeps all
connections a few times a second.

A connection is in one of four phases, and the phase decides its deadline:

    IDLE     nothing received of the next request   keep-alive timeout, then close quietly
    READING  a request is arriving                   absolute request deadline, then 408 + close
    BUSY     responses owed or a request in flight   no deadline (the handler bounds its own time)
    any      writes paused (client not reading)      send timeout, then abort

Errors in the request (malformed, over a limit) are answered once, with
`Connection: close`, after any responses owed to earlier pipelined requests;
nothing after the bad request is parsed. A closing connection stays in
`HttpServer.connections` until the transport reports it lost, so a client that
stops reading while we flush is still aborted by the send timeout and still
counts against `max_connections`.

What is refused
---------------
httptools (llhttp) runs strict: its leniency flags stay off, so it already
refuses bare CR or LF, obs-fold, control bytes, duplicate or non-decimal
Content-Length, Content-Length with Transfer-Encoding, a coding after `chunked`,
and broken chunk framing. The core adds, each cheap or only paid when a rare
header is present (header names are first filtered by length):

- a version other than HTTP/1.0 or HTTP/1.1 (0.9 and 2.0 parse, we do not speak
  them), and RTSP/1.0 or ICE/1.0 request lines, which llhttp parses as HTTP/1.0
  (looked for in reads up to 4 KiB and in unfinished heads, so HTTP/1.1 pays nothing);
- HTTP/1.1 without Host, with two Hosts, or with a Host that is not
  `reg-name / IP-literal [":" port]` (RFC 9112, 3.2: a MUST);
- Transfer-Encoding other than exactly one `chunked` field with nothing around
  the value, any Transfer-Encoding on HTTP/1.0 (RFC 9112, 6.1), and a chunked
  request whose head contains a tab (`Transfer-Encoding:\tchunked` is valid OWS
  for us but a classic disagreement between a front end and a back end);
- `Content_Length` and `Transfer_Encoding`: a proxy that maps `_` to `-` would
  frame the request differently from us;
- a `#` fragment, userinfo, or a bad authority in the request target;
- a declared Content-Length above `max_body_bytes` (413 at once, not after the body);
- head bytes that llhttp buffers without a callback (one endless header line),
  beyond `max_request_line + max_head_bytes` (431), and likewise a chunked body's
  framing and trailer section beyond `max_head_bytes + max_body_bytes` (431).

A request body, whatever the method, is framed by httptools and discarded by the
handlers, up to `max_body_bytes`; its bytes are never parsed as a request, and its
trailer fields are ignored (RFC 9110, 6.5.1: none of those read here may be merged
into the header section). A client that half-closes gets what is owed for its complete
requests, then the connection closes; an unfinished request is dropped. A
request with `Expect: 100-continue` and a body gets `100 Continue` when nothing
is owed before it. A method other than GET or HEAD, or an Upgrade request, is
answered (404/405, or normally with the upgrade ignored) and the connection
then closes: nothing we serve needs them on a reused connection.

Greedy pipelining is bounded: once `max_pipelined` answers are owed, or writes
are paused with more than `max_write_buffer` bytes unsent, the current request
is the last one read; it is answered with `Connection: close`, and the client
retries the rest on a new connection (RFC 9112, 9.3.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import inspect
import logging
import re
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, cast

import httptools

from . import eager, responses

log = logging.getLogger("daw_popular.server")

Takeover = Callable[[asyncio.Transport], Awaitable[None]]


class Later:
    """A response its handler gives after returning, by one call to `give` (or `fail`).

    The server writes it within that call. An awaitable's response is written by a
    task, or by a future's done callback: one event-loop turn after it is ready, and
    under load a turn waits behind everything else that became ready first. As with
    an awaitable, the handler owes exactly one outcome and bounds its own time. Calls
    after the first, and any after the client left (`cancel`), are ignored.
    """

    __slots__ = ("_dropped", "_outcome", "_to")

    def __init__(self) -> None:
        self._to: Callable[[bytes | BaseException], None] | None = None
        self._outcome: bytes | BaseException | None = None
        self._dropped = False

    def give(self, response: bytes) -> None:
        self._settle(response)

    def fail(self, error: BaseException) -> None:
        """No response after all: the server answers 500 (503 for a cancellation) and
        closes the connection, as for an awaitable that raised."""
        self._settle(error)

    def cancel(self) -> None:
        """The server's: the client left, so nothing will be written."""
        self._dropped = True
        self._to = None

    def deliver_to(self, to: Callable[[bytes | BaseException], None]) -> None:
        """The server's: where the outcome goes (at once if it was given already)."""
        if self._dropped:
            return
        if self._outcome is not None:
            to(self._outcome)
        else:
            self._to = to

    def _settle(self, outcome: bytes | BaseException) -> None:
        if self._outcome is not None or self._dropped:
            return
        self._outcome = outcome
        to, self._to = self._to, None
        if to is not None:
            to(outcome)


Result = bytes | Later | Awaitable["bytes | Takeover"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one client may ask of the server. Defaults and their precedent."""

    # gunicorn 4094, nginx 8 KiB (large_client_header_buffers): room for long names.
    max_request_line: int = 8192
    # gunicorn 100, Varnish 64: browsers send about 10-20.
    max_headers: int = 64
    # gunicorn 8190, Varnish 8 KiB per field.
    max_header_bytes: int = 8192
    # Varnish 32 KiB for the whole request head; node 16 KiB.
    max_head_bytes: int = 32768
    # GET needs no body; a small one is read and discarded, a larger one refused (413).
    max_body_bytes: int = 65536
    # An absolute deadline for a whole request (Varnish 5 s idle, nginx 60 s header):
    # a timer that restarts on every byte would let a trickling client hold us forever.
    request_timeout: float = 10.0
    # hypercorn and uvicorn 5 s, also before the first request.
    keepalive_timeout: float = 5.0
    # nginx keepalive_requests 1000, but nothing here grows per request: the bound
    # only makes long-lived clients reconnect now and then, so load rebalances across
    # workers. 1000 made every busy connection reconnect at once under load.
    max_requests_per_connection: int = 100_000
    # Open file limit here is 20000; leave room for upstream sockets and files.
    max_connections: int = 16000
    # A client that stops reading is dropped once writes were blocked this long.
    send_timeout: float = 10.0
    # Answers owed on one connection before it stops reading requests
    # (nginx http2_max_concurrent_streams 128; h2 recommends at least 100).
    max_pipelined: int = 128
    # Unsent bytes a non-reading pipeliner can make us hold: 16 x the high-water mark.
    max_write_buffer: int = 1048576
    # asyncio/uvloop transport defaults.
    write_high_water: int = 65536
    write_low_water: int = 16384

    def tick_interval(self) -> float:
        """How often the sweeper runs: fine enough to enforce the shortest timeout."""
        shortest = min(self.request_timeout, self.keepalive_timeout, self.send_timeout)
        return max(0.01, min(0.25, shortest / 4))


class Phase(enum.IntEnum):
    IDLE = 0
    READING = 1
    BUSY = 2
    CLOSED = 3


# Hot paths read the members through these names: a member read through its class
# goes through EnumType.__getattr__ on Python 3.11, six times the cost of a global.
# Final, as the module's other constants: compiled, each is then a C static or a
# literal, not a lookup in the module's dict (100-200 instructions a read).
_IDLE: Final = Phase.IDLE
_READING: Final = Phase.READING
_BUSY: Final = Phase.BUSY
_CLOSED: Final = Phase.CLOSED


class Request:
    """One parsed request. `path` and `query` are raw bytes, not decoded."""

    __slots__ = (
        "body",
        "headers",
        "http_version",
        "if_none_match",
        "keep_alive",
        "method",
        "path",
        "query",
    )

    def __init__(
        self,
        method: str,
        path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: str,
        keep_alive: bool,
        if_none_match: bytes | None,
        body: bytes = b"",
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.if_none_match = if_none_match
        self.body = body


Handler = Callable[[Request], Result]
# Raw target of a plain keep-alive HTTP/1.1 GET -> the complete answer, or None to
# handle the request in full. Skips building a Request and routing: the cache hit.
FastLane = Callable[[bytes], bytes | None]


class HttpError(Exception):
    """A request the server refuses before any handler sees it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# RFC 9110, 7.2 and RFC 3986, 3.2.2: reg-name or IP literal, optional port.
_HOST: Final = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")


# Header names the core acts on, by kind, lowercased.
_OTHER: Final = 0
_K_HOST: Final = 1
_K_INM: Final = 2
_K_CL: Final = 3
_K_TE: Final = 4
_K_EXPECT: Final = 5
_K_UPGRADE: Final = 6
_K_UNDERSCORE: Final = 7
_KINDS_LOWER: Final = {
    b"host": _K_HOST,
    b"if-none-match": _K_INM,
    b"content-length": _K_CL,
    b"transfer-encoding": _K_TE,
    b"expect": _K_EXPECT,
    b"upgrade": _K_UPGRADE,
    # A proxy that maps `_` to `-` would frame the request differently from us.
    b"content_length": _K_UNDERSCORE,
    b"transfer_encoding": _K_UNDERSCORE,
}
# Names as clients usually spell them, so that most headers cost one dict lookup and
# no lowering; any other name is lowered only when its length could match.
_KINDS: Final = {
    **_KINDS_LOWER,
    **{name.title(): kind for name, kind in _KINDS_LOWER.items()},
    **dict.fromkeys(
        (
            b"User-Agent",
            b"Accept",
            b"Accept-Language",
            b"Accept-Encoding",
            b"Connection",
            b"Cookie",
            b"Referer",
            b"Cache-Control",
            b"Pragma",
            b"Origin",
            b"Authorization",
            b"If-Modified-Since",
            b"Upgrade-Insecure-Requests",
            b"Sec-Fetch-Dest",
            b"Sec-Fetch-Mode",
            b"Sec-Fetch-Site",
            b"Sec-Fetch-User",
            b"DNT",
            b"Priority",
            b"X-Forwarded-For",
            b"X-Forwarded-Proto",
            b"X-Forwarded-Host",
            b"X-Real-IP",
            b"Via",
            b"X-Request-ID",
            b"Keep-Alive",
            b"user-agent",
            b"accept",
            b"accept-language",
            b"accept-encoding",
            b"connection",
            b"cookie",
            b"referer",
            b"cache-control",
            b"x-forwarded-for",
            b"x-real-ip",
        ),
        _OTHER,
    ),
}
_WATCHED_LENGTHS: Final = frozenset(len(name) for name in _KINDS_LOWER)
_BAD_REQUEST: Final = b"HTTP/1.1 400 "
# Fields refused in a trailer section: they would frame or route the request.
_FRAMING_OR_ROUTING: Final = frozenset((_K_HOST, _K_CL, _K_TE, _K_UNDERSCORE))

# Rare per-request facts, one int reset per request.
_CHUNKED: Final = 1
_EXPECT_CONTINUE: Final = 2
_UPGRADE: Final = 4
_HAS_BODY: Final = 8
_TAB_SEEN: Final = 16
_FOREIGN_SEEN: Final = 32  # an RTSP/ or ICE/ request line was seen in this head

_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_OWS: Final = (0x20, 0x09)
_FOREIGN_SCAN: Final = 4096
# Room beyond the request target for " RTSP/" or " ICE/", when a head's reads are kept.
_PROTOCOL_NAME: Final = 16
# Largest read a connection remembers to answer a repeat of it without parsing:
# requests are usually well under 1 KiB, and 16,000 connections x 4 KiB stays small.
_REPEAT_MAX: Final = 4096

# The methods we serve, decoded once; any other closes the connection after its answer.
_COMMON_METHODS: Final = {b"GET": "GET", b"HEAD": "HEAD"}


class _Stop(Exception):
    """Raised from a parser callback to stop parsing a connection that is closing."""


class HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_body_bytes",
        "_data",
        "_deadline",
        "_fast",
        "_flags",
        "_handler",
        "_header_bytes",
        "_headers",
        "_hosts",
        "_if_none_match",
        "_lane_target",
        "_limits",
        "_line",
        "_parser",
        "_pending",
        "_phase",
        "_raised",
        "_reading_paused",
        "_repeat",
        "_repeat_target",
        "_requests",
        "_server",
        "_shutting_down",
        "_trailer",
        "_transport",
        "_unparsed",
        "_url",
        "_valid_host",
        "_version",
        "_writing_paused_since",
    )

    def __init__(self, server: HttpServer) -> None:
        # per-connection state
        self._server = server
        self._handler = server.handler
        self._fast = server.fast
        self._limits = server.limits
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._phase = _IDLE
        self._deadline = server.now + self._limits.keepalive_timeout
        self._pending: deque[_Slot] = deque()
        self._requests = 0
        self._writing_paused_since = 0.0
        self._reading_paused = False
        self._shutting_down = False
        self._valid_host = b""  # last Host value that passed validation
        # The last read that held exactly one request, answered by the fast lane, and
        # that request's target: the same bytes again parse the same way (see data_received).
        self._repeat = b""
        self._repeat_target = b""
        self._lane_target = b""
        self._data = b""  # the chunk being parsed, for the rare checks that need raw bytes
        # What a parser callback raised (see `_refusal`), until `data_received` reads it.
        self._raised: BaseException | None = None
        self._unparsed = -1  # bytes of an unfinished head so far; -1 outside a head
        # The last bytes read of an unfinished head (enough for its request line).
        self._line = b""
        # Bytes read since the head of a chunked request, while it is unfinished (its
        # chunk framing and trailer section); -1 outside a chunked body.
        self._trailer = -1
        # per-request state
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._hosts = 0
        self._if_none_match: bytes | None = None
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._flags = 0
        self._version = "1.1"

    # protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        server = self._server
        if len(server.connections) >= self._limits.max_connections or server.closing:
            self._phase = _CLOSED
            server.stats.refused += 1
            transport.write(server.overloaded_response())
            transport.close()
            return
        server.connections.add(self)
        server.stats.accepted += 1
        transport.set_write_buffer_limits(
            high=self._limits.write_high_water, low=self._limits.write_low_water
        )
        # No TCP_NODELAY here: uvloop sets it on every TCP transport it makes.

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _CLOSED
        self._writing_paused_since = 0.0
        self._server.forget(self)
        for slot in self._pending:
            if slot.task is not None:
                slot.task.cancel()
                slot.forget_answer()
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        if self._shutting_down:
            # Closing: what follows a final request is never parsed (no second answer).
            return
        if data == self._repeat and self._phase is _IDLE and self._may_take_lane():
            # The bytes of a request the lane answered, alone in a read, arriving again at
            # a message boundary: llhttp and every check would decide as they did then,
            # so only what can have changed is looked at again (the connection, the cache).
            wire = self._fast(self._repeat_target)  # type: ignore[misc]
            if wire is not None:
                self._answer_fast(wire)
                return
        boundary = self._phase is _IDLE
        requests = self._requests
        self._lane_target = b""
        self._data = data
        try:
            self._parser.feed_data(data)
        except _Stop:
            self._raised = None
        except httptools.HttpParserUpgrade:
            # RFC 9110, 7.8: a server may ignore Upgrade. The request was answered
            # (or is owed); we do not speak the other protocol, so close after it.
            self._close_after_pending()
        except httptools.HttpParserCallbackError as exc:
            cause = self._raised if self._raised is not None else exc.__context__
            self._raised = None
            if isinstance(cause, HttpError):
                self._refuse(cause.status, cause.message)
            elif not isinstance(cause, _Stop):
                log.exception("unexpected error in request parsing", exc_info=cause)
                self._refuse(500, "Internal Server Error")
        except httptools.HttpParserInvalidURLError:
            self._refuse(400, "Bad Request: invalid request target")
        except httptools.HttpParserInvalidMethodError:
            self._refuse(400, "Bad Request: invalid method")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"Bad Request: {exc}")
        else:
            if self._unparsed >= 0 and self._phase is _READING:
                self._partial_head(data)
            elif self._trailer >= 0 and self._phase is _READING:
                self._partial_chunked(data)
            elif (
                boundary
                and len(data) <= _REPEAT_MAX
                and self._lane_target
                and self._phase is _IDLE
                and self._requests == requests + 1
            ):
                # One read, exactly one request, answered by the lane: remember it.
                self._repeat = data
                self._repeat_target = self._lane_target
        self._data = b""

    def _partial_head(self, data: bytes) -> None:
        """A chunk ended inside a request head: account for what httptools holds."""
        # httptools buffers a header line until it ends, so bound the bytes of an
        # unfinished head. The chunk where the head began may also hold earlier
        # requests: it is not counted (the bound is loose by at most one read).
        if self._unparsed == 0:
            self._unparsed = 1
        else:
            self._unparsed += len(data)
            limits = self._limits
            if self._unparsed > limits.max_request_line + limits.max_head_bytes:
                self._refuse(431, "Request Header Fields Too Large")
        if b"\t" in data:
            self._flags |= _TAB_SEEN
        # Kept across reads, so that a request line cut anywhere is still seen whole.
        keep = self._limits.max_request_line + _PROTOCOL_NAME
        self._line = line = (self._line + data[-keep:])[-keep:]
        if _foreign_protocol(line, self._url):
            self._flags |= _FOREIGN_SEEN

    def _partial_chunked(self, data: bytes) -> None:
        """A read ended inside a chunked body: bound what is not body.

        httptools buffers a trailer field until its line ends, and keeps appending to
        it (quadratic work), so the bytes of chunk framing and trailers are bounded as
        a head's are. Counted from the read after the one where the head ended.
        """
        self._trailer += len(data)
        limits = self._limits
        if self._trailer - self._body_bytes > limits.max_head_bytes + limits.max_body_bytes:
            self._refuse(431, "Request Header Fields Too Large")

    def eof_received(self) -> bool | None:
        # Half-close: finish what is owed, then close (returning False closes now).
        if not self._pending:
            return False
        self._shutting_down = True
        if self._phase is _READING:
            # The request being read can never be complete now: once what is owed is
            # written, the connection closes (not after a request timeout and a 408).
            self._phase = _BUSY
        return True

    def pause_writing(self) -> None:
        self._writing_paused_since = self._server.now
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused_since = 0.0
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    def _refusal(self, status: int, message: str) -> HttpError:
        """The error a parser callback raises to refuse the request, kept here as well.

        httptools passes a callback's exception on only as the `__context__` of its own
        error, and that is whichever exception is being handled when it raises, if any
        is: the callback's own is then lost (a compiled coroutine suspended in an
        `except` block leaves one set; none does now, see tests/test_build.py).
        """
        error = self._raised = HttpError(status, message)
        return error

    def _stop(self) -> _Stop:
        """What a parser callback raises to stop parsing, kept as `_refusal` keeps its."""
        stop = self._raised = _Stop()
        return stop

    # parser callbacks

    def on_message_begin(self) -> None:
        if self._shutting_down:
            raise self._stop()
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._hosts = 0
        self._if_none_match = None
        self._body_bytes = 0
        self._flags = 0
        self._unparsed = 0
        self._line = b""
        self._trailer = -1
        self._phase = _READING
        self._deadline = self._server.now + self._limits.request_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.max_request_line:
            raise self._refusal(414, "URI Too Long")
        if b"#" in url:
            # RFC 9112, 3.2: a fragment is never part of a request target.
            raise self._refusal(400, "Bad Request: fragment in request target")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        limits = self._limits
        size = len(name) + len(value)
        if size > limits.max_header_bytes:
            raise self._refusal(431, "Request Header Fields Too Large")
        if self._trailer >= 0:
            self._trailer_field(name)
            return
        self._header_bytes += size + 4
        if self._header_bytes > limits.max_head_bytes or len(headers) >= limits.max_headers:
            raise self._refusal(431, "Request Header Fields Too Large")
        headers.append((name, value))
        kind = _KINDS.get(name)
        if kind is None:
            if len(name) not in _WATCHED_LENGTHS:
                return
            kind = _KINDS_LOWER.get(name.lower(), _OTHER)
        if not kind:
            return
        if kind == _K_HOST:
            if value and value[-1] in _OWS:
                # llhttp keeps trailing OWS, which is not part of the value (RFC 9110, 5.5).
                value = value.rstrip(b" \t")
            self._hosts += 1
            if self._hosts > 1:
                raise self._refusal(400, "Bad Request: more than one Host header")
            if value != self._valid_host:
                if _HOST.fullmatch(value) is None:
                    raise self._refusal(400, "Bad Request: invalid Host header")
                self._valid_host = value
        elif kind == _K_INM:
            self._if_none_match = (
                value if self._if_none_match is None else self._if_none_match + b", " + value
            )
        elif kind == _K_CL:
            # llhttp has checked the digits and refused a second one.
            if int(value) > limits.max_body_bytes:
                raise self._refusal(413, "Content Too Large")
            if value.strip(b"0"):
                self._flags |= _HAS_BODY
        elif kind == _K_TE:
            if self._flags & _CHUNKED or value.lower() != b"chunked":
                raise self._refusal(400, "Bad Request: Transfer-Encoding must be one `chunked`")
            self._flags |= _CHUNKED | _HAS_BODY
            # Over-approximates "a tab in this field": any tab in a chunk of the head.
            if b"\t" in self._data:
                self._flags |= _TAB_SEEN
        elif kind == _K_EXPECT:
            if value.lower() == b"100-continue":
                self._flags |= _EXPECT_CONTINUE
        elif kind == _K_UPGRADE:
            self._flags |= _UPGRADE
        else:
            raise self._refusal(400, "Bad Request: underscore in a framing header name")

    def _trailer_field(self, name: bytes) -> None:
        """A field of a chunked body's trailer section: checked, then ignored.

        No field this server reads may be merged into the header section (RFC 9110,
        6.5.1), so none is; framing and routing fields there are refused outright, as a
        front end that merged them would frame or route the request differently.
        """
        kind = _KINDS.get(name)
        if kind is None and len(name) in _WATCHED_LENGTHS:
            kind = _KINDS_LOWER.get(name.lower())
        if kind is not None and kind in _FRAMING_OR_ROUTING:
            raise self._refusal(400, "Bad Request: framing or routing field in a trailer")

    def on_headers_complete(self) -> None:
        self._unparsed = -1
        if self._flags & _CHUNKED:
            self._trailer = 0
        self._version = version = self._parser.get_http_version()
        if version == "1.1":
            if self._hosts == 0:
                # RFC 9112, 3.2: a server MUST respond 400 to HTTP/1.1 without Host.
                raise self._refusal(400, "Bad Request: missing Host header")
        elif version != "1.0":
            raise self._refusal(400, "Bad Request: unsupported HTTP version")
        elif self._line:
            # The head began in an earlier read: its request line may be cut there.
            head = self._line + self._data[: self._limits.max_request_line + _PROTOCOL_NAME]
            if _foreign_protocol(head, self._url):
                raise self._refusal(400, "Bad Request: not an HTTP request")
        elif len(self._data) <= _FOREIGN_SCAN and _foreign_protocol(self._data, self._url):
            # llhttp also parses RTSP/1.0 and ICE/1.0 request lines, reporting "1.0".
            # The scan is bounded so that pipelined HTTP/1.0 cannot make it quadratic.
            raise self._refusal(400, "Bad Request: not an HTTP request")
        if self._flags:
            self._check_rare(self._flags, version)

    def _check_rare(self, flags: int, version: str) -> None:
        if flags & _FOREIGN_SEEN:
            raise self._refusal(400, "Bad Request: not an HTTP request")
        if flags & _CHUNKED:
            if version == "1.0":
                # RFC 9112, 6.1: Transfer-Encoding in HTTP/1.0 means a broken framing.
                raise self._refusal(400, "Bad Request: Transfer-Encoding in HTTP/1.0")
            if flags & _TAB_SEEN:
                raise self._refusal(400, "Bad Request: tab in a chunked request head")
        if flags & _EXPECT_CONTINUE and flags & _HAS_BODY and version == "1.1":
            transport = self._transport
            # RFC 9110, 10.1.1: only when no earlier answer is still owed.
            if not self._pending and transport is not None:
                transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._limits.max_body_bytes:
            raise self._refusal(413, "Content Too Large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        # Decide first, then look up: the lane answers only what it can answer in
        # full and keeps the connection open; everything else takes the full path.
        if (
            self._may_take_lane()
            and not self._flags
            and self._if_none_match is None
            and self._version == "1.1"
            and parser.get_method() == b"GET"
            and parser.should_keep_alive()
        ):
            wire = self._fast(self._url)  # type: ignore[misc]
            if wire is not None:
                self._lane_target = self._url
                self._answer_fast(wire)
                return
        url = self._url
        if url[:1] != b"/":
            try:
                url = _origin_form(url)
            except HttpError as exc:
                self._raised = exc
                raise
        mark = url.find(b"?")
        if mark < 0:
            path, query = url, b""
        else:
            path, query = url[:mark], url[mark + 1 :]
        self._requests += 1
        raw_method = parser.get_method()
        method = _COMMON_METHODS.get(raw_method)
        keep_alive = (
            parser.should_keep_alive()
            and self._requests < self._limits.max_requests_per_connection
            and not self._shutting_down
            and not self._server.closing
        )
        if keep_alive and (
            self._flags or self._pending or self._writing_paused_since or method is None
        ):
            keep_alive = self._may_read_on(method)
        if method is None:
            method = raw_method.decode("ascii")
        body = b""
        if self._body:
            body = b"".join(self._body)
            self._body = []
        request = Request(
            method,
            path,
            query,
            self._headers,
            self._version,
            keep_alive,
            self._if_none_match,
            body,
        )
        self._phase = _BUSY
        if not keep_alive:
            self._shutting_down = True
        try:
            result = self._handler(request)
        except Exception:
            log.exception("handler failed for %r", path)
            result = self._server.error_response(500, "Internal Server Error")
            keep_alive = False
        if keep_alive and type(result) is bytes and result.startswith(_BAD_REQUEST):
            # Every 400 closes the connection, a handler's too (a path parameter that
            # cannot be decoded): a client that sent one may be out of step with us.
            keep_alive = False
            self._shutting_down = True
        if type(result) is bytes and not self._pending:
            self._write(result, keep_alive, request.http_version)
        else:
            self._enqueue(result, keep_alive, request.http_version)
        if not keep_alive:
            raise self._stop()

    def _may_take_lane(self) -> bool:
        """Connection state that lets the fast lane answer: it never closes one."""
        return (
            self._fast is not None
            and not self._pending
            and self._requests + 1 < self._limits.max_requests_per_connection
            and not self._shutting_down
            and not self._writing_paused_since
            and not self._server.closing
        )

    def _answer_fast(self, wire: bytes) -> None:
        self._requests += 1
        self._transport.write(wire)  # type: ignore[union-attr]
        self._phase = _IDLE
        self._deadline = self._server.now + self._limits.keepalive_timeout

    def _may_read_on(self, method: str | None) -> bool:
        """Rare cases on a keep-alive request: may the next request be read at all?"""
        if method is None:
            return False
        if self._flags & _UPGRADE and self._parser.should_upgrade():
            # RFC 9110, 7.8: we ignore the upgrade; llhttp reads nothing after it.
            return False
        limits = self._limits
        if len(self._pending) >= limits.max_pipelined - 1:
            return False
        transport = self._transport
        return not (
            self._writing_paused_since
            and transport is not None
            and transport.get_write_buffer_size() > limits.max_write_buffer
        )

    # responses

    def _enqueue(self, result: Result, keep_alive: bool, version: str) -> None:
        slot = _Slot(keep_alive, version)
        if isinstance(result, bytes):
            slot.data = result
        elif isinstance(result, Later):
            slot.task = result
            self._pending.append(slot)
            result.deliver_to(partial(self._given, slot))  # at once if already given
            return
        elif asyncio.isfuture(result):
            # A plain future needs no task of its own: its done callback writes the answer.
            slot.task = result
            result.add_done_callback(partial(self._future_done, slot))
        else:
            slot.answer = result
            slot.task = asyncio.ensure_future(self._answer_later(slot, result))
        self._pending.append(slot)

    async def _answer_later(self, slot: _Slot, result: Awaitable[bytes | Takeover]) -> None:
        """Await a handler's answer and write it from inside the same task.

        A done callback would write it one event-loop turn later, behind whatever else
        that turn brings.
        """
        try:
            data = await result
        except asyncio.CancelledError as exc:
            if self._phase is _CLOSED:
                raise  # the client left: nobody to answer
            data = self._failed(slot, exc)
        except Exception as exc:
            data = self._failed(slot, exc)
        self._ready(slot, data)

    def _given(self, slot: _Slot, outcome: bytes | BaseException) -> None:
        if self._phase is not _CLOSED:
            self._ready(
                slot, self._failed(slot, outcome) if isinstance(outcome, BaseException) else outcome
            )

    def _future_done(self, slot: _Slot, future: asyncio.Future[bytes | Takeover]) -> None:
        if future.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = future.exception()  # retrieved, so asyncio does not log it
        if self._phase is not _CLOSED:
            self._ready(slot, future.result() if error is None else self._failed(slot, error))

    def _failed(self, slot: _Slot, error: BaseException) -> bytes:
        """The answer owed for a handler that ended without one: 503 if cancelled, else 500."""
        slot.keep_alive = False
        if isinstance(error, asyncio.CancelledError):
            return self._server.error_response(503, "Service Unavailable")
        log.error("handler task failed", exc_info=error)
        return self._server.error_response(500, "Internal Server Error")

    def _ready(self, slot: _Slot, data: bytes | Takeover) -> None:
        slot.data = data
        slot.task = None
        self._flush()

    def _flush(self) -> None:
        """Write every response at the head of the queue that is ready, in order."""
        pending = self._pending
        while pending and self._phase is not _CLOSED:
            slot = pending[0]
            if slot.task is not None:
                return
            data = slot.data
            pending.popleft()
            if not isinstance(data, bytes):
                pending.clear()
                self._start_takeover(data)
                return
            self._write(data, slot.keep_alive, slot.version)

    def _start_takeover(self, takeover: Takeover) -> None:
        self._phase = _CLOSED
        self._shutting_down = True
        self._server.forget(self)
        task = asyncio.ensure_future(self._run_takeover(takeover))
        background = self._server.background
        background.add(task)
        task.add_done_callback(background.discard)

    async def _run_takeover(self, takeover: Takeover) -> None:
        transport = self._transport
        assert transport is not None
        try:
            await takeover(transport)
        finally:
            transport.close()

    def _write(self, data: bytes, keep_alive: bool, version: str) -> None:
        transport = self._transport
        assert transport is not None
        last = not self._pending and self._phase is not _READING
        if not keep_alive or (last and self._shutting_down):
            transport.write(responses.with_connection_header(data, b"close"))
            self._phase = _CLOSED
            self._pending.clear()
            transport.close()
            return
        if version == "1.0":
            data = responses.with_connection_header(data, b"keep-alive")
        transport.write(data)
        if last:
            # Nothing owed, nothing arriving: wait for the next request.
            self._phase = _IDLE
            self._deadline = self._server.now + self._limits.keepalive_timeout

    def _refuse(self, status: int, message: str) -> None:
        """Answer a bad request once, after what is owed to earlier requests, then close."""
        self._server.stats.rejected += 1
        self._shutting_down = True
        self._enqueue(self._server.error_response(status, message), False, "1.1")
        self._flush()

    def _close_after_pending(self) -> None:
        self._shutting_down = True
        if not self._pending and self._transport is not None:
            self._phase = _CLOSED
            self._transport.close()

    # server interface

    def expire(self, now: float) -> None:
        """Called by the sweeper for every connection: enforce the phase's deadline."""
        transport = self._transport
        if transport is None:
            return
        paused = self._writing_paused_since
        if paused and now - paused >= self._limits.send_timeout:
            # Also after close: a closed transport still flushes to a client that never reads.
            self._server.stats.timed_out += 1
            self._phase = _CLOSED
            self._writing_paused_since = 0.0
            transport.abort()
            return
        if self._phase is _CLOSED or now < self._deadline:
            return
        if self._phase is _IDLE:
            self._phase = _CLOSED
            transport.close()
        elif self._phase is _READING:
            self._server.stats.timed_out += 1
            self._refuse(408, "Request Timeout")

    def shutdown(self) -> None:
        """Graceful stop: idle connections close now, busy ones after what they owe."""
        self._shutting_down = True
        if self._phase is _IDLE and self._transport is not None:
            self._phase = _CLOSED
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class _Slot:
    """A response owed, in request order."""

    __slots__ = ("answer", "data", "keep_alive", "task", "version")

    def __init__(self, keep_alive: bool, version: str) -> None:
        self.keep_alive = keep_alive
        self.version = version
        self.data: bytes | Takeover = b""
        self.answer: Awaitable[bytes | Takeover] | None = None  # what `task` awaits
        self.task: asyncio.Future[Any] | Later | None = None  # None once `data` is ready

    def forget_answer(self) -> None:
        """Close a handler coroutine its task was cancelled before starting to await.

        Otherwise it would be collected unawaited, and Python warns about that.
        """
        answer = self.answer
        if inspect.iscoroutine(answer) and inspect.getcoroutinestate(answer) == "CORO_CREATED":
            answer.close()


def _foreign_protocol(data: bytes, target: bytes) -> bool:
    """Whether a chunk holds an RTSP or ICE request line for this request target.

    A head that spans reads is scanned over the bytes kept from them (`_line`), so a
    line cut anywhere is refused as when it comes whole.
    """
    return target + b" RTSP/" in data or target + b" ICE/" in data


def _origin_form(target: bytes) -> bytes:
    """Path and query of an absolute-form target (RFC 9112, 3.2.2); others are refused."""
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        raise HttpError(400, "Bad Request: invalid request target")
    end = len(rest)
    for mark in (b"/", b"?"):
        found = rest.find(mark)
        if 0 <= found < end:
            end = found
    authority = rest[:end]
    # RFC 9110, 4.2.4: userinfo in an http(s) URI is an error (phishing, cache keys).
    if not authority or _HOST.fullmatch(authority) is None:
        raise HttpError(400, "Bad Request: invalid authority in request target")
    rest = rest[end:]
    return rest if rest[:1] == b"/" else b"/" + rest


@dataclass(slots=True)
class ServerStats:
    accepted: int = 0
    refused: int = 0
    rejected: int = 0
    timed_out: int = 0


class HttpServer:
    """Listens, owns the connections, runs the ticker; `handler` answers requests."""

    def __init__(
        self,
        handler: Handler,
        limits: Limits | None = None,
        *,
        fast: FastLane | None = None,
    ) -> None:
        self.handler = handler
        self.fast = fast
        self.limits = limits or Limits()
        self.connections: set[HttpProtocol] = set()
        self.background: set[asyncio.Future[Any]] = set()
        self.stats = ServerStats()
        self.closing = False
        self.now = time.monotonic()
        self._listeners: list[_Listener] = []
        self._ticker: asyncio.TimerHandle | None = None
        self._tick_listeners: list[Callable[[float], None]] = []
        self._drained = asyncio.Event()
        self._port = 0

    @property
    def port(self) -> int:
        """The port bound by the first `start` (useful with port 0)."""
        return self._port

    def on_tick(self, listener: Callable[[float], None]) -> None:
        """Call `listener(now)` on every tick (a few times a second)."""
        self._tick_listeners.append(listener)

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        backlog: int = 4096,
    ) -> None:
        """Listen on `host:port` (or on `sock`, already bound) and serve."""
        if sock is None:
            sock = bound_socket(host, port, reuse_port=reuse_port)
        sock.listen(backlog)
        sock.setblocking(False)
        listener = _Listener(self, sock, batch=max(1, backlog))
        if not self._listeners:
            self._port = int(sock.getsockname()[1])
        self._listeners.append(listener)
        listener.start()
        if self._ticker is None:
            self._tick()

    def _tick(self) -> None:
        self.now = now = time.monotonic()
        responses.DATE.refresh()
        for conn in list(self.connections):
            conn.expire(now)
        for listener in self._tick_listeners:
            listener(now)
        loop = asyncio.get_running_loop()
        self._ticker = loop.call_later(self.limits.tick_interval(), self._tick)

    def forget(self, conn: HttpProtocol) -> None:
        """A connection is closing; the last one to go ends a graceful shutdown."""
        self.connections.discard(conn)
        if self.closing and not self.connections:
            self._drained.set()

    def error_response(self, status: int, message: str) -> bytes:
        return responses.text(status, message)

    def overloaded_response(self) -> bytes:
        return responses.text(
            503,
            "Service Unavailable: too many connections",
            headers=[(b"Retry-After", b"1"), (b"Connection", b"close")],
        )

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish, close idle connections.

        Connections still open after `grace` seconds are aborted.
        """
        self.closing = True
        for listener in self._listeners:
            listener.close()
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace)
        for conn in list(self.connections):
            conn.abort()
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self.background):
            task.cancel()


# A process out of file descriptors cannot accept; pause rather than spin on it.
ACCEPT_RETRY_DELAY: Final = 0.1
_ACCEPT_RESOURCE_ERRORS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)


class _Listener:
    """A listening socket drained at each readiness, each connection handed to uvloop.

    libuv accepts one connection per event loop iteration (libuv PR 3696, 2022): while
    each iteration serves a thousand busy connections, a burst of new ones would wait an
    iteration each, seconds in all. This accepts until the queue is empty, up to the
    listen backlog (`batch`): what can have been waiting when the readiness fired, so a
    flood of new connections cannot hold the loop forever. (With a bound of 512, 10,000 new
    connections at 35k req/s waited over several iterations: see bench/README.md.)
    """

    def __init__(self, server: HttpServer, sock: socket.socket, *, batch: int) -> None:
        self._server = server
        self._protocol = partial(HttpProtocol, server)
        self._sock = sock
        self._batch = batch  # connections accepted per readiness, at most
        self._loop = asyncio.get_running_loop()
        self._closed = False

    def start(self) -> None:
        self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    def _accept(self) -> None:
        for _ in range(self._batch):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _ACCEPT_RESOURCE_ERRORS:
                    raise
                log.warning("cannot accept connections: %s; retrying shortly", exc)
                self._loop.remove_reader(self._sock.fileno())
                self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume)
                return
            conn.setblocking(False)
            server = self._server
            # Eager: the transport exists when this returns, and its `connection_made`
            # runs at the next turn, not the one after. Among 10,000 busy connections a
            # turn can take a second (libuv polls up to 48 times before it runs the ready
            # callbacks): each turn saved comes off a new client's first answer.
            task = eager.start(
                self._loop,
                self._loop.connect_accepted_socket(self._protocol, sock=conn),
                name="daw-popular connection set-up",
            )
            server.background.add(task)
            task.add_done_callback(_connection_set_up(server, conn))

    def _resume(self) -> None:
        if not self._closed:
            self.start()


def _connection_set_up(
    server: HttpServer, conn: socket.socket
) -> Callable[[asyncio.Future[Any]], None]:
    def done(task: asyncio.Future[Any]) -> None:
        server.background.discard(task)
        if task.cancelled() or task.exception() is not None:
            # The peer left before its transport existed (or we are shutting down).
            conn.close()

    return done


def bound_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to the first address `host` resolves to (passive)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
