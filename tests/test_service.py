"""The endpoint end to end: real sockets, the real simulator as upstream."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from support import Answer, expected_answer, http, parse

import daw_popular
from daw_popular import app as service_app
from daw_popular.app import App
from daw_popular.config import Settings
from daw_popular.server import HttpServer
from daw_popular.sim import RunningSimulator, Store, start_simulator

FIXTURES = sorted((Path(__file__).parents[2] / "shared" / "fixtures").glob("real-upstream-*.json"))


@dataclasses.dataclass
class Stack:
    sim: RunningSimulator
    app: App
    server: HttpServer

    async def get(self, username: str, **kwargs: Any) -> Answer:
        return await http(self.server.port, "/api/recent_purchases/" + username, **kwargs)

    def calls(self) -> dict[str, int]:
        return {k: v for k, v in self.sim.sim.stats().items() if v}


@asynccontextmanager
async def stack(store: Store, **settings: Any) -> AsyncIterator[Stack]:
    sim = await start_simulator(store)
    config = dataclasses.replace(Settings(port=0, upstream=sim.url), **settings)
    app, server = await service_app.start(config)
    try:
        yield Stack(sim, app, server)
    finally:
        await server.shutdown(1.0)
        await app.close()
        await sim.close()


def load(path: Path) -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def segment(name: str) -> str:
    return quote(name, safe="")


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
async def test_every_user_of_a_real_data_set_gets_the_reference_answer(fixture: Path) -> None:
    data = load(fixture)
    async with stack(Store.from_fixture(fixture)) as s:
        for user in data["users"]:
            name = user["username"]
            answer = await s.get(segment(name))
            assert answer.status == 200, answer
            assert answer.header("content-type") == "application/json"
            assert orjson.loads(answer.body) == expected_answer(data, name)
            # Compact UTF-8, faces not \u-escaped.
            assert b"\\u" not in answer.body and b", " not in answer.body


def test_fixtures_are_present() -> None:
    assert len(FIXTURES) == 3


async def test_products_with_far_more_than_ten_buyers_are_paged_completely() -> None:
    store = Store.generate(seed=7, users=400, products=3, max_purchases_per_user=6)
    data = {"users": store.users, "products": store.products, "purchases": store.purchases}
    async with stack(store, page_size=7) as s:
        for user in store.users[:25]:
            answer = await s.get(segment(user["username"]))
            assert orjson.loads(answer.body) == expected_answer(data, user["username"])
        assert max(len(e["recent"]) for e in orjson.loads(answer.body)) > 10


async def test_unknown_user_gets_the_exact_404_text() -> None:
    async with stack(Store.generate(seed=1)) as s:
        answer = await s.get("No.Such%20User")
        assert answer.status == 404
        assert answer.body == b"User with username of 'No.Such User' was not found"
        assert answer.header("content-type") == "text/plain; charset=utf-8"
        assert answer.header("x-content-type-options") == "nosniff"
        assert answer.header("cache-control") == "public, max-age=10"


async def test_a_repeated_request_makes_no_upstream_call() -> None:
    store = Store.generate(seed=2)
    name = store.purchases[0]["username"]
    async with stack(store) as s:
        first = await s.get(segment(name))
        before = s.calls()
        again = await s.get(segment(name))
        assert again.body == first.body and s.calls() == before
        unknown = await s.get("Nobody")
        before = s.calls()
        await s.get("Nobody")
        assert s.calls() == before and unknown.status == 404


async def test_concurrent_cold_requests_reach_the_upstream_once_per_resource() -> None:
    store = Store.generate(seed=3, users=50, products=8)
    name = store.purchases[0]["username"]
    mine = [p for p in store.purchases if p["username"] == name][:5]
    products = {p["productId"] for p in mine}
    async with stack(store) as s:
        answers = await asyncio.gather(*(s.get(segment(name)) for _ in range(200)))
        assert {a.status for a in answers} == {200}
        assert len({a.body for a in answers}) == 1
        assert s.calls() == {
            "user": 1,
            "by_user": 1,
            "product": len(products),
            "by_product": len(products),
        }


async def test_etag_and_conditional_requests() -> None:
    store = Store.generate(seed=4)
    a, b = (u["username"] for u in store.users[:2])
    async with stack(store) as s:
        first = await s.get(segment(a))
        etag = first.header("etag")
        assert etag is not None and etag.startswith('"')
        assert first.header("cache-control") == "public, max-age=15, stale-while-revalidate=30"
        for inm in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
            nm = await s.get(segment(a), headers={"If-None-Match": inm})
            assert nm.status == 304 and nm.body == b"", inm
            assert nm.header("etag") == etag and nm.header("cache-control")
            assert nm.header("date") and nm.header("content-length") is None
        other = await s.get(segment(b), headers={"If-None-Match": etag})
        assert other.status == 200 and other.header("etag") != etag
        stale = await s.get(segment(a), headers={"If-None-Match": '"something-else"'})
        assert stale.status == 200 and stale.body == first.body


async def test_etag_depends_only_on_the_body() -> None:
    """Two independent service processes' state: same data, same ETag."""
    store = Store.generate(seed=5)
    name = store.users[0]["username"]
    async with stack(store) as s1, stack(store) as s2:
        one, two = await s1.get(segment(name)), await s2.get(segment(name))
        assert one.body == two.body and one.header("etag") == two.header("etag")


async def test_head_has_the_headers_of_get_without_body() -> None:
    store = Store.generate(seed=6)
    name = store.users[0]["username"]
    async with stack(store) as s:
        get = await s.get(segment(name))
        head = await s.get(segment(name), method="HEAD")
        assert head.status == 200 and head.body == b""
        assert head.header("content-length") == str(len(get.body))
        assert head.header("etag") == get.header("etag")
        missing = await s.get("Nobody", method="HEAD")
        assert missing.status == 404 and missing.body == b""


@pytest.mark.parametrize(
    "raw",
    ["%", "%zz", "%C3", "%FF%FE", "a%00b", "tab%09", "%7F", "%C2%85", "x" * 257],
)
async def test_bad_usernames_get_400_without_an_upstream_call(raw: str) -> None:
    async with stack(Store.generate(seed=1)) as s:
        answer = await s.get(raw)
        assert answer.status == 400 and answer.body.startswith(b"Bad Request")
        assert s.calls() == {}


async def test_odd_but_valid_names_reach_the_upstream_as_one_segment() -> None:
    async with stack(Store.generate(seed=1)) as s:
        for raw, name in [
            ("a%2Fb", "a/b"),
            ("..", ".."),
            ("%2E", "."),
            ("O'Hara", "O'Hara"),
            ("%3Fx%23y", "?x#y"),
            ("%E2%9C%BF", "✿"),
        ]:
            answer = await s.get(raw)
            assert answer.status == 404, raw
            assert answer.body.decode() == f"User with username of '{name}' was not found"


async def test_empty_username_and_extra_segments_are_404() -> None:
    async with stack(Store.generate(seed=1)) as s:
        assert (await s.get("")).status == 404
        assert (await s.get("a/b")).status == 404
        assert (await s.get("a", method="POST")).status == 405


async def test_upstream_down_with_nothing_cached_is_502() -> None:
    store = Store.generate(seed=1)
    async with stack(store) as s:
        await s.sim.close()
        answer = await s.get(segment(store.users[0]["username"]))
        assert answer.status == 502
        assert b"upstream" in answer.body.lower()
        assert answer.header("cache-control") == "no-store"


async def test_upstream_error_answer_is_502_and_never_cached() -> None:
    store = Store.generate(seed=1)
    name = store.users[0]["username"]
    async with stack(store) as s:
        s.sim.sim.set_faults(["user:status=500"])
        assert (await s.get(segment(name))).status == 502
        s.sim.sim.clear_faults()
        assert (await s.get(segment(name))).status == 200


async def test_upstream_that_never_answers_is_504_within_the_deadline() -> None:
    store = Store.generate(seed=1)
    name = store.users[0]["username"]
    async with stack(store, deadline=0.3, read_timeout=5.0) as s:
        s.sim.sim.set_faults(["*:hang"])
        began = asyncio.get_running_loop().time()
        answer = await s.get(segment(name))
        assert answer.status == 504
        assert asyncio.get_running_loop().time() - began < 0.3 + 0.2
        assert b"timeout" in answer.body.lower() or b"time" in answer.body.lower()


async def test_answers_late_together_each_get_the_deadline_s_answer_never_early() -> None:
    store = Store.generate(seed=1)
    names = [user["username"] for user in store.users[:5]]
    async with stack(store, deadline=0.3, read_timeout=5.0) as s:
        s.sim.sim.set_faults(["*:hang"])
        loop = asyncio.get_running_loop()
        began = loop.time()
        answers = await asyncio.gather(*(s.get(segment(name)) for name in names))
        took = loop.time() - began
        assert [a.status for a in answers] == [504] * len(names)
        assert 0.3 <= took < 0.3 + 0.2


async def test_compiled_no_function_of_the_service_runs_interpreted_per_answer() -> None:
    """Cold, composed from cached data, or a cache hit: compiled, each answer runs
    without one interpreted Python function of the service (the simulator aside). From
    the sources, the same watch sees them, which shows that it would."""
    store = Store.generate(seed=5)
    names = [user["username"] for user in store.users[:7]]
    package = str(Path(service_app.__file__).parent)
    seen: Counter[str] = Counter()

    def watch(frame: Any, event: str, arg: Any) -> None:
        where = frame.f_code.co_filename
        if event == "call" and where.startswith(package) and "/sim/" not in where:
            seen[f"{Path(where).name}:{frame.f_code.co_name}"] += 1

    async def watched(s: Stack, users: list[str]) -> list[int]:
        sys.setprofile(watch)
        try:
            return [(await s.get(segment(name))).status for name in users]
        finally:
            sys.setprofile(None)

    async def watched_keep_alive(s: Stack, users: list[str]) -> list[int]:
        """Plain keep-alive GETs on one connection: what the server's fast lane answers."""
        reader, writer = await asyncio.open_connection("127.0.0.1", s.server.port)
        statuses = []
        sys.setprofile(watch)
        try:
            for name in users:
                target = f"/api/recent_purchases/{segment(name)}"
                writer.write(f"GET {target} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                answer = parse(head)
                await reader.readexactly(int(answer.header("content-length") or 0))
                statuses.append(answer.status)
        finally:
            sys.setprofile(None)
            writer.close()
        return statuses

    async with stack(store) as s:
        await s.get(segment(names[0]))  # connections made, start-up paths run
        assert await watched(s, names[1:4]) == [200] * 3  # cold
        assert await watched(s, names[1:4]) == [200] * 3  # cache hits, through the router
        assert await watched_keep_alive(s, names[1:4]) == [200] * 3  # the fast lane
    composing = {"response_ttl": 0.0, "stale_while_revalidate": 0.0, "stale_if_error": 0.0}
    async with stack(store, **composing) as s:
        for name in names[4:]:
            await s.get(segment(name))
        assert await watched(s, names[4:]) == [200] * 3  # composed from cached data
    if daw_popular.compiled():
        assert seen == Counter()
    else:
        assert seen["service.py:__call__"] == 9 and seen["service.py:fast"] == 3


async def test_fast_lane_serves_the_cached_bytes_of_the_raw_path_only() -> None:
    store = Store.generate(seed=8)
    name = store.users[0]["username"]
    async with stack(store) as s:
        first = await s.get(segment(name))
        path = ("/api/recent_purchases/" + segment(name)).encode()
        wire = s.app.service.fast(path)
        assert wire is not None and wire.endswith(first.body)
        assert s.app.service.fast(path + b"?x=1") is None  # not the key it was stored under
        assert s.app.service.fast(b"/api/recent_purchases/Nobody.Yet") is None
        entry = s.app.cache.peek(path)
        assert entry is not None
        entry.plain_until = 0.0  # as if XFetch might fire now: the loader must decide
        assert s.app.service.fast(path) is None
        assert (await s.get(segment(name))).body == first.body
