"""The server core inside the running service: isolation between users, graceful stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time

import pytest
from support import free_port
from test_server import parse_responses

from daw_popular import app as service_app
from daw_popular.app import start
from daw_popular.config import Settings
from daw_popular.sim import Store, start_simulator

GET = "GET /api/recent_purchases/{} HTTP/1.1\r\nHost: t\r\n{}\r\n"


async def fetch(port: int, raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw + b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    return parse_responses(data)[:-1]


def usernames(store: Store) -> list[str]:
    return [user["username"] for user in store.users]


async def test_pipelined_users_come_back_in_order_each_with_its_own_answer() -> None:
    """The upstream answers out of order (jittered latency); answers still match users."""
    store = Store.generate(seed=6)
    names = usernames(store)
    sim = await start_simulator(store, faults=["*:latency=20~20"], seed=1)
    truth_app, truth = await start(Settings(port=0, upstream=sim.url))
    app, server = await start(Settings(port=0, upstream=sim.url))
    try:
        # The truth: each user asked alone, one connection each, on another service.
        alone = {}
        for name in names:
            ((status, headers, body),) = await fetch(truth.port, GET.format(name, "").encode())
            alone[name] = (status, headers["etag"], body)
        # Cold cache: every request waits on jittered upstream calls, finishing out of order.
        order = names * 3
        raw = b"".join(GET.format(n, "").encode() for n in reversed(order))
        got = await fetch(server.port, raw)
        assert [(s, h["etag"], b) for s, h, b in got] == [alone[n] for n in reversed(order)]
    finally:
        for running, assembled in ((server, app), (truth, truth_app)):
            await running.shutdown(1.0)
            await assembled.close()
        await sim.close()


async def test_headers_outside_the_key_never_change_body_or_etag_and_etags_stay_per_user() -> None:
    store = Store.generate(seed=7)
    first, second = usernames(store)[:2]
    sim = await start_simulator(store)
    app, server = await start(Settings(port=0, upstream=sim.url))
    try:
        extras = [
            "",
            "X-Forwarded-Host: evil.example\r\n",
            "Cookie: session=other-user\r\n",
            "Accept-Language: fr-CH, fr;q=0.9\r\n",
            f"X-Random-{time.time_ns()}: {os.getpid()}\r\n",
            f"Forwarded: host=evil\r\nX-Original-URL: /api/recent_purchases/{second}\r\n",
        ]
        raw = b"".join(GET.format(first, extra).encode() for extra in extras)
        got = await fetch(server.port, raw)
        assert len({(s, h["etag"], b) for s, h, b in got}) == 1
        ((_, other_headers, _),) = await fetch(server.port, GET.format(second, "").encode())
        conditional = f"If-None-Match: {other_headers['etag']}\r\n"
        ((status, headers, _),) = await fetch(server.port, GET.format(first, conditional).encode())
        assert status == 200 and headers["etag"] == got[0][1]["etag"] != other_headers["etag"]
        # Its own ETag does give a 304: the check above is not vacuous.
        own = f"If-None-Match: {got[0][1]['etag']}\r\n"
        (((status, _, _),)) = await fetch(server.port, GET.format(first, own).encode())
        assert status == 304
    finally:
        await server.shutdown(1.0)
        await app.close()
        await sim.close()


async def test_sigterm_under_load_finishes_inflight_refuses_new_and_exits_0() -> None:
    """A real `serve` process: in-flight answers arrive, then the port closes, exit 0."""
    store = Store.generate(seed=8)
    names = usernames(store)
    sim = await start_simulator(store, faults=["*:latency=400"])
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daw_popular",
        "serve",
        "--port",
        str(port),
        "--upstream",
        sim.url,
        "--shutdown-grace",
        "5",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        inflight = [
            asyncio.create_task(fetch(port, GET.format(name, "").encode())) for name in names
        ]
        await asyncio.sleep(0.15)  # all sent, all waiting on the slow upstream
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            refused = False
        except OSError:
            refused = True
        answers = await asyncio.gather(*inflight)
        assert [len(a) for a in answers] == [1] * len(names)
        assert {a[0][0] for a in answers} <= {200, 404}
        assert refused
        assert await asyncio.wait_for(proc.wait(), 6) == 0
        assert time.monotonic() - began < 5
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await sim.close()


async def test_serve_has_its_signal_handlers_before_it_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that can connect can also send SIGTERM: it must find the handler there."""
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    async def start(settings: Settings, **options: object) -> None:
        seen.append(signal.getsignal(signal.SIGTERM))
        raise RuntimeError("stop before listening")

    monkeypatch.setattr(service_app, "start", start)
    monkeypatch.setattr(service_app, "tune_gc", lambda: None)
    try:
        with pytest.raises(RuntimeError, match="stop before listening"):
            await service_app.serve(Settings(port=0))
        assert seen and seen[0] not in (before, signal.SIG_DFL, None)
        # Left as asyncio leaves it (the default), whatever was there before.
        assert signal.getsignal(signal.SIGTERM) in (before, signal.SIG_DFL)
    finally:
        signal.signal(signal.SIGTERM, before)  # coverage's own handler, under --cov
