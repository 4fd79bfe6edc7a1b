"""The limit server: uvloop + httptools answering every request with the same pre-built bytes.

Nothing written in Python serves a response faster on one core, so the service's
figures are reported as a fraction of this server's, measured in the same run.
It keeps connections alive unless the client asks otherwise and does nothing else:
no routing, no headers read, no timers.

    python -m bench.limit_server --port 8081 --response-file answer.http
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import httptools
import uvloop


class LimitProtocol(asyncio.Protocol):
    """One connection: parse, and write the fixed bytes at each complete request."""

    __slots__ = ("_parser", "_response", "_transport")

    def __init__(self, response: bytes) -> None:
        self._response = response
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.close()

    def on_message_complete(self) -> None:
        transport = self._transport
        if transport is None:
            return
        transport.write(self._response)
        if not self._parser.should_keep_alive():
            transport.close()


async def start(response: bytes, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Listen and answer every request with `response`; the caller closes the server."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: LimitProtocol(response), host, port, backlog=4096, reuse_address=True
    )


async def serve_until_stopped(server: asyncio.Server, what: str) -> None:
    """Say where `server` listens, serve until SIGTERM or SIGINT, then close it."""
    host, port = server.sockets[0].getsockname()[:2]
    print(f"{what} listening on http://{host}:{port}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


async def _serve(response: bytes, host: str, port: int) -> None:
    await serve_until_stopped(await start(response, host, port), "limit server")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limit_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--response-file", type=Path, required=True, help="complete HTTP response to replay"
    )
    args = parser.parse_args(argv)
    uvloop.run(_serve(args.response_file.read_bytes(), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
