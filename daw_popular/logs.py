"""Logging set-up (plain or JSON lines) and the access log, buffered and written once a tick.

The access log is a wrapper around the request handler, installed only when it is
on: when off, the request path has no trace of it, not even a flag test. When on,
a request costs a clock read and one formatted line appended to a list; the lines
leave in one write per server tick (and when the buffer fills), not one per request.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Awaitable
from functools import partial
from typing import IO, Any, Final

import orjson

from . import responses
from .server import Handler, HttpServer, Later, Request, Result, Takeover

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"

# Lines kept before a write even between ticks: bounds memory under a burst.
_MAX_BUFFERED: Final = 1024


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode("utf-8")


def configure(level: str = "info", *, json: bool = False, stream: IO[str] | None = None) -> None:
    """Root logging to stderr at `level`, as text or JSON lines; replaces earlier set-up."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


class AccessLog:
    """A `Handler` that answers through `handler` and logs one line per answer."""

    __slots__ = ("_handler", "_json", "_lines", "_second", "_stamp", "_stream")

    def __init__(self, handler: Handler, *, json: bool = False, stream: IO[bytes] | None = None):
        self._handler = handler
        self._json = json
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._lines: list[bytes] = []
        self._second = -1
        self._stamp = ""

    def attach(self, server: HttpServer) -> None:
        server.on_tick(self._on_tick)

    def __call__(self, request: Request) -> Result:
        started = time.perf_counter()
        result = self._handler(request)
        if type(result) is bytes:
            self._record(request, result, 0.0)
            return result
        if isinstance(result, Later):
            relay = Later()
            result.deliver_to(partial(self._relay, request, started, relay))
            return relay
        return self._awaited(request, result, started)  # type: ignore[arg-type]

    def _relay(
        self, request: Request, started: float, relay: Later, outcome: bytes | BaseException
    ) -> None:
        if isinstance(outcome, BaseException):
            relay.fail(outcome)
            return
        self._record(request, outcome, time.perf_counter() - started)
        relay.give(outcome)

    async def _awaited(
        self, request: Request, result: Awaitable[bytes | Takeover], started: float
    ) -> bytes | Takeover:
        answer = await result
        if isinstance(answer, bytes):
            self._record(request, answer, time.perf_counter() - started)
        return answer

    def _record(self, request: Request, wire: bytes, seconds: float) -> None:
        second = responses.DATE.second
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        path = request.path.decode("ascii", "backslashreplace")
        if request.query:
            path += "?" + request.query.decode("ascii", "backslashreplace")
        status = wire[9:12].decode("ascii")
        if self._json:
            line = orjson.dumps(
                {
                    "time": self._stamp,
                    "method": request.method,
                    "path": path,
                    "status": int(status),
                    "bytes": len(wire),
                    "duration_ms": round(seconds * 1000, 3),
                    "pid": os.getpid(),
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
        else:
            line = (
                f'{self._stamp} "{request.method} {path} HTTP/{request.http_version}" '
                f"{status} {len(wire)} {seconds * 1000:.3f}ms\n"
            ).encode()
        self._lines.append(line)
        if len(self._lines) >= _MAX_BUFFERED:
            self.flush()

    def _on_tick(self, now: float) -> None:
        if self._lines:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines now."""
        lines, self._lines = self._lines, []
        try:
            self._stream.write(b"".join(lines))
            self._stream.flush()
        except (OSError, ValueError):
            # A closed or broken stdout must not take the service down with it.
            pass
