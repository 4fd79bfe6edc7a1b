"""The simulator over HTTP: the real upstream's answers, per-route counters, injected faults.

`/__sim/...` is the control surface (the real program would answer 404 there):
`GET /__sim/stats`, `POST /__sim/stats/reset`, `GET|POST|DELETE /__sim/faults`.
Every API request is counted under its route before any fault is applied, so a
test can assert how many upstream calls a client made, failed ones included.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from .. import responses
from ..server import HttpServer, Later, Limits, Request, Result, Takeover
from . import faults as kinds
from .faults import Fault, FaultPlan, FaultSpecError
from .routes import ROUTES, Answer, answer
from .store import Store

# The real program runs on Node's http server: 16 KiB of request head, 5 s keep-alive.
LIMITS = Limits(max_request_line=16384, max_header_bytes=16384, max_head_bytes=16384)

_JSON = responses.JSON
_CONTROL = b"/__sim/"
_RESET_PAUSE = 0.02  # lets the client read the first half before the reset arrives


class Simulator:
    """Answers requests from a `Store`; counts them per route; applies the fault plan."""

    def __init__(self, store: Store, faults: Iterable[Fault] = (), seed: int | None = None) -> None:
        self.store = store
        self.plan = FaultPlan(faults, seed)
        self._counts = dict.fromkeys(ROUTES, 0)
        self._stopping: asyncio.Event | None = None

    # in-process control

    def stats(self) -> dict[str, int]:
        """Requests per route since the start or the last reset."""
        return dict(self._counts)

    def reset_stats(self) -> None:
        for route in self._counts:
            self._counts[route] = 0

    def set_faults(self, faults: Iterable[Fault | str], seed: int | None = None) -> None:
        """Replace the fault plan; strings are parsed as fault specs."""
        parsed = [f if isinstance(f, Fault) else Fault.parse(f) for f in faults]
        self.plan = FaultPlan(parsed, seed)

    def clear_faults(self) -> None:
        self.plan = FaultPlan()

    def stop(self) -> None:
        """Release connections held by `hang` faults."""
        if self._stopping is not None:
            self._stopping.set()

    # request handling

    def handle(self, request: Request) -> Result:
        """The server's handler: plain bytes unless a fault or a quirk needs the socket."""
        if request.path.startswith(_CONTROL):
            return self._control(request)
        result = answer(self.store, request.method, request.path, request.query)
        self._counts[result.route] += 1
        if result.crash:
            return _return(_drop)
        head_only = request.method == "HEAD"
        wire = responses.response(
            result.status, result.body, content_type=result.content_type, head_only=head_only
        )
        if result.close:
            return _return(_send_and_close(wire))
        plan = self.plan
        if not plan.faults:
            return wire
        delay, fault = plan.roll(result.route)
        if fault is None:
            return _later(delay, wire) if delay else wire
        return self._faulty(result, wire, delay, fault, head_only)

    async def _faulty(
        self, result: Answer, wire: bytes, delay: float, fault: Fault | None, head_only: bool
    ) -> bytes | Takeover:
        if delay:
            await asyncio.sleep(delay)
        if fault is None:
            return wire
        kind = fault.kind
        body = result.body
        if kind == kinds.STATUS:
            message = b"Simulated upstream failure"
            return responses.response(int(fault.amount), message, content_type=responses.TEXT)
        if kind == kinds.INVALID_JSON:
            return responses.response(200, body[: max(1, len(body) // 2)], content_type=_JSON)
        if kind == kinds.WRONG_SHAPE:
            return responses.response(200, b"[%b]" % body, content_type=_JSON)
        if kind == kinds.WRONG_TYPE:
            return responses.response(200, body, content_type=b"text/html; charset=utf-8")
        if kind == kinds.HUGE:
            return responses.response(200, _padded(body, int(fault.amount)), content_type=_JSON)
        if kind == kinds.HANG:
            return self._hang(fault.amount)
        head_end = wire.find(b"\r\n\r\n") + 4
        if kind == kinds.RESET:
            return _reset(wire[: max(1, len(wire) // 2)])
        if kind == kinds.TRUNCATE:
            return _send_and_close(wire[: head_end + len(body) // 2])
        if head_only:
            return wire
        return _trickle(wire[:head_end], wire[head_end:], fault.amount / 1000.0)

    def _hang(self, seconds: float) -> Takeover:
        if self._stopping is None:
            self._stopping = asyncio.Event()
        stopping = self._stopping

        async def hang(transport: asyncio.Transport) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), seconds or None)

        return hang

    # control surface

    def _control(self, request: Request) -> bytes:
        path, method = request.path, request.method
        if path == b"/__sim/stats" and method == "GET":
            return _json(200, self.stats())
        if path == b"/__sim/stats/reset" and method == "POST":
            before = self.stats()
            self.reset_stats()
            return _json(200, before)
        if path == b"/__sim/faults":
            if method == "GET":
                return _json(200, self.plan.to_json())
            if method == "DELETE":
                self.clear_faults()
                return _json(200, self.plan.to_json())
            if method == "POST":
                return self._post_faults(request.body)
        return responses.text(404, "Not Found: no such simulator control")

    def _post_faults(self, body: bytes) -> bytes:
        try:
            doc = orjson.loads(body)
            if isinstance(doc, list):
                doc = {"faults": doc}
            if not isinstance(doc, dict) or not isinstance(doc.get("faults", []), list):
                raise FaultSpecError('expected {"faults": [...], "seed": n} or a list')
            seed = doc.get("seed")
            if seed is not None and not isinstance(seed, int):
                raise FaultSpecError("seed must be an integer")
            plan = FaultPlan([Fault.from_json(f) for f in doc.get("faults", [])], seed)
        except (orjson.JSONDecodeError, FaultSpecError) as exc:
            return responses.text(400, f"Bad Request: {exc}")
        self.plan = plan
        return _json(200, plan.to_json())


def _json(status: int, doc: Any) -> bytes:
    return responses.response(status, orjson.dumps(doc), content_type=_JSON)


def _padded(body: bytes, size: int) -> bytes:
    """The answer with a padding member, so it stays valid JSON of about `size` bytes."""
    inner = body[1:-1]
    pad = max(0, size - len(body) - 14)
    glue = b"," if inner else b""
    return b'{%b%b"padding":"%b"}' % (inner, glue, b"x" * pad)


def _later(delay: float, wire: bytes) -> Later:
    """`wire`, `delay` seconds from now: a timer gives it to the server, which writes it
    in the timer's own call. (A coroutine sleeping in a task costs twice the simulator's
    CPU per delayed answer, and that CPU, spent serially, delays a client's parallel calls
    behind each other; a future's done callback writes one event-loop turn late.)"""
    later = Later()
    asyncio.get_running_loop().call_later(delay, later.give, wire)
    return later


async def _return(takeover: Takeover) -> Takeover:
    return takeover


async def _drop(transport: asyncio.Transport) -> None:
    """The real program exits on this request: the client gets no answer at all."""


def _send_and_close(data: bytes) -> Takeover:
    async def send(transport: asyncio.Transport) -> None:
        transport.write(data)

    return send


def _reset(data: bytes) -> Takeover:
    async def reset(transport: asyncio.Transport) -> None:
        transport.write(data)
        await asyncio.sleep(_RESET_PAUSE)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    return reset


def _trickle(head: bytes, body: bytes, pause: float) -> Takeover:
    async def trickle(transport: asyncio.Transport) -> None:
        transport.write(head)
        for i in range(len(body)):
            await asyncio.sleep(pause)
            if transport.is_closing():
                return
            transport.write(body[i : i + 1])

    return trickle


@dataclass(slots=True)
class RunningSimulator:
    """A simulator listening on a socket; `close()` stops it."""

    url: str
    sim: Simulator
    server: HttpServer

    async def close(self, grace: float = 1.0) -> None:
        self.sim.stop()
        await self.server.shutdown(grace)


async def start_simulator(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    faults: Iterable[Fault | str] = (),
    seed: int | None = None,
    limits: Limits = LIMITS,
) -> RunningSimulator:
    """Start a simulator on `host:port` (0: a free port) and return it running."""
    sim = Simulator(store)
    sim.set_faults(faults, seed)
    server = HttpServer(sim.handle, limits=limits)
    await server.start(host, port)
    shown = f"[{host}]" if ":" in host else host
    return RunningSimulator(f"http://{shown}:{server.port}", sim, server)
