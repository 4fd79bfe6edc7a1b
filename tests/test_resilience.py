"""Upstream faults and cache stampedes end to end (reliability.md D and E).

The real simulator is the upstream and the real service answers over sockets, with
short settings: TTLs of a fraction of a second, a 0.5 s deadline, 0.2 s per attempt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from support import Answer, expected_answer, http

from daw_popular import app as service_app
from daw_popular.app import App
from daw_popular.breaker import CircuitBreaker, State
from daw_popular.cache import Cache
from daw_popular.config import Settings
from daw_popular.dawapi import DawApi
from daw_popular.errors import UpstreamError
from daw_popular.resilience import GuardedUpstream
from daw_popular.retry import RetryBudget
from daw_popular.server import HttpServer, Later, Request, Result
from daw_popular.service import PopularPurchases
from daw_popular.sim import RunningSimulator, Store, start_simulator
from daw_popular.singleflight import TASK_NAME
from daw_popular.upstream import ClientLimits, UpstreamClient

DEADLINE = 0.5
# The brief's bound: no request outlives its deadline by more than this.
SLACK = 0.1

FAST: dict[str, Any] = {
    "user_ttl": 0.3,
    "unknown_user_ttl": 0.3,
    "purchases_ttl": 0.3,
    "product_ttl": 0.3,
    "response_ttl": 0.3,
    "stale_while_revalidate": 0.3,
    "stale_if_error": 30.0,
    "xfetch_beta": 0.0,
    "deadline": DEADLINE,
    "read_timeout": 0.2,
    "connect_timeout": 0.2,
    "retries": 1,
    # Out of the way unless a test is about it: a breaker turns 502s into 503s.
    "breaker_failures": 10_000,
    "breaker_reset": 0.3,
}


@dataclasses.dataclass
class Stack:
    store: Store
    sim: RunningSimulator
    app: App
    server: HttpServer
    settings: Settings

    async def get(self, username: str) -> Answer:
        return await http(self.server.port, "/api/recent_purchases/" + quote(username, safe=""))

    async def timed(self, username: str) -> tuple[Answer, float]:
        began = time.monotonic()
        answer = await self.get(username)
        return answer, time.monotonic() - began

    async def quiet(self) -> None:
        """Until the service has no upstream call out (three checks 50 ms apart): a fetch
        can go on, and fail, after the answer that needed it was sent (an error ends the
        wait for the rest of its round), and a new request would join it."""
        quiet = 0
        while quiet < 3:
            await asyncio.sleep(0.05)
            quiet = 0 if self.app.client.statistics().connections_in_use else quiet + 1

    def faults(self, *specs: str, seed: int | None = 1) -> None:
        self.sim.sim.set_faults(specs, seed)

    def calls(self) -> dict[str, int]:
        return {k: v for k, v in self.sim.sim.stats().items() if v}

    def total_calls(self) -> int:
        return sum(self.sim.sim.stats().values())

    def logical_calls(self) -> int:
        """Upstream GETs the service asked for, before retries (one budget deposit each)."""
        return self.app.upstream.budget.statistics().deposits

    def expected(self, username: str) -> Any:
        store = self.store
        data = {"users": store.users, "products": store.products, "purchases": store.purchases}
        return expected_answer(data, username)

    def resources(self, username: str) -> dict[str, int]:
        """The upstream calls one cold answer for `username` needs, per route."""
        mine = [p for p in self.store.purchases if p["username"] == username][:5]
        products = len({p["productId"] for p in mine})
        return {"user": 1, "by_user": 1, "product": products, "by_product": products}


@asynccontextmanager
async def stack(store: Store | None = None, **settings: Any) -> AsyncIterator[Stack]:
    store = store or Store.generate(seed=11, users=60, products=12, max_purchases_per_user=6)
    sim = await start_simulator(store)
    config = dataclasses.replace(Settings(port=0, upstream=sim.url), **{**FAST, **settings})
    app, server = await service_app.start(config)
    try:
        yield Stack(store, sim, app, server, config)
    finally:
        await server.shutdown(1.0)
        await app.close()
        await sim.close(0.1)


def buyers(store: Store) -> list[str]:
    """Usernames with at least one purchase, in store order, without repeats."""
    return list(dict.fromkeys(p["username"] for p in store.purchases))


def max_age(answer: Answer) -> int:
    match = re.search(r"max-age=(\d+)", answer.header("cache-control") or "")
    assert match is not None, answer
    return int(match.group(1))


async def settle(s: Stack, seconds: float = 0.6) -> None:
    """Let background refreshes (bounded by the per-call deadline) finish."""
    await asyncio.sleep(seconds)


# D. Slow upstream: a total deadline per incoming request bounds them all.

SLOW = {
    "latency": "latency=250",  # just above the 0.2 s per-attempt timeout
    "hang": "hang",  # accepted, never answered
    "trickle": "trickle=20",  # the body one byte every 20 ms
}


@pytest.mark.parametrize("scope", ["one-call", "all-calls"])
@pytest.mark.parametrize("fault", SLOW.keys())
async def test_a_slow_upstream_is_a_504_within_the_deadline(fault: str, scope: str) -> None:
    async with stack() as s:
        name = buyers(s.store)[0]
        route = "by_product" if scope == "one-call" else "*"
        s.faults(f"{route}:{SLOW[fault]}")
        answer, took = await s.timed(name)
        assert answer.status == 504, answer
        assert took <= DEADLINE + SLACK
        assert b"upstream" in answer.body.lower() and b"time" in answer.body.lower()
        assert answer.header("cache-control") == "no-store"


@pytest.mark.parametrize("fault", SLOW.keys())
async def test_random_slowness_under_load_never_outlives_the_deadline(fault: str) -> None:
    async with stack() as s:
        s.faults(f"*:{SLOW[fault]}@0.3")
        results = await asyncio.gather(*(s.timed(name) for name in buyers(s.store)[:30]))
        assert {a.status for a, _ in results} <= {200, 504}
        assert max(took for _, took in results) <= DEADLINE + SLACK


async def test_one_kilobyte_a_second_is_bounded_by_the_deadline() -> None:
    store = Store.generate(seed=12, users=300, products=2, max_purchases_per_user=4)
    async with stack(store) as s:
        s.faults("by_product:trickle=1")
        answer, took = await s.timed(buyers(store)[0])
        assert answer.status == 504 and took <= DEADLINE + SLACK


async def test_hanging_upstream_bounds_every_request_cached_or_cold() -> None:
    """Cached users get their (stale) answer, cold ones a 504, nobody waits past the deadline."""
    async with stack(stale_while_revalidate=0.0) as s:
        names = buyers(s.store)
        cached, cold = names[:10], names[10:40]
        assert {(await s.get(n)).status for n in cached} == {200}
        await asyncio.sleep(0.35)  # past fresh, no stale-while-revalidate: a fetch is due
        s.faults("*:hang")
        results = await asyncio.gather(*(s.timed(n) for n in cached + cold))
        assert [a.status for a, _ in results[:10]] == [200] * 10
        assert {a.status for a, _ in results[10:]} == {504}
        assert max(took for _, took in results) <= DEADLINE + SLACK


# D. Resets: before the answer (accepted, closed unanswered) and in the middle of it.

RESETS = {"before": "hang=0.05", "during": "reset"}


@pytest.mark.parametrize("when", RESETS.keys())
async def test_reset_connections_give_a_fast_502_or_the_stale_answer(when: str) -> None:
    async with stack(stale_while_revalidate=0.0) as s:
        warm, cold = buyers(s.store)[:2]
        first = await s.get(warm)
        await asyncio.sleep(0.35)
        s.faults(f"*:{RESETS[when]}")
        s.sim.sim.reset_stats()
        stale = await s.get(warm)
        assert stale.status == 200 and stale.body == first.body
        answer, took = await s.timed(cold)
        assert answer.status == 502 and took < DEADLINE
        assert answer.body.startswith(b"upstream GET /api/") or b"upstream" in answer.body
        # Pooled keep-alive connections are reused here: a retry of a connection that
        # closed as it was reused is still one of the `retries`.
        assert s.total_calls() <= s.logical_calls() * (1 + s.settings.retries)


# D. Unusable answers: 502, nothing cached, never "no purchases" or "unknown user".

BAD = [
    "truncate",
    "invalid_json",
    "wrong_shape",
    "wrong_type",
    "huge=300000",
    "status=404",
    "status=500",
]


@pytest.mark.parametrize("route", ["user", "by_user", "product", "by_product"])
@pytest.mark.parametrize("fault", BAD)
async def test_unusable_answers_are_502_and_never_cached(fault: str, route: str) -> None:
    async with stack(
        user_ttl=30.0,
        unknown_user_ttl=30.0,
        purchases_ttl=30.0,
        product_ttl=30.0,
        response_ttl=30.0,
        max_response_bytes=100_000,
    ) as s:
        name = buyers(s.store)[0]
        s.faults(f"{route}:{fault}")
        answer = await s.get(name)
        assert answer.status == 502, answer
        assert b"upstream" in answer.body and answer.header("cache-control") == "no-store"
        await s.quiet()  # the other calls of the failed round, and their retries
        s.sim.sim.clear_faults()
        s.sim.sim.reset_stats()
        good = await s.get(name)
        assert good.status == 200 and orjson.loads(good.body) == s.expected(name)
        assert s.calls().get(route, 0) >= 1, "the failed resource must be fetched again"


# D. 5xx and the upstream down: stale-if-error with truthful headers, else a fast error.


async def test_stale_if_error_serves_old_data_with_a_truthful_age() -> None:
    ttl = 1.5
    async with stack(
        user_ttl=ttl,
        purchases_ttl=ttl,
        product_ttl=ttl,
        response_ttl=ttl,
        stale_while_revalidate=0.0,
        max_age=15,
    ) as s:
        name, cold = buyers(s.store)[:2]
        fresh = await s.get(name)
        assert fresh.header("age") == "0" and max_age(fresh) == 1  # our freshness, not 15
        await asyncio.sleep(ttl + 0.2)
        s.faults("*:status=500")
        stale = await s.get(name)
        assert stale.status == 200 and stale.body == fresh.body
        age = int(stale.header("age") or -1)
        assert age >= 1 and age >= max_age(stale), "a stale answer must look stale"
        await s.sim.close(0.1)  # the upstream fully down
        down = await s.get(name)
        assert down.status == 200 and down.body == fresh.body
        answer, took = await s.timed(cold)
        assert answer.status == 502 and took < 0.2
        assert b"cannot connect" in answer.body


async def test_an_answer_rebuilt_from_older_data_does_not_arrive_stale() -> None:
    """`Age` counts from the oldest data, so `max-age` must too: an answer rebuilt from
    fresh purchases and a user looked up earlier is fresh for `--max-age` more seconds."""
    async with stack(
        user_ttl=60.0,
        product_ttl=60.0,
        purchases_ttl=1.5,
        response_ttl=1.5,
        stale_while_revalidate=0.0,
        max_age=1,
    ) as s:
        name = buyers(s.store)[0]
        first = await s.get(name)
        assert first.header("age") == "0" and max_age(first) == 1
        await asyncio.sleep(2.2)  # the purchases and the answer expire; the user does not
        again = await s.get(name)
        assert again.status == 200 and again.body == first.body
        age = int(again.header("age") or -1)
        assert age >= 2, "Age counts from the user lookup"
        assert max_age(again) == age + 1, "fresh for --max-age more seconds, not stale"


async def test_stale_if_error_ends_with_the_window_of_the_data() -> None:
    """Re-composing from stale data must not extend how long that data may be served."""
    async with stack(stale_while_revalidate=0.0, stale_if_error=0.6) as s:
        name = buyers(s.store)[0]
        assert (await s.get(name)).status == 200
        began = time.monotonic()
        s.faults("*:status=500")
        seen: list[tuple[float, int]] = []
        while (now := time.monotonic() - began) < 1.4:
            seen.append((now, (await s.get(name)).status))
            await asyncio.sleep(0.05)
        assert {status for when, status in seen if when < 0.75} == {200}
        assert {status for when, status in seen if when > 1.05} == {502}


# D. Circuit breaker.


async def test_breaker_opens_fails_fast_half_opens_one_probe_and_closes() -> None:
    # "Fast" is well under the probe's latency, with room for a loaded machine (a burst of
    # twenty new connections once took 0.12 s against a bound of 0.1 s).
    probe_latency, fast = 0.4, 0.25
    async with stack(breaker_failures=3, breaker_reset=0.4, retries=0, read_timeout=1.0) as s:
        names = buyers(s.store)
        cached = names[0]
        assert (await s.get(cached)).status == 200
        await asyncio.sleep(0.35)
        s.faults("*:status=500")
        statuses = [(await s.get(name)).status for name in names[1:4]]
        assert statuses[:2] == [502, 502] and statuses[2] == 503
        calls = s.total_calls()
        # Open: no upstream call, a 503 that says when to come back, stale data if any.
        answer, took = await s.timed(names[4])
        assert answer.status == 503 and answer.header("retry-after") == "1"
        assert b"failing" in answer.body and took < fast
        assert (await s.get(cached)).status == 200
        assert s.total_calls() == calls
        # Half open: one (slow) probe goes through while everyone else still fails fast.
        await asyncio.sleep(0.45)
        s.faults(f"*:latency={probe_latency * 1000:g}")
        burst = await asyncio.gather(*(s.timed(names[5]) for _ in range(20)))
        assert s.total_calls() == calls + 1
        assert {a.status for a, _ in burst} == {503}
        assert max(took for _, took in burst) < fast
        await settle(s, probe_latency + 0.1)
        # The probe succeeded: closed again.
        s.sim.sim.clear_faults()
        assert (await s.get(names[6])).status == 200


async def test_a_failed_probe_opens_the_breaker_again() -> None:
    async with stack(breaker_failures=2, breaker_reset=0.3, retries=0) as s:
        names = buyers(s.store)
        s.faults("*:status=500")
        await s.get(names[0])
        assert (await s.get(names[1])).status == 503
        await asyncio.sleep(0.35)
        calls = s.total_calls()
        assert (await s.get(names[2])).status in (502, 503)
        assert s.total_calls() == calls + 1
        assert (await s.get(names[3])).status == 503 and s.total_calls() == calls + 1


async def test_our_own_full_queue_does_not_open_the_breaker() -> None:
    """Overloaded is local back-pressure (503 + Retry-After), not a verdict on the upstream."""
    # Room for one cold answer's widest fan-out (ten calls), not for twenty at once.
    async with stack(
        breaker_failures=2, upstream_connections=4, upstream_queue=8, deadline=2.0
    ) as s:
        s.faults("*:latency=50")
        answers = await asyncio.gather(*(s.get(name) for name in buyers(s.store)[:20]))
        overloaded = [a for a in answers if a.status == 503]
        assert overloaded and all(a.header("retry-after") == "1" for a in overloaded)
        assert all(b"waiting" in a.body for a in overloaded)
        assert s.app.upstream.breaker.statistics().times_opened == 0
        s.sim.sim.clear_faults()
        await s.quiet()  # the burst's fetches still running
        assert s.app.upstream.breaker.state is State.CLOSED
        assert (await s.get(buyers(s.store)[30])).status == 200


# D. Retries: full jitter, inside the deadline, within the budget.


# Failures at 30%: at 50% the retry budget runs dry (about 60 retries for 84 calls), as
# designed, and 3 to 16 answers in 30 came out whole in 24 runs; one run of the suite got
# none and failed `any(... == 200)`. At 30%, about 29 retries suffice.
@pytest.mark.parametrize("fault", ["status=500@0.3", "reset@0.3", "hang=0.05@0.5"])
async def test_retries_under_load_stay_within_one_plus_retries(fault: str) -> None:
    async with stack(retries=2, deadline=1.0) as s:
        s.faults(f"*:{fault}")
        answers = await asyncio.gather(*(s.get(name) for name in buyers(s.store)[:30]))
        assert {a.status for a in answers} <= {200, 502}
        assert any(a.status == 200 for a in answers)
        await settle(s)
        stats = s.app.upstream.budget.statistics()
        assert s.total_calls() > stats.deposits, "some calls must have been retried"
        assert s.total_calls() <= stats.deposits + stats.withdrawals
        assert s.total_calls() <= stats.deposits * (1 + 2)


async def test_the_retry_budget_caps_retries_below_the_retry_count() -> None:
    """Three retries allowed per call, but the budget funds only one per ten calls."""
    sim = await start_simulator(Store.generate(seed=1), faults=["*:status=500"])
    client = UpstreamClient(sim.url, ClientLimits(read_timeout=0.5))
    budget = RetryBudget(min_retries_per_sec=0.0, percent_can_retry=0.1)
    guarded = GuardedUpstream(
        client,
        breaker=CircuitBreaker(failure_threshold=1000),
        budget=budget,
        retries=3,
        read_timeout=0.5,
        deadline=2.0,
    )
    try:
        for _ in range(50):
            with pytest.raises(UpstreamError):
                await guarded.get_json("/api/products/1")
        calls = sum(sim.sim.stats().values())
        assert 50 < calls <= 50 + 5
        assert budget.statistics().deposits == 50
    finally:
        await client.close()
        await sim.close(0.1)


# E. Stampedes: one upstream call per resource, and every waiter answered promptly.


async def test_cold_key_stampede_with_a_failing_call_answers_every_waiter() -> None:
    async with stack() as s:
        name = buyers(s.store)[0]
        # Slow enough failures that all fifty requests arrive while the one fetch runs.
        s.faults("user:latency=100", "user:status=500")
        results = await asyncio.gather(*(s.timed(name) for _ in range(50)))
        assert {a.status for a, _ in results} == {502}
        assert max(took for _, took in results) < 0.4
        # The products' round starts once the purchases are in, without waiting for the
        # user (it saves a round trip's worth of waiting): once per resource, cached.
        calls = s.calls()
        assert calls.pop("user") == 1 + s.settings.retries
        products = s.resources(name)
        assert calls == {k: products[k] for k in calls}


async def test_cold_key_stampede_on_a_hanging_call_times_out_together() -> None:
    async with stack() as s:
        name = buyers(s.store)[0]
        s.faults("by_user:hang")
        results = await asyncio.gather(*(s.timed(name) for _ in range(50)))
        assert {a.status for a, _ in results} == {504}
        assert max(took for _, took in results) <= DEADLINE + SLACK
        assert s.calls() == {"user": 1, "by_user": 1 + s.settings.retries}


async def test_a_failed_fan_out_leaves_no_orphan_waiters() -> None:
    """When one branch fails the others stop waiting; only the fetches that fill the cache run."""
    # Waiting for the slow branch would take its 0.5 s: the bound leaves room for a
    # slow machine and the failed call's retry.
    async with stack(read_timeout=1.0, deadline=2.0) as s:
        name = buyers(s.store)[0]
        s.faults("user:status=500", "by_user:latency=500")
        before = asyncio.all_tasks()
        answer, took = await s.timed(name)
        assert answer.status == 502 and took < 0.25, took
        # Every task the answer made that is still alive is a fetch (single-flight's own
        # task): no wait may outlive the answer.
        alive = asyncio.all_tasks() - before - {asyncio.current_task()}
        assert {task.get_name() for task in alive} == {TASK_NAME}
        await settle(s, 0.7)
        assert s.app.cache.peek(("purchases", name)) is not None, "the fetch still fills the cache"


async def test_a_failure_in_the_second_round_is_answered_without_waiting_for_the_rest() -> None:
    """A product that fails (and has nothing stale) ends the answer; slow buyers do not hold it."""
    async with stack(read_timeout=1.0, deadline=2.0) as s:
        name = buyers(s.store)[0]
        s.faults("product:status=500", "by_product:latency=400")
        answer, took = await s.timed(name)
        assert answer.status == 502 and took < 0.3, (answer.status, took)
        await settle(s, 0.6)
        first = next(p["productId"] for p in s.store.purchases if p["username"] == name)
        assert s.app.cache.peek(("buyers", first)) is not None, "buyers still fill the cache"


async def test_stale_while_revalidate_serves_at_once_with_one_refresh_per_resource() -> None:
    async with stack(stale_while_revalidate=5.0) as s:
        name = buyers(s.store)[0]
        first = await s.get(name)
        await asyncio.sleep(0.35)
        s.faults("*:latency=100")  # a slow refresh, still inside the 0.2 s per attempt
        s.sim.sim.reset_stats()
        results = await asyncio.gather(*(s.timed(name) for _ in range(50)))
        assert {a.status for a, _ in results} == {200}
        assert {a.body for a, _ in results} == {first.body}
        # Waiting for the refresh would take its two rounds of 0.1 s.
        assert max(took for _, took in results) < 0.15
        for _ in range(3):  # more stale readers while the refresh runs
            await asyncio.sleep(0.05)
            await asyncio.gather(*(s.get(name) for _ in range(10)))
        await settle(s, 0.4)
        assert s.calls() == s.resources(name)
        again = await s.get(name)
        assert again.body == first.body and again.header("age") == "0"


def direct_request(username: str) -> Request:
    path = ("/api/recent_purchases/" + quote(username, safe="")).encode()
    return Request("GET", path, b"", [(b"host", b"t")], "1.1", True, None)


async def given(result: Result) -> bytes:
    """The response a handler gives later, as the server would receive it."""
    assert isinstance(result, Later)
    outcome: asyncio.Future[bytes | BaseException] = asyncio.get_running_loop().create_future()
    result.deliver_to(outcome.set_result)
    response = await outcome
    assert isinstance(response, bytes)
    return response


async def test_a_stale_answer_is_served_without_a_task() -> None:
    """Stale-while-revalidate: the handler answers in the request's own call."""
    async with stack(stale_while_revalidate=5.0) as s:
        name = buyers(s.store)[0]
        first = await s.get(name)
        await asyncio.sleep(0.35)  # the answer and its data are stale now
        result = s.app.service(direct_request(name), name)
        assert isinstance(result, bytes) and result.endswith(first.body)
        await settle(s, 0.3)
        assert s.calls() == {k: 2 * v for k, v in s.resources(name).items()}


async def test_a_cold_answer_asks_the_upstream_within_the_request_s_own_call() -> None:
    """The composition and its first fetches start eagerly: on warm connections, the
    purchases and user requests are sent before the handler returns."""
    async with stack() as s:
        warm, cold = buyers(s.store)[:2]
        await s.get(warm)  # opens pooled connections
        sent = s.app.client.statistics().requests_sent
        answer = s.app.service(direct_request(cold), cold)
        assert s.app.client.statistics().requests_sent == sent + 2  # purchases and user
        assert (await given(answer)).startswith(b"HTTP/1.1 200 OK")


def scripted(
    deadline: float = 2.0, **settings: Any
) -> tuple[PopularPurchases, list[str], dict[str, asyncio.Future[Any]]]:
    """A service whose upstream calls wait until a test answers them, by target; the
    targets in the order they were asked for."""
    loop = asyncio.get_running_loop()
    asked: list[str] = []
    answers: dict[str, asyncio.Future[Any]] = {}

    async def get_json(target: str) -> Any:
        asked.append(target)
        answers[target] = loop.create_future()
        return await answers[target]

    service = PopularPurchases(
        DawApi(get_json), cache=Cache(1 << 20), deadline=deadline, **settings
    )
    return service, asked, answers


def outcomes_of(result: Result) -> list[bytes | BaseException]:
    """What a handler's `Later` gives, as it gives it."""
    assert isinstance(result, Later)
    outcomes: list[bytes | BaseException] = []
    result.deliver_to(outcomes.append)
    return outcomes


async def test_the_second_round_is_asked_for_in_the_step_that_reads_the_purchases() -> None:
    """The products and their buyers are asked for one loop turn after the purchases
    answer is in, from inside that fetch, not after the composition resumes (three)."""
    service, asked, answers = scripted()
    answer = asyncio.ensure_future(given(service(direct_request("Edna66"), "Edna66")))
    assert asked == ["/api/purchases/by_user/Edna66?limit=5", "/api/users/Edna66"]
    purchase = {"id": 1, "username": "Edna66", "productId": 7, "date": "2026-11-22T03:56:34.783Z"}
    answers[asked[0]].set_result({"purchases": [purchase]})
    await asyncio.sleep(0)
    assert asked[2:] == ["/api/products/7", "/api/purchases/by_product/7?limit=1000&skip=0"]
    answers[asked[1]].set_result({"user": {"username": "Edna66", "email": "e@example.com"}})
    answers[asked[2]].set_result({"product": {"id": 7, "face": "(o_o)", "price": 1, "size": 2}})
    answers[asked[3]].set_result({"purchases": [purchase]})
    assert (await answer).startswith(b"HTTP/1.1 200 OK")
    assert len(asked) == 4


async def test_a_cold_answer_is_given_two_loop_turns_after_its_last_upstream_answer() -> None:
    """The last fetch's task step ends its call, whose listener wakes the composition;
    the composition's step ends the answer's call, whose listener gives the answer. With
    done callbacks of their tasks, each ending would cost one turn more (four in all):
    under load every turn waits behind the others' work."""
    service, asked, answers = scripted()
    outcomes = outcomes_of(service(direct_request("Edna66"), "Edna66"))
    purchase = {"id": 1, "username": "Edna66", "productId": 7, "date": "2026-11-22T03:56:34.783Z"}
    answers[asked[0]].set_result({"purchases": [purchase]})
    answers[asked[1]].set_result({"user": {"username": "Edna66", "email": "e@example.com"}})
    await asyncio.sleep(0)
    answers[asked[2]].set_result({"product": {"id": 7, "face": "(o_o)", "price": 1, "size": 2}})
    for _ in range(10):
        await asyncio.sleep(0)
    assert outcomes == [] and len(asked) == 4
    answers[asked[3]].set_result({"purchases": [purchase]})
    turns = 0
    while not outcomes and turns < 10:
        await asyncio.sleep(0)
        turns += 1
    assert turns == 2
    (answer,) = outcomes
    assert isinstance(answer, bytes) and answer.startswith(b"HTTP/1.1 200 OK")


async def test_an_answer_late_for_its_deadline_is_given_once_and_its_flight_goes_on() -> None:
    service, _, answers = scripted(deadline=0.05)
    outcomes = outcomes_of(service(direct_request("Edna66"), "Edna66"))
    await asyncio.sleep(0.1)
    (answer,) = outcomes
    assert isinstance(answer, bytes) and answer.startswith(b"HTTP/1.1 504")
    purchase = {"id": 1, "username": "Edna66", "productId": 7, "date": "2026-11-22T03:56:34.783Z"}
    answers["/api/purchases/by_user/Edna66?limit=5"].set_result({"purchases": [purchase]})
    answers["/api/users/Edna66"].set_result({"user": {"username": "Edna66"}})
    await asyncio.sleep(0)
    answers["/api/products/7"].set_result({"product": {"id": 7, "face": "(o_o)", "price": 1}})
    answers["/api/purchases/by_product/7?limit=1000&skip=0"].set_result({"purchases": [purchase]})
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(outcomes) == 1, "the late flight gives nothing more"
    hit = service(direct_request("Edna66"), "Edna66")
    assert isinstance(hit, bytes) and hit.startswith(b"HTTP/1.1 200 OK"), "but it was cached"


async def test_past_the_deadline_stale_resources_stand_in_for_a_missing_answer() -> None:
    """The deadline can fire before the upstream calls' own timeouts: data still within
    stale-if-error answers then, also for a path whose answer is not kept (another
    spelling of the name), rather than a 504."""
    ttls = {f"{kind}_ttl": 0.05 for kind in ("user", "purchases", "product", "response")}
    service, asked, answers = scripted(
        deadline=0.05, stale_while_revalidate=0.0, stale_if_error=60.0, **ttls
    )
    first = service(direct_request("Edna66"), "Edna66")
    purchase = {"id": 1, "username": "Edna66", "productId": 7, "date": "2026-11-22T03:56:34.783Z"}
    answers[asked[0]].set_result({"purchases": [purchase]})
    answers[asked[1]].set_result({"user": {"username": "Edna66"}})
    await asyncio.sleep(0)
    answers[asked[2]].set_result({"product": {"id": 7, "face": "(o_o)", "price": 1}})
    answers[asked[3]].set_result({"purchases": [purchase]})
    fresh = await given(first)
    assert fresh.startswith(b"HTTP/1.1 200 OK")
    await asyncio.sleep(0.1)  # everything stale; the upstream now never answers
    spelled = Request(
        "GET", b"/api/recent_purchases/%45dna66", b"", [(b"host", b"t")], "1.1", True, None
    )
    late = await given(service(spelled, "Edna66"))
    assert late.startswith(b"HTTP/1.1 200 OK"), late
    assert late.partition(b"\r\n\r\n")[2] == fresh.partition(b"\r\n\r\n")[2]
    assert len(asked) > 4, "the stale data was being refreshed"


async def test_an_answer_whose_flight_broke_is_a_failure_for_the_server_to_answer() -> None:
    service, _, answers = scripted(deadline=0.05)
    outcomes = outcomes_of(service(direct_request("Edna66"), "Edna66"))
    answers["/api/users/Edna66"].set_exception(RuntimeError("a bug, not an upstream error"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(outcomes) == 1 and isinstance(outcomes[0], RuntimeError)


# XFetch draws at random, so beta must make a miss negligible, not merely rare. At 1,000 it
# was not: an answer recomposed from cached data takes a fraction of a millisecond, so its
# own early refresh (the only way the resources are read again) then fires on only 16-37%
# of reads, and a resource whose draw missed at the first refresh (about 1.1% each) could
# stay unread past this window: about 1.3% of runs failed. At 1e6 a draw misses with odds
# of about 1e-5.
@pytest.mark.parametrize("beta", [0.0, 1e6])
async def test_xfetch_refreshes_a_hot_entry_before_it_expires(beta: float) -> None:
    """With a high beta, a key read steadily never expires, so no reader ever waits."""
    ttl = 0.6
    async with stack(
        user_ttl=ttl,
        purchases_ttl=ttl,
        product_ttl=ttl,
        response_ttl=ttl,
        stale_while_revalidate=0.0,
        xfetch_beta=beta,
    ) as s:
        name = buyers(s.store)[0]
        s.faults("*:latency=50")  # a fetch time XFetch can measure; a miss waits 50 ms+
        await s.get(name)
        s.sim.sim.reset_stats()
        early: list[float] = []
        for _ in range(8):  # hits, all well inside the fresh time
            await asyncio.sleep(0.04)
            answer, took = await s.timed(name)
            early.append(took)
        refetched = s.calls()
        later: list[float] = []
        for _ in range(10):  # past the first ttl
            await asyncio.sleep(0.04)
            answer, took = await s.timed(name)
            assert answer.status == 200
            later.append(took)
        if beta:
            wanted = s.resources(name)
            assert all(refetched.get(r, 0) >= n for r, n in wanted.items()), (refetched, wanted)
            assert max(early + later) < 0.08, (early, later)
        else:
            assert refetched == {}
            # Past the expiry some reader waits for at least one round (50 ms). Not always
            # both: one that comes as the first round's data expires may find the second
            # round's still fresh (stored 50 ms later); the next reader then waits for
            # that round alone (seen once: two reads of 55 ms).
            assert max(later) >= 0.05


async def test_an_upstream_error_is_never_negatively_cached() -> None:
    """A failing user lookup is not "unknown user", a failing purchase list not "none"."""
    async with stack(user_ttl=30.0, unknown_user_ttl=30.0, purchases_ttl=30.0) as s:
        specs = ("user:status=503", "by_user:status=503", "user:wrong_shape", "by_user:truncate")
        names = buyers(s.store)[: len(specs)]
        for spec, name in zip(specs, names, strict=True):
            s.faults(spec)
            assert (await s.get(name)).status == 502
        s.sim.sim.clear_faults()
        for name in names:
            answer = await s.get(name)
            assert answer.status == 200 and orjson.loads(answer.body) == s.expected(name)


async def test_cached_users_see_no_errors_when_connections_are_reset_under_load() -> None:
    async with stack(breaker_failures=5) as s:
        names = buyers(s.store)[:12]
        assert {(await s.get(n)).status for n in names} == {200}
        s.faults("*:reset@0.3", seed=3)
        s.sim.sim.reset_stats()
        deposits = s.logical_calls()
        statuses: set[int] = set()
        ends = time.monotonic() + 1.5
        while time.monotonic() < ends:
            batch = await asyncio.gather(*(s.get(n) for n in names * 3))
            statuses |= {a.status for a in batch}
            await asyncio.sleep(0.02)
        assert statuses == {200}
        await settle(s)
        assert s.total_calls() > 0, "entries expired, so refreshes must have run"
        assert s.total_calls() <= (s.logical_calls() - deposits) * (1 + s.settings.retries)
