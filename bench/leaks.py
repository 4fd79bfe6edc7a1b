"""Leak check: 10,000 client connections aborted at random points of their requests.

Prints asyncio tasks, open file descriptors (`/proc/self/fd`) and RSS before and
after, with the server and clients in one process. Run:
`python bench/leaks.py [connections] [concurrency]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import socket
import struct
import sys

import uvloop

from daw_popular import responses
from daw_popular.routing import Route, Router
from daw_popular.server import HttpServer, Limits, Request, Result

GET = b"GET /hello/a HTTP/1.1\r\nHost: t\r\n\r\n"
SLOW = b"GET /slow/a HTTP/1.1\r\nHost: t\r\n\r\n"
BAD = b"GET /hello/a HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n"
BODY = b"GET /hello/a HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 50


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def snapshot() -> tuple[int, int, int]:
    gc.collect()
    return len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd")), rss_kib()


def hello(request: Request, name: str) -> Result:
    return responses.response(200, b"x" * 900)


async def slow(request: Request, name: str) -> bytes:
    await asyncio.sleep(0.05)
    return responses.response(200, b"late")


async def client(port: int, rng: random.Random) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    stream = b"".join(rng.choice((GET, SLOW, BAD, BODY)) for _ in range(rng.randint(1, 4)))
    writer.write(stream[: rng.randrange(len(stream) + 1)])
    if rng.random() < 0.3:
        await asyncio.sleep(rng.random() * 0.02)
    if rng.random() < 0.3:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(rng.randint(1, 2000)), 0.05)
    if rng.random() < 0.5:  # RST instead of FIN
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def main(total: int, concurrency: int) -> None:
    server = HttpServer(
        Router([Route("/hello/{x}", hello), Route("/slow/{x}", slow)]),
        Limits(keepalive_timeout=1.0, request_timeout=1.0, send_timeout=1.0),
    )
    await server.start("127.0.0.1", 0)
    rng = random.Random(10_000)
    # Warm-up, so that first-use allocations do not count as growth.
    await asyncio.gather(*(client(server.port, rng) for _ in range(200)))
    await asyncio.sleep(1.5)
    before = snapshot()
    for start in range(0, total, concurrency):
        batch = min(concurrency, total - start)
        await asyncio.gather(*(client(server.port, rng) for _ in range(batch)))
    await asyncio.sleep(1.5)  # longer than every server deadline
    after = snapshot()
    print(f"connections        {total} (aborted at random points, half with RST)")
    print(f"server connections {len(server.connections)} left, stats {server.stats}")
    for name, b, a in zip(("tasks", "open fds", "RSS KiB"), before, after, strict=True):
        print(f"{name:18} before {b:8}  after {a:8}  growth {a - b:+}")
    await server.shutdown(1.0)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    width = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    uvloop.run(main(count, width))
