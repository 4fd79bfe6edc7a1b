"""Micro-benchmark of the server core's per-request cost: bytes in, pre-built bytes out.

Feeds keep-alive requests to one `HttpProtocol` over a transport that discards
writes, so the figure is parsing, checks and dispatch only (no sockets, no loop).
Run: `python bench/server_hot_path.py`; compare runs made on the same machine.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from daw_popular import responses
from daw_popular.server import HttpProtocol, HttpServer, Limits, Request, Result

BODY = responses.response(200, b"x" * 900, content_type=responses.JSON)

REQUESTS = {
    "wrk (Host only)": (
        b"GET /api/recent_purchases/Teresa59 HTTP/1.1\r\nHost: localhost:8080\r\n\r\n"
    ),
    "browser (10 headers)": (
        b"GET /api/recent_purchases/Teresa59 HTTP/1.1\r\n"
        b"Host: shop.example\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
        b"Accept: application/json\r\n"
        b"Accept-Language: en-GB,en;q=0.5\r\n"
        b"Accept-Encoding: gzip, deflate, br\r\n"
        b"Referer: https://shop.example/\r\n"
        b"Connection: keep-alive\r\n"
        b"Cookie: session=abcdef0123456789\r\n"
        b'If-None-Match: "abc"\r\n'
        b"Cache-Control: max-age=0\r\n\r\n"
    ),
}


class NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return None

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def handler(request: Request) -> Result:
    return BODY


def measure(raw: bytes, count: int = 100_000, rounds: int = 7) -> tuple[float, float]:
    """Best-of-rounds nanoseconds per request, one request per `data_received`."""
    server = HttpServer(handler, Limits(max_requests_per_connection=1 << 62))
    protocol = HttpProtocol(server)
    protocol.connection_made(NullTransport())  # type: ignore[arg-type]
    feed = protocol.data_received
    results = []
    for _ in range(rounds):
        began = time.perf_counter_ns()
        for _ in range(count):
            feed(raw)
        results.append((time.perf_counter_ns() - began) / count)
    return min(results), statistics.median(results)


async def main() -> None:
    for name, raw in REQUESTS.items():
        best, median = measure(raw)
        print(f"{name:22} best {best:7.0f} ns/request   median {median:7.0f} ns")


if __name__ == "__main__":
    asyncio.run(main())
