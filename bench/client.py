"""A small asyncio HTTP/1.1 client for the bench: loading many paths, and the stampede."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Sequence

from .procs import content_length

_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close\r\n", re.IGNORECASE)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one response with a Content-Length."""
    status, body, _ = await _read(reader)
    return status, body


async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the server closes the connection after it."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    body = await reader.readexactly(content_length(head[:-4]))
    return status, body, _CLOSE.search(head) is not None


def _request(path: str, port: int) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


async def load(
    port: int,
    paths: Sequence[str],
    *,
    connections: int = 32,
    progress: Callable[[int], None] | None = None,
) -> Counter[int]:
    """GET every path once over `connections` keep-alive connections; count the statuses."""
    statuses: Counter[int] = Counter()
    queue = iter(paths)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for path in queue:
                writer.write(_request(path, port))
                status, _, closing = await _read(reader)
                statuses[status] += 1
                if progress is not None:
                    progress(statuses.total())
                if closing:
                    # The server's requests-per-connection limit: carry on over a new one.
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(max(1, min(connections, len(paths))))))
    return statuses


async def stampede(port: int, path: str, clients: int) -> list[tuple[int, bytes]]:
    """Open `clients` connections, then send one request on each in one go; the answers."""
    streams = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(clients))
    )
    request = _request(path, port)
    # No await between the writes: every request leaves before any answer can come back.
    for _, writer in streams:
        writer.write(request)
    try:
        return list(await asyncio.gather(*(read_response(reader) for reader, _ in streams)))
    finally:
        for _, writer in streams:
            writer.close()
