"""A finished answer for one request path, kept as pre-built bytes for the cache-hit path.

The wire bytes carry `Date` and `Age`, which change every second, so they are
rebuilt at most once a second per answer, on first use in that second; every
other hit is one comparison and the write of bytes that already exist.

The body is kept only inside the wire bytes, and the 304 head is built when a
conditional request first needs it: a cached answer costs its bytes once, which
is most of what a cached user costs.
"""

from __future__ import annotations

import time
from typing import Final

from . import responses
from .conditional import etag_for, none_match
from .server import Request

# Compiled, a C static rather than an attribute lookup on the module at each call.
_MONOTONIC: Final = time.monotonic
_NOSNIFF: Final = (b"X-Content-Type-Options", b"nosniff")

# Status line, Server, Date, Content-Type, Cache-Control, Age, the validator (ETag, or
# nosniff for an answer without one), Content-Length, then the body: `responses.head`'s
# order.
_WIRE: Final = (
    b"%sServer: "
    + responses.SERVER_NAME
    + b"\r\n%sContent-Type: %s\r\nCache-Control: %s\r\nAge: %d\r\n%s: %s\r\n"
    + b"Content-Length: %d\r\n\r\n%s"
)


class Reply:
    """Status, body and caching headers of one answer; renders itself for a request."""

    __slots__ = (
        "_head_len",
        "_not_modified",
        "_second",
        "_wire",
        "born",
        "cache_control",
        "content_type",
        "etag",
        "status",
    )

    def __init__(
        self,
        status: int,
        body: bytes,
        *,
        content_type: bytes,
        cache_control: bytes,
        born: float,
        etag: bytes | None = None,
    ) -> None:
        self.status = status
        self.content_type = content_type
        self.cache_control = cache_control
        self.etag = etag
        self.born = born  # time.monotonic() of the oldest data in the answer, for Age
        self._second = -1
        # Until the first render the wire holds the body alone (a head of length 0).
        self._wire = body
        self._head_len = 0
        self._not_modified = b""

    # Made as `Reply(...)`, not `cls(...)`: compiled, that is a native call, where a call
    # through `cls` parses its keyword arguments at run time (2% of a composed answer).

    @classmethod
    def ok(cls, body: bytes, *, cache_control: bytes, born: float) -> Reply:
        return Reply(
            200,
            body,
            content_type=responses.JSON,
            cache_control=cache_control,
            born=born,
            etag=etag_for(body),
        )

    @classmethod
    def not_found(cls, message: str, *, cache_control: bytes, born: float) -> Reply:
        return Reply(
            404,
            message.encode("utf-8"),
            content_type=responses.TEXT,
            cache_control=cache_control,
            born=born,
        )

    @property
    def body(self) -> bytes:
        """The body bytes (a copy cut from the wire bytes)."""
        return self._wire[self._head_len :]

    @property
    def size(self) -> int:
        """Bytes this answer holds in memory, roughly, for the cache's byte bound."""
        return 2 * (len(self._wire) - self._head_len) + 400

    def wire(self) -> bytes:
        """The whole answer to a plain GET, as it goes on the wire."""
        if self._second != responses.DATE.second:
            self._render()
        return self._wire

    def answer(self, request: Request) -> bytes:
        """The bytes for this request: 200/404, 304 when the ETag matches, or HEAD."""
        wire = self.wire()
        inm = request.if_none_match
        if inm is not None and self.etag is not None and none_match(inm, self.etag):
            if not self._not_modified:
                # RFC 9110, 15.4.5: a 304 carries the validators and caching headers only.
                self._not_modified = responses.head(304, self._headers(), content_length=None)
            return self._not_modified
        if request.method == "HEAD":
            return wire[: self._head_len]
        return wire

    def _headers(self) -> list[tuple[bytes, bytes]]:
        age = b"%d" % max(0, int(_MONOTONIC() - self.born))
        headers = [(b"Cache-Control", self.cache_control), (b"Age", age)]
        if self.etag is not None:
            headers.append((b"ETag", self.etag))
        else:
            headers.append(_NOSNIFF)
        return headers

    def _render(self) -> None:
        # The bytes `responses.head(status, self._headers(), ...)` + body would give
        # (tests/test_reply.py holds them equal), in one formatting: 6k instructions
        # rather than 10k, on every answer composed and once a second per answer served.
        body = self._wire[self._head_len :]
        validator = _NOSNIFF if self.etag is None else (b"ETag", self.etag)
        wire = _WIRE % (
            responses.STATUS_LINES[self.status],
            responses.DATE.line,
            self.content_type,
            self.cache_control,
            max(0, int(_MONOTONIC() - self.born)),
            validator[0],
            validator[1],
            len(body),
            body,
        )
        self._wire = wire
        self._head_len = len(wire) - len(body)
        self._not_modified = b""
        self._second = responses.DATE.second
