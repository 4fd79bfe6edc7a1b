"""The simulator over real sockets: answers, counters, control surface and every fault kind."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from pathlib import Path

import pytest

from daw_popular.sim.app import RunningSimulator, start_simulator
from daw_popular.sim.faults import Fault, FaultPlan, FaultSpecError
from daw_popular.sim.store import Store

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real-upstream-a.json"
DATA = json.loads(FIXTURE.read_text("utf-8"))
NAME = DATA["users"][0]["username"]


class Reply:
    """A raw HTTP reply: status line, headers, body, and how the connection ended."""

    def __init__(self, raw: bytes, error: BaseException | None) -> None:
        self.raw = raw
        self.error = error
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split()[1]) if lines[0].startswith(b"HTTP/") else 0
        self.headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])
        }

    @property
    def complete(self) -> bool:
        length = self.headers.get(b"content-length")
        return length is not None and len(self.body) == int(length)


async def request(
    sim: RunningSimulator, raw: bytes, *, wait: float = 2.0, chunks: list[float] | None = None
) -> Reply:
    """Send raw bytes, read until the server closes (or `wait` s pass), noting resets."""
    port = int(sim.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = b""
    error: BaseException | None = None
    try:
        async with asyncio.timeout(wait):
            while True:
                part = await reader.read(65536)
                if chunks is not None:
                    chunks.append(time.monotonic())
                if not part:
                    break
                data += part
    except (ConnectionResetError, TimeoutError) as exc:
        error = exc
    writer.close()
    return Reply(data, error)


def get(target: str, method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


async def started(**options: object) -> RunningSimulator:
    return await start_simulator(Store.from_fixture(FIXTURE), **options)  # type: ignore[arg-type]


async def test_answers_over_a_socket_match_the_fixture() -> None:
    sim = await started()
    try:
        reply = await request(sim, get(f"/api/purchases/by_user/{NAME}?limit=2&skip=1"))
        mine = [p for p in DATA["purchases"] if p["username"] == NAME]
        assert reply.status == 200 and reply.headers[b"content-type"] == b"application/json"
        assert json.loads(reply.body) == {"purchases": mine[1:3]}
        reply = await request(sim, get("/api/users?limit=-8"))
        assert json.loads(reply.body) == {"users": DATA["users"][:2]}
        reply = await request(sim, get("/api/users/%41" + NAME[1:]))
        assert reply.body == b"{}"
        pid = DATA["products"][3]["id"]
        reply = await request(sim, get(f"/api/products/000{pid}abc"))
        assert json.loads(reply.body) == {"product": DATA["products"][3]}
    finally:
        await sim.close()


async def test_404_and_405_carry_no_content_type_and_no_allow() -> None:
    sim = await started()
    try:
        reply = await request(sim, get("/api/purchase", "POST"))
        assert (reply.status, reply.body) == (404, b"Resource Not Found")
        assert b"content-type" not in reply.headers
        for method in ("POST", "DELETE", "HEAD"):
            reply = await request(sim, get("/api/users", method))
            assert reply.status == 405
            assert b"content-type" not in reply.headers and b"allow" not in reply.headers
            assert reply.body == (b"" if method == "HEAD" else b"405 Method Not Allowed")
    finally:
        await sim.close()


async def test_raw_non_ascii_target_is_400_and_a_crashing_target_drops() -> None:
    sim = await started()
    try:
        reply = await request(sim, b"GET /api/users/\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.status == 400 and reply.error is None  # and then closed
        reply = await request(sim, get("//x@y"))
        assert reply.raw == b"" and reply.error is None
    finally:
        await sim.close()


async def test_counters_per_route_readable_and_resettable() -> None:
    sim = await started()
    try:
        for target in ("/api/users", "/api/users/x", f"/api/purchases/by_user/{NAME}", "/x"):
            await request(sim, get(target))
        await request(sim, get("/api/products/1", "POST"))
        want = {"users": 1, "user": 1, "products": 0, "product": 1, "by_user": 1}
        want |= {"by_product": 0, "other": 1}
        assert sim.sim.stats() == want
        reply = await request(sim, get("/__sim/stats"))
        assert json.loads(reply.body) == want
        reply = await request(sim, get("/__sim/stats/reset", "POST"))
        assert json.loads(reply.body) == want
        assert set(sim.sim.stats().values()) == {0}
        await request(sim, get("/api/users"))
        sim.sim.reset_stats()
        assert sim.sim.stats()["users"] == 0
    finally:
        await sim.close()


async def test_faults_are_switched_over_http() -> None:
    sim = await started()
    try:
        spec = json.dumps({"faults": ["users:status=502", {"route": "user", "kind": "hang"}]})
        raw = (
            f"POST /__sim/faults HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Length: {len(spec)}\r\n\r\n{spec}"
        ).encode()
        reply = await request(sim, raw)
        assert reply.status == 200
        assert [f["kind"] for f in json.loads(reply.body)["faults"]] == ["status", "hang"]
        assert (await request(sim, get("/api/users"))).status == 502
        assert sim.sim.stats()["users"] == 1  # a faulted call still counts
        reply = await request(sim, get("/__sim/faults"))
        assert len(json.loads(reply.body)["faults"]) == 2
        await request(sim, get("/__sim/faults", "DELETE"))
        assert (await request(sim, get("/api/users"))).status == 200
        bad = (
            b"POST /__sim/faults HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b'Content-Length: 14\r\n\r\n["users:nope"]'
        )
        assert (await request(sim, bad)).status == 400
    finally:
        await sim.close()


async def test_latency_with_jitter_delays_every_answer() -> None:
    sim = await started(faults=["*:latency=80~10"], seed=1)
    try:
        began = time.monotonic()
        reply = await request(sim, get("/api/users"))
        assert reply.status == 200 and time.monotonic() - began >= 0.065
    finally:
        await sim.close()


async def test_a_client_leaving_during_the_latency_leaves_the_simulator_clean() -> None:
    """The delayed answer is a timer and a future: a client gone before it fires
    must not make the timer fail on the cancelled future (nothing is logged)."""
    loop = asyncio.get_running_loop()
    reports: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    sim = await started(faults=["*:latency=50"])
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", sim.server.port)
        writer.write(get("/api/users"))
        await asyncio.sleep(0.01)
        # Linger 0: the close is a reset, so the simulator drops the pending answer.
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        await asyncio.sleep(0.1)  # the timer fires after the client left
        reply = await request(sim, get("/api/users"))
        assert reply.status == 200
        assert reports == []
    finally:
        loop.set_exception_handler(None)
        await sim.close()


async def test_status_fault_answers_5xx() -> None:
    sim = await started(faults=["by_user:status@1"])
    try:
        assert (await request(sim, get(f"/api/purchases/by_user/{NAME}"))).status == 503
        assert (await request(sim, get("/api/users"))).status == 200
    finally:
        await sim.close()


async def test_hang_accepts_and_never_answers() -> None:
    sim = await started(faults=["product:hang"])
    try:
        reply = await request(sim, get("/api/products/1"), wait=0.3)
        assert reply.raw == b"" and isinstance(reply.error, TimeoutError)
    finally:
        await sim.close()


async def test_reset_mid_response() -> None:
    sim = await started(faults=["users:reset"])
    try:
        reply = await request(sim, get("/api/users"))
        assert not reply.complete
        assert isinstance(reply.error, ConnectionResetError)
    finally:
        await sim.close()


async def test_trickle_sends_the_body_byte_by_byte() -> None:
    sim = await started(faults=["user:trickle=2"])
    try:
        chunks: list[float] = []
        reply = await request(sim, get(f"/api/users/{NAME}"), chunks=chunks)
        assert reply.status == 200 and json.loads(reply.body)["user"]["username"] == NAME
        assert len(chunks) > len(reply.body) // 2
    finally:
        await sim.close()


async def test_truncated_body_ends_early() -> None:
    sim = await started(faults=["users:truncate"])
    try:
        reply = await request(sim, get("/api/users"))
        assert reply.status == 200 and reply.error is None
        assert 0 < len(reply.body) < int(reply.headers[b"content-length"])
    finally:
        await sim.close()


async def test_invalid_json_wrong_shape_and_huge_bodies() -> None:
    sim = await started(
        faults=["users:invalid_json", "products:wrong_shape", "by_user:huge=3000000"]
    )
    try:
        reply = await request(sim, get("/api/users"))
        assert reply.complete
        with pytest.raises(json.JSONDecodeError):
            json.loads(reply.body)
        reply = await request(sim, get("/api/products"))
        assert isinstance(json.loads(reply.body), list)
        reply = await request(sim, get(f"/api/purchases/by_user/{NAME}"))
        assert reply.complete and len(reply.body) >= 2_900_000
        assert isinstance(json.loads(reply.body)["purchases"], list)
    finally:
        await sim.close()


async def test_probability_and_seed_make_faults_reproducible() -> None:
    def rolls(seed: int) -> list[bool]:
        plan = FaultPlan([Fault.parse("*:status@0.5")], seed)
        return [plan.roll("users")[1] is not None for _ in range(200)]

    assert rolls(3) == rolls(3) != rolls(4)
    assert 60 < sum(rolls(3)) < 140
    sim = await started()
    try:
        sim.sim.set_faults(["users:status@0"], seed=1)
        assert (await request(sim, get("/api/users"))).status == 200
        sim.sim.clear_faults()
        assert sim.sim.plan.faults == ()
    finally:
        await sim.close()


@pytest.mark.parametrize(
    "spec", ["users", "users:explode", "nowhere:reset", "*:status=42", "*:reset@1.5", "*:latency=x"]
)
def test_bad_fault_specs_are_refused(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        Fault.parse(spec)


def test_fault_spec_parsing() -> None:
    assert Fault.parse("by_product:reset@0.3") == Fault("by_product", "reset", probability=0.3)
    assert Fault.parse("*:latency=50~10") == Fault("*", "latency", 50.0, 10.0)
    assert Fault.parse("*:status").amount == 503
