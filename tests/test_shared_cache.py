"""The Redis tier: encoding, leases, and two service instances sharing a real redis-server."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from support import Answer, free_port, http

from daw_popular import app as service_app
from daw_popular.app import App
from daw_popular.config import Settings
from daw_popular.errors import UpstreamUnavailable
from daw_popular.loader import Freshness
from daw_popular.reply import Reply
from daw_popular.server import HttpServer
from daw_popular.shared import (
    _UNREADABLE,
    CODECS,
    LEASE_SUFFIX,
    SharedCache,
    data_key,
    decode_entry,
    encode_entry,
)
from daw_popular.sim import RunningSimulator, Store, start_simulator

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisProcess:
    """A throwaway redis-server on a free port, no persistence; can be killed and restarted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        give_up = time.monotonic() + 10.0
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > give_up or self.process.poll() is not None:
                    raise
                time.sleep(0.01)
        client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is required (Debian package redis-server)")
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.kill()


# encoding


@given(st.text(), st.text())
def test_keys_are_injective_printable_and_free_of_separators(a: str, b: str) -> None:
    """Any username, even one with ':', '{', '*' or newlines, is one key of its own."""
    key_a, key_b = data_key("user", a), data_key("user", b)
    assert (key_a == key_b) == (a == b)
    assert key_a.startswith(b"daw:v1:{user:") and key_a.endswith(b"}")
    inner = key_a[len(b"daw:v1:{user:") : -1]
    assert inner.isascii() and not set(inner.decode()) & set(":{}*?[] \r\n\\")


def test_product_and_user_keys_never_collide() -> None:
    assert data_key("product", 12) != data_key("user", "12")
    assert data_key("product", 12) == b"daw:v1:{product:12}"


@given(
    payload=st.binary(),
    ttl=st.floats(0.001, 1e6),
    swr=st.floats(0, 1e6),
    sie=st.floats(0, 1e6),
    size=st.integers(0, 2**40),
    age=st.floats(0, 1e6),
)
def test_an_entry_is_fresh_for_the_rest_of_its_ttl(
    payload: bytes, ttl: float, swr: float, sie: float, size: int, age: float
) -> None:
    fetched = 1.7e9
    raw = encode_entry(
        payload,
        Freshness(ttl=ttl, stale_while_revalidate=swr, stale_if_error=sie, size=size),
        fetched,
    )
    now = fetched + age
    age = now - fetched  # as the float arithmetic sees it
    decoded = decode_entry(raw, now)
    if age >= ttl:
        assert decoded is None
        return
    assert decoded is not None
    body, freshness = decoded
    assert body == payload
    assert math.isclose(freshness.ttl, ttl - age, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(freshness.age, max(0.0, age), rel_tol=1e-9, abs_tol=1e-6)
    assert (freshness.stale_while_revalidate, freshness.stale_if_error) == (swr, sie)
    assert freshness.size == size


def test_a_writer_clock_ahead_of_the_reader_lends_no_extra_life() -> None:
    raw = encode_entry(b"x", Freshness(ttl=30.0, size=1), fetched_at=1000.0)
    decoded = decode_entry(raw, now=990.0)
    assert decoded is not None and decoded[1].ttl == 30.0


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("user", True),
        ("user", False),
        ("purchases", (3, 1, 3)),
        ("purchases", ()),
        ("product", {"id": 1, "face": "( .-. )\\ \u0361\u00b0", "price": 3, "size": 12}),
        ("product", None),
        ("buyers", ("Ann", "Bob.B_2", "\u00e9\u200d")),
    ],
)
def test_resource_codecs_round_trip(kind: str, value: Any) -> None:
    codec = CODECS[kind]
    loaded = codec.load(codec.dump(value))
    assert loaded == value and type(loaded) is type(value)


@pytest.mark.parametrize(
    ("kind", "data"),
    [("user", b"1"), ("purchases", b'["1"]'), ("product", b"[1]"), ("buyers", b"[1]")],
)
def test_foreign_shapes_are_refused(kind: str, data: bytes) -> None:
    with pytest.raises(TypeError):
        CODECS[kind].load(data)


def test_an_answer_keeps_its_bytes_headers_and_age() -> None:
    codec = CODECS["answer"]
    thirty_s_ago = time.monotonic() - 30.0
    ok = Reply.ok(b'[{"id":1}]\n', cache_control=b"public, max-age=15", born=thirty_s_ago)
    back = codec.load(codec.dump(ok))
    assert (back.status, back.body, back.etag) == (200, ok.body, ok.etag)
    assert (back.content_type, back.cache_control) == (ok.content_type, ok.cache_control)
    assert abs(back.born - thirty_s_ago) < 0.05
    missing = Reply.not_found(
        "User with username of 'x' was not found", cache_control=b"c", born=time.monotonic()
    )
    back = codec.load(codec.dump(missing))
    assert (back.status, back.body, back.etag) == (404, missing.body, None)


def _damaged(data: bytes, how: str) -> bytes:
    head, _, body = data.partition(b"\n")
    fields = orjson.loads(head)
    if how == "body cut short":
        return head + b"\n" + body[: len(body) // 2]
    if how == "unknown status":
        fields[0] = 299
    elif how == "header injection":
        fields[2] = "public\r\nSet-Cookie: a=b"
    elif how == "no etag":
        fields[3] = None
    elif how == "born not a number":
        fields[4] = "yesterday"
    return orjson.dumps(fields) + b"\n" + body


@pytest.mark.parametrize(
    "how",
    ["body cut short", "unknown status", "header injection", "no etag", "born not a number"],
)
def test_a_damaged_answer_entry_is_refused(how: str) -> None:
    """An answer is served as stored, so a damaged one must read as unreadable."""
    codec = CODECS["answer"]
    ok = Reply.ok(b'[{"id":1,"recent":["a"]}]', cache_control=b"public", born=time.monotonic())
    with pytest.raises(_UNREADABLE):
        codec.load(_damaged(codec.dump(ok), how))


def test_a_404_entry_with_a_body_that_is_not_utf8_is_refused() -> None:
    codec = CODECS["answer"]
    missing = Reply.not_found("User with username of 'x' was not found", cache_control=b"c", born=0)
    head, _, _ = codec.dump(missing).partition(b"\n")
    with pytest.raises(_UNREADABLE):
        codec.load(head + b"\nUser \xff")


# lease logic, against a real Redis


# Tests that are not about timeouts give Redis calls room: a first call opens a connection,
# and a burst of them opens the pool's, which on a busy machine can outlast the 0.1 s
# default and (rightly) fall back to fetching. The tests of timeouts set their own.
REDIS_ROOM = 1.0


def _fetcher(value: Any, ttl: float = 30.0, *, delay: float = 0.0) -> tuple[list[int], Any]:
    calls: list[int] = []

    async def fetch() -> tuple[Any, Freshness]:
        calls.append(1)
        await asyncio.sleep(delay)
        return value, Freshness(ttl=ttl, size=10)

    return calls, fetch


async def test_many_loads_on_two_tiers_make_one_fetch(redis_server: RedisProcess) -> None:
    """Fifty concurrent loads split over two clients: one lease, one fetch, all get it."""
    a = SharedCache.connect(redis_server.url, timeout=REDIS_ROOM)
    b = SharedCache.connect(redis_server.url, timeout=REDIS_ROOM)
    calls, fetch = _fetcher((1, 2, 3), delay=0.05)
    try:
        results = await asyncio.gather(
            *(tier.load(("purchases", "Ann"), fetch) for tier in [a, b] * 25)
        )
        assert calls == [1]
        assert {value for value, _ in results} == {(1, 2, 3)}
        stats = [a.statistics(), b.statistics()]
        assert sum(s.leases_won for s in stats) == 1
        assert sum(s.waits for s in stats) == 49 and sum(s.fallbacks for s in stats) == 0
    finally:
        await a.close()
        await b.close()


async def test_a_failed_fetch_is_not_stored_and_frees_the_lease(
    redis_server: RedisProcess,
) -> None:
    tier = SharedCache.connect(redis_server.url, timeout=REDIS_ROOM)
    raw = aioredis.Redis.from_url(redis_server.url)
    key = data_key("product", 7)

    async def failing() -> tuple[Any, Freshness]:
        raise UpstreamUnavailable("down")

    try:
        with pytest.raises(UpstreamUnavailable):
            await tier.load(("product", 7), failing)
        assert await raw.exists(key, key + LEASE_SUFFIX) == 0
    finally:
        await tier.close()
        await raw.aclose()


async def test_a_waiter_falls_back_after_the_lease_wait_and_does_not_store(
    redis_server: RedisProcess,
) -> None:
    """A lease held elsewhere that never yields a value: fetch once, unshared, on time."""
    tier = SharedCache.connect(redis_server.url, lease_wait=0.1, timeout=REDIS_ROOM)
    raw = aioredis.Redis.from_url(redis_server.url)
    key = data_key("user", "Ann")
    await raw.set(key + LEASE_SUFFIX, b"someone-else", px=5000)
    calls, fetch = _fetcher(True)
    try:
        started = time.monotonic()
        value, _ = await tier.load(("user", "Ann"), fetch)
        elapsed = time.monotonic() - started
        assert value is True and calls == [1]
        assert 0.09 <= elapsed < 0.3
        assert await raw.exists(key) == 0
        assert await raw.get(key + LEASE_SUFFIX) == b"someone-else"
        stats = tier.statistics()
        assert (stats.leases_lost, stats.fallbacks, stats.stored) == (1, 1, 0)
    finally:
        await tier.close()
        await raw.aclose()


async def test_an_expired_lease_taken_by_another_is_not_released_by_us(
    redis_server: RedisProcess,
) -> None:
    tier = SharedCache.connect(redis_server.url, lease=0.05, timeout=REDIS_ROOM)
    raw = aioredis.Redis.from_url(redis_server.url)
    key = data_key("buyers", 9)
    _, fetch = _fetcher(("Ann",), delay=0.15)
    try:
        load = asyncio.ensure_future(tier.load(("buyers", 9), fetch))
        await asyncio.sleep(0.1)
        assert await raw.set(key + LEASE_SUFFIX, b"theirs", nx=True, px=5000)
        assert (await load)[0] == ("Ann",)
        assert await raw.get(key + LEASE_SUFFIX) == b"theirs"
        assert await raw.exists(key) == 1
    finally:
        await tier.close()
        await raw.aclose()


async def test_a_value_with_no_life_left_is_not_stored(redis_server: RedisProcess) -> None:
    tier = SharedCache.connect(redis_server.url, timeout=REDIS_ROOM)
    raw = aioredis.Redis.from_url(redis_server.url)
    key = data_key("answer", "Ann")
    _, fetch = _fetcher(Reply.ok(b"[]", cache_control=b"c", born=time.monotonic()), ttl=0.0)
    try:
        await tier.load(("answer", "Ann"), fetch)
        assert await raw.exists(key, key + LEASE_SUFFIX) == 0
    finally:
        await tier.close()
        await raw.aclose()


async def test_a_value_from_redis_is_fresh_only_for_the_rest_of_its_ttl(
    redis_server: RedisProcess,
) -> None:
    """A writer that fetched 20 s ago with a 30 s TTL: the reader gets 10 s, not 30."""
    writer = SharedCache(
        aioredis.Redis.from_url(redis_server.url), timeout=REDIS_ROOM, wall=lambda: time.time() - 20
    )
    reader = SharedCache.connect(redis_server.url, timeout=REDIS_ROOM)
    _, fetch = _fetcher(True, ttl=30.0)
    calls, never = _fetcher(False)
    try:
        await writer.load(("user", "Ann"), fetch)
        value, freshness = await reader.load(("user", "Ann"), never)
        assert value is True and calls == []
        assert 9.5 < freshness.ttl <= 10.0
        assert 20.0 <= freshness.age < 20.5  # backdated, so Age reads about 20 s
        assert reader.statistics().hits == 1
    finally:
        await writer.close()
        await reader.close()


async def test_unreachable_redis_degrades_to_fetching_and_the_breaker_opens() -> None:
    tier = SharedCache.connect(f"redis://127.0.0.1:{free_port()}/0")
    calls, fetch = _fetcher(True)
    try:
        started = time.monotonic()
        for _ in range(10):
            assert (await tier.load(("user", "Ann"), fetch))[0] is True
        assert time.monotonic() - started < 0.5
        stats = tier.statistics()
        assert len(calls) == 10 and stats.state == "down" == tier.state
        assert stats.errors == 5 and stats.bypassed == 5 and stats.breaker.times_opened == 1
    finally:
        await tier.close()


# two service instances sharing one Redis, the simulator upstream


@dataclasses.dataclass
class Instances:
    sim: RunningSimulator
    apps: list[tuple[App, HttpServer]]

    async def get(self, index: int, username: str) -> Answer:
        port = self.apps[index][1].port
        return await http(port, "/api/recent_purchases/" + username)

    async def timed(self, index: int, username: str) -> tuple[Answer, float]:
        started = time.monotonic()
        answer = await self.get(index, username)
        return answer, time.monotonic() - started

    def calls(self) -> dict[str, int]:
        return {k: v for k, v in self.sim.sim.stats().items() if v}


@asynccontextmanager
async def instances(store: Store, redis_url: str, **settings: Any) -> AsyncIterator[Instances]:
    sim = await start_simulator(store)
    settings = {"redis_timeout": REDIS_ROOM, **settings}
    config = dataclasses.replace(
        Settings(port=0, upstream=sim.url, redis_url=redis_url), **settings
    )
    apps = [await service_app.start(config) for _ in range(2)]
    try:
        yield Instances(sim, apps)
    finally:
        for app, server in apps:
            await server.shutdown(1.0)
            await app.close()
        await sim.close()


def products_of(store: Store, names: list[str]) -> set[int]:
    products: set[int] = set()
    for name in names:
        mine = [p for p in store.purchases if p["username"] == name][:5]
        products |= {p["productId"] for p in mine}
    return products


async def test_a_cold_burst_on_two_instances_reaches_the_upstream_once_per_resource(
    redis_server: RedisProcess,
) -> None:
    """100 concurrent cold requests to each instance, over four users."""
    store = Store.generate(seed=11, users=40, products=12)
    names = sorted({p["username"] for p in store.purchases})[:4]
    products = products_of(store, names)
    requests = [(i, names[n % len(names)]) for n in range(100) for i in (0, 1)]
    async with instances(store, redis_server.url) as s:
        answers = await asyncio.gather(*(s.get(i, name) for i, name in requests))
        assert {a.status for a in answers} == {200}
        bodies: dict[str, set[bytes]] = {}
        for (_, name), answer in zip(requests, answers, strict=True):
            bodies.setdefault(name, set()).add(answer.body)
        assert all(len(seen) == 1 for seen in bodies.values())
        assert s.calls() == {
            "user": len(names),
            "by_user": len(names),
            "product": len(products),
            "by_product": len(products),
        }


async def test_the_second_instance_answers_from_redis_without_the_upstream(
    redis_server: RedisProcess,
) -> None:
    store = Store.generate(seed=12)
    name = store.purchases[0]["username"]
    async with instances(store, redis_server.url) as s:
        first = await s.get(0, name)
        before = s.calls()
        second = await s.get(1, name)
        assert s.calls() == before
        assert (second.status, second.body) == (200, first.body)
        assert second.header("etag") == first.header("etag")
        shared = s.apps[1][0].shared
        assert shared is not None and shared.statistics().hits == 1


async def test_redis_killed_then_restarted(redis_server: RedisProcess) -> None:
    """Killed: every request 200 without waiting on Redis; restarted: sharing resumes."""
    store = Store.generate(seed=13, users=60, products=15)
    names = sorted({p["username"] for p in store.purchases})
    timeout = 0.25
    async with instances(
        store, redis_server.url, redis_timeout=timeout, redis_breaker_reset=0.3
    ) as s:
        assert (await s.get(0, names[0])).status == 200
        redis_server.kill()
        results = await asyncio.gather(*(s.timed(i, name) for name in names[:12] for i in (0, 1)))
        assert {answer.status for answer, _ in results} == {200}
        assert max(elapsed for _, elapsed in results) < timeout
        for app, server in s.apps:
            assert app.shared is not None and app.shared.state == "down"
            # Redis is an optimisation: reported, but the worker stays ready.
            ready = await http(server.port, "/readyz")
            assert ready.status == 200 and orjson.loads(ready.body)["redis"] == "down"

        redis_server.start()
        await asyncio.sleep(0.35)
        name = names[-1]
        assert (await s.get(0, name)).status == 200
        before = s.calls()
        assert (await s.get(1, name)).status == 200
        assert s.calls() == before
        for app, _ in s.apps:
            assert app.shared is not None and app.shared.state == "up"


async def test_a_redis_that_never_answers_costs_requests_only_a_short_wait() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    black_hole = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = black_hole.sockets[0].getsockname()[1]
    store = Store.generate(seed=14, users=30)
    names = sorted({p["username"] for p in store.purchases})[:10]
    try:
        async with instances(store, f"redis://127.0.0.1:{port}/0", redis_timeout=0.1) as s:
            results = await asyncio.gather(*(s.timed(i, n) for n in names for i in (0, 1)))
            assert {answer.status for answer, _ in results} == {200}
            # Three levels of Redis calls (answer, user+purchases, products+buyers) at
            # most, each bounded by the 0.1 s timeout, well inside the 2 s deadline.
            assert max(elapsed for _, elapsed in results) < 0.8
            for app, _ in s.apps:
                assert app.shared is not None and app.shared.state == "down"
    finally:
        black_hole.close()
        await black_hole.wait_closed()
