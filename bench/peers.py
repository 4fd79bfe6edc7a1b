"""Other servers serving the bytes of the service's cached answer, for the `peers` scenario.

Each answers every request with the status, headers and body of one real response of
the service (the hot scenario's), the way its users would write it:

- `uvicorn`: a raw ASGI app on uvicorn with uvloop and httptools, no access log, its
  own `server` header off;
- `aiohttp`: one catch-all route of an `aiohttp.web.Application`, on uvloop;
- `granian`: a raw RSGI app (granian's own interface, its fastest) on one worker;
- Varnish is not here: it serves the answer from its cache, fetched from the limit
  server, which replays the service's bytes (`procs.varnish`, `scenarios.peers`).

A server adds its own `Date` (and aiohttp and granian their `Server`), and the length
and connection headers are each server's own; every other header and the body are the
service's. Each is a well-kept library's ordinary use, not tuned beyond its options.

    python -m bench.peers uvicorn --port 8083 --response-file answer.http
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

# Set by the server itself (or describing the connection, which is the server's).
OWN_HEADERS = frozenset({b"date", b"server", b"content-length", b"connection", b"keep-alive"})


class Answer:
    """A complete HTTP/1.1 response, split into what an application hands its server."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, raw: bytes) -> None:
        head, sep, body = raw.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("not an HTTP response: no end of head")
        status_line, *lines = head.split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.x status line: {status_line!r}")
        self.status = int(rest.split(b" ", 1)[0])
        self.headers: list[tuple[bytes, bytes]] = []
        for line in lines:
            name, colon, value = line.partition(b":")
            if not colon:
                raise ValueError(f"not a header line: {line!r}")
            if name.strip().lower() not in OWN_HEADERS:
                self.headers.append((name.strip().lower(), value.strip()))
        self.body = body


ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[dict[str, Any]], Awaitable[None]]],
    Awaitable[None],
]


def asgi_app(answer: Answer) -> ASGIApp:
    # An ASGI server sends a body without a length chunked: the length is the app's.
    headers = [*answer.headers, (b"content-length", b"%d" % len(answer.body))]
    start = {"type": "http.response.start", "status": answer.status, "headers": headers}
    body = {"type": "http.response.body", "body": answer.body}

    async def app(
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        await send(start)
        await send(body)

    return app


class RSGIApp:
    """granian's RSGI interface: one `response_bytes` per request."""

    def __init__(self, answer: Answer) -> None:
        self._status = answer.status
        self._headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.headers]
        self._body = answer.body

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        protocol.response_bytes(status=self._status, headers=self._headers, body=self._body)


def _uvicorn(answer: Answer, port: int) -> None:
    import uvicorn

    uvicorn.run(
        asgi_app(answer),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


def _aiohttp(answer: Answer, port: int) -> None:
    import uvloop
    from aiohttp import web

    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in answer.headers}

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(status=answer.status, body=answer.body, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


def _granian(response_file: Path, port: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels

    # granian imports its target by name in its worker process: the answer goes there
    # by the environment, which the worker inherits.
    os.environ["BENCH_PEER_RESPONSE"] = str(response_file)
    Granian(
        "bench.peers:rsgi_target",
        address="127.0.0.1",
        port=port,
        interface=Interfaces.RSGI,
        http=HTTPModes.http1,
        workers=1,
        websockets=False,
        log_level=LogLevels.warning,
        factory=True,
    ).serve()


def rsgi_target() -> RSGIApp:
    """granian's factory: the RSGI app for the answer named in the environment."""
    return RSGIApp(Answer(Path(os.environ["BENCH_PEER_RESPONSE"]).read_bytes()))


PEERS = ("uvicorn", "aiohttp", "granian")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    p.add_argument("peer", choices=PEERS)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--response-file", type=Path, required=True)
    args = p.parse_args(argv)
    answer = Answer(args.response_file.read_bytes())
    if args.peer == "uvicorn":
        _uvicorn(answer, args.port)
    elif args.peer == "aiohttp":
        _aiohttp(answer, args.port)
    else:
        _granian(args.response_file, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
