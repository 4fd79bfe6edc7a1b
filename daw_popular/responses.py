"""HTTP/1.1 response bytes: status lines and fixed headers built once, `Date` once a second.

Every response leaves the server as one `bytes` object. Builders here are for the
cold paths (errors, freshly composed answers); the hot path writes bytes that were
built by these functions earlier and kept in a cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

Header = tuple[bytes, bytes]

SERVER_NAME: Final = b"daw-popular"

# "HTTP/1.1 404 Not Found\r\n" for every status the stdlib knows, built at import.
STATUS_LINES: Final[dict[int, bytes]] = {
    int(s): b"HTTP/1.1 %d %s\r\n" % (int(s), s.phrase.encode("latin-1")) for s in HTTPStatus
}

JSON: Final = b"application/json"
TEXT: Final = b"text/plain; charset=utf-8"


class DateHeader:
    """The `Date` header line (RFC 9110, 6.6.1), recomputed at most once a second."""

    __slots__ = ("line", "second")

    def __init__(self) -> None:
        self.second = -1
        self.line = b""
        self.refresh()

    def refresh(self, now: float | None = None) -> bool:
        """Recompute for the current wall-clock second; True when it changed."""
        second = int(time.time() if now is None else now)
        if second == self.second:
            return False
        self.second = second
        self.line = b"Date: %s\r\n" % formatdate(second, usegmt=True).encode("ascii")
        return True


DATE: Final = DateHeader()


def head(
    status: int,
    headers: Iterable[Header] = (),
    *,
    content_length: int | None,
    content_type: bytes | None = None,
) -> bytes:
    """Status line and header block, ending with the blank line.

    `content_length=None` leaves the field out (a 304, RFC 9110, 15.4.5).
    """
    parts = [STATUS_LINES[status], b"Server: ", SERVER_NAME, b"\r\n", DATE.line]
    if content_type is not None:
        parts += (b"Content-Type: ", content_type, b"\r\n")
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if content_length is not None:
        parts += (b"Content-Length: ", b"%d" % content_length, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def response(
    status: int,
    body: bytes = b"",
    *,
    content_type: bytes | None = None,
    headers: Iterable[Header] = (),
    head_only: bool = False,
) -> bytes:
    """One complete response. `head_only` answers HEAD: same headers, no body."""
    start = head(status, headers, content_length=len(body), content_type=content_type)
    if head_only or not body:
        return start
    return start + body


def text(
    status: int,
    message: str,
    *,
    headers: Iterable[Header] = (),
    head_only: bool = False,
) -> bytes:
    """A plain-text answer; `nosniff` because the message may echo user input."""
    all_headers = [(b"X-Content-Type-Options", b"nosniff"), *headers]
    return response(
        status,
        message.encode("utf-8"),
        content_type=TEXT,
        headers=all_headers,
        head_only=head_only,
    )


def with_connection_header(wire: bytes, value: bytes) -> bytes:
    """Insert `Connection: value` into an already built response.

    Rare path (closing, or HTTP/1.0 keep-alive), so cached bytes stay free of it.
    """
    end = wire.find(b"\r\n\r\n")
    if end < 0:
        raise ValueError("not an HTTP response head")
    return b"%s\r\nConnection: %s%s" % (wire[:end], value, wire[end:])
