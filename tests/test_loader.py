"""Tests for the read-through policy: hits, stale-while-revalidate, stale-if-error, XFetch."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from daw_popular.cache import Cache, Entry
from daw_popular.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from daw_popular.loader import Flight, Freshness, Loader, Lookup, landing
from daw_popular.singleflight import SingleFlight

T0 = 1000.0


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """A scripted fetch function: counts calls, may wait on a gate, take time, or fail."""

    def __init__(self, clock: Clock, freshness: Freshness) -> None:
        self.clock = clock
        self.freshness = freshness
        self.calls = 0
        self.took = 0.0
        self.gate: asyncio.Event | None = None
        self.error: BaseException | None = None

    async def fetch(self) -> tuple[str, Freshness]:
        self.calls += 1
        version = self.calls
        if self.gate is not None:
            await self.gate.wait()
        self.clock.now += self.took
        if self.error is not None:
            raise self.error
        return f"v{version}", self.freshness


class Setup:
    def __init__(
        self,
        *,
        ttl: float = 10.0,
        swr: float = 0.0,
        sie: float = 0.0,
        rng: float = 0.5,
        beta: float = 1.0,
    ) -> None:
        self.clock = Clock()
        self.rng = rng
        self.draws = 0
        self.cache: Cache[str, str] = Cache(100_000)
        self.flights: SingleFlight[str, Entry[str]] = SingleFlight()
        self.refresh_errors: list[tuple[str, BaseException]] = []
        self.loader: Loader[str, str] = Loader(
            self.cache,
            self.flights,
            clock=self.clock,
            rng=self.draw,
            beta=beta,
            on_refresh_error=lambda key, exc: self.refresh_errors.append((key, exc)),
        )
        freshness = Freshness(ttl=ttl, stale_while_revalidate=swr, stale_if_error=sie, size=100)
        self.upstream = Upstream(self.clock, freshness)

    def draw(self) -> float:
        self.draws += 1
        return self.rng

    async def get(self, key: str = "k") -> Lookup[str]:
        return await self.loader.get(key, self.upstream.fetch)

    async def settle(self) -> None:
        """Run until no fetch is in flight, and the done callbacks of the last ones ran."""
        for _ in range(100):
            if self.flights.in_flight == 0:
                await asyncio.sleep(0)
                return
            await asyncio.sleep(0)
        raise AssertionError("a fetch is still in flight")


async def test_miss_then_hit() -> None:
    s = Setup(ttl=10.0)
    s.upstream.took = 0.25
    first = await s.get()
    assert first == Lookup("v1", T0 + 0.25, T0 + 10.25, "miss")
    s.clock.now += 5
    assert await s.get() == Lookup("v1", T0 + 0.25, T0 + 10.25, "hit")
    assert s.upstream.calls == 1
    stored = s.cache.peek("k")
    assert stored is not None and stored.fetch_time == 0.25 and stored.size == 100


async def test_fresh_hit_starts_no_task_and_draws_nothing_far_from_expiry() -> None:
    """The hit path stays cheap: no task, no flight, no random draw while XFetch cannot fire."""
    s = Setup(ttl=100.0)
    s.upstream.took = 1.0
    await s.get()
    tasks_before = len(asyncio.all_tasks())
    calls_before = s.flights.calls
    s.clock.now += 100 - 40  # 40 fetch times before expiry: beyond XFetch's reach
    assert (await s.get()).state == "hit"
    assert s.draws == 0
    assert len(asyncio.all_tasks()) == tasks_before and s.flights.calls == calls_before


async def test_cold_key_under_100_concurrent_gets_is_fetched_once() -> None:
    s = Setup()
    s.upstream.gate = asyncio.Event()
    tasks = [asyncio.create_task(s.get()) for _ in range(100)]
    await asyncio.sleep(0)
    s.upstream.gate.set()
    results = await asyncio.gather(*tasks)
    assert s.upstream.calls == 1
    assert [r.state for r in results].count("miss") == 1
    assert [r.state for r in results].count("coalesced") == 99
    assert {r.value for r in results} == {"v1"}


async def test_stale_key_under_100_concurrent_gets_is_refreshed_once() -> None:
    """Stale-while-revalidate: all 100 get the old value at once, one refresh runs."""
    s = Setup(ttl=10.0, swr=30.0)
    await s.get()
    s.clock.now += 15
    s.upstream.gate = asyncio.Event()
    results = await asyncio.gather(*(s.get() for _ in range(100)))
    assert {(r.value, r.state) for r in results} == {("v1", "stale")}
    assert s.upstream.calls == 2 and s.flights.in_flight == 1
    s.upstream.gate.set()
    await s.settle()
    assert await s.get() == Lookup("v2", T0 + 15, T0 + 25, "hit")
    assert s.upstream.calls == 2


async def test_a_refresh_starts_after_the_answer_that_found_the_entry_due() -> None:
    """A miss fetches at once (eager); a stale entry's refresh waits for the next turn,
    so the request served stale is answered first."""
    s = Setup(ttl=10.0, swr=30.0)
    flight = s.loader.begin("k", s.upstream.fetch)
    assert isinstance(flight, Flight) and s.upstream.calls == 1
    await landing(flight)
    s.clock.now += 15
    stale = s.loader.begin("k", s.upstream.fetch)
    assert isinstance(stale, Lookup) and stale.state == "stale"
    assert s.upstream.calls == 1 and "k" in s.flights
    await asyncio.sleep(0)
    assert s.upstream.calls == 2
    await s.settle()


async def test_failed_refresh_keeps_the_old_entry_and_is_reported() -> None:
    s = Setup(ttl=10.0, swr=30.0)
    await s.get()
    old = s.cache.peek("k")
    s.clock.now += 15
    s.upstream.error = UpstreamTimeout("too slow")
    assert (await s.get()).state == "stale"
    await s.settle()
    assert s.cache.peek("k") is old
    assert s.refresh_errors == [("k", s.upstream.error)]
    assert await s.get() == Lookup("v1", T0, T0 + 10, "stale")
    await s.settle()
    assert s.upstream.calls == 3 and len(s.refresh_errors) == 2


async def test_stale_is_served_while_the_upstream_fails() -> None:
    """Past the SWR window but inside stale-if-error, a failed fetch yields the old entry."""
    s = Setup(ttl=10.0, swr=5.0, sie=60.0)
    await s.get()
    s.clock.now += 30
    s.upstream.error = UpstreamUnavailable("connection refused")
    results = await asyncio.gather(*(s.get() for _ in range(10)))
    assert results == [Lookup("v1", T0, T0 + 10, "stale-error")] * len(results)
    assert s.upstream.calls == 2


@pytest.mark.parametrize(("after", "served"), [(14.5, True), (15.0, False), (16.0, False)])
async def test_stale_if_error_window_boundary(after: float, served: bool) -> None:
    s = Setup(ttl=10.0, sie=5.0)
    await s.get()
    s.clock.now += after
    s.upstream.error = UpstreamUnavailable("reset")
    if served:
        assert (await s.get()).state == "stale-error"
    else:
        with pytest.raises(UpstreamUnavailable):
            await s.get()


async def test_stale_if_error_is_only_for_upstream_errors() -> None:
    """A bug in the fetch path is not masked by stale data."""
    s = Setup(ttl=10.0, sie=60.0)
    await s.get()
    s.clock.now += 20
    s.upstream.error = KeyError("products")
    with pytest.raises(KeyError):
        await s.get()


async def test_errors_are_never_cached() -> None:
    s = Setup(ttl=10.0, sie=60.0)
    s.upstream.error = UpstreamUnavailable("down")
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            await s.get()
    assert len(s.cache) == 0 and s.upstream.calls == 3
    s.upstream.error = None
    assert (await s.get()).state == "miss"


async def test_short_negative_ttl_is_honoured() -> None:
    """An unknown user cached for 2 s is not fetched again within them, and is after."""
    s = Setup()
    s.upstream.freshness = Freshness(ttl=2.0, size=50)
    assert (await s.get("nobody")).state == "miss"
    s.clock.now += 1.9
    assert (await s.get("nobody")).state == "hit"
    assert s.upstream.calls == 1
    s.clock.now += 0.1
    assert (await s.get("nobody")) == Lookup("v2", T0 + 2, T0 + 4, "miss")


async def test_zero_lifetime_is_not_stored_and_drops_the_predecessor() -> None:
    s = Setup(ttl=10.0)
    await s.get()
    s.clock.now += 20
    s.upstream.freshness = Freshness(ttl=0.0, size=50)
    assert (await s.get()).value == "v2"
    assert s.cache.peek("k") is None


async def test_xfetch_fires_near_expiry_with_a_small_draw() -> None:
    """rng -> 0: refresh in the background before expiry, still answering from the cache."""
    s = Setup(ttl=10.0, rng=1e-9)  # -ln(1e-9) = 20.7 fetch times ahead
    s.upstream.took = 1.0
    await s.get()
    s.clock.now += 5  # 5 s before expiry
    assert await s.get() == Lookup("v1", T0 + 1, T0 + 11, "hit")
    assert s.flights.in_flight == 1
    await s.settle()
    assert s.upstream.calls == 2
    assert (await s.get()).value == "v2"


async def test_xfetch_does_not_fire_with_a_draw_near_one() -> None:
    s = Setup(ttl=10.0, rng=1 - 1e-12)
    s.upstream.took = 1.0
    await s.get()
    s.clock.now += 9.99  # 0.01 s before expiry
    assert (await s.get()).state == "hit"
    assert s.draws == 1 and s.flights.in_flight == 0 and s.upstream.calls == 1


async def test_xfetch_survives_a_draw_of_zero() -> None:
    s = Setup(ttl=10.0, rng=0.0)
    s.upstream.took = 1.0
    await s.get()
    s.clock.now += 9
    assert (await s.get()).state == "hit"
    assert s.flights.in_flight == 1
    await s.settle()


@pytest.mark.parametrize(
    ("gap", "beta", "fires"),
    [(1.5, 1.0, False), (0.5, 1.0, True), (1.5, 2.0, True), (2.5, 2.0, False), (0.5, 0.0, False)],
)
async def test_xfetch_follows_the_formula(gap: float, beta: float, fires: bool) -> None:
    """With -ln(rng()) = 1 and delta = 1 s it fires iff beta * delta >= time left."""
    s = Setup(ttl=10.0, rng=math.exp(-1), beta=beta)
    s.upstream.took = 1.0
    await s.get()
    s.clock.now = T0 + 11 - gap
    await s.get()
    assert (s.flights.in_flight == 1) is fires
    await s.settle()


async def test_one_refresh_at_a_time_whatever_starts_it() -> None:
    """XFetch on a key whose refresh is already running starts nothing more."""
    s = Setup(ttl=10.0, swr=30.0, rng=1e-9)
    s.upstream.took = 1.0
    await s.get()
    s.upstream.gate = asyncio.Event()
    s.clock.now += 9
    for _ in range(20):
        assert (await s.get()).state == "hit"
        await asyncio.sleep(0)
    assert s.upstream.calls == 2 and s.flights.calls == 2
    s.upstream.gate.set()
    await s.settle()


async def test_a_miss_joins_a_running_background_refresh() -> None:
    """A refresh that outlives the SWR window is joined, not duplicated, by the next miss."""
    s = Setup(ttl=10.0, swr=5.0)
    await s.get()
    s.clock.now += 12
    s.upstream.gate = asyncio.Event()
    assert (await s.get()).state == "stale"
    s.clock.now += 10  # past the SWR window, the refresh still running
    waiter = asyncio.create_task(s.get())
    await asyncio.sleep(0)
    s.upstream.gate.set()
    assert (await waiter).state == "coalesced"
    assert (await waiter).value == "v2" and s.upstream.calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_fetch() -> None:
    """A client that disconnects mid-miss still leaves the fetched value in the cache."""
    s = Setup()
    s.upstream.gate = asyncio.Event()
    caller = asyncio.create_task(s.get())
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    s.upstream.gate.set()
    await s.settle()
    assert (await s.get()) == Lookup("v1", T0, T0 + 10, "hit")


def test_freshness_rejects_negative_values() -> None:
    with pytest.raises(ValueError):
        Freshness(ttl=-1.0, size=1)
    with pytest.raises(ValueError):
        Freshness(ttl=1.0, stale_if_error=-1.0, size=1)
    with pytest.raises(ValueError):
        Freshness(ttl=1.0, size=-1)


lifetimes = st.integers(0, 50).map(float)


@settings(max_examples=150, deadline=None)
@given(ttl=lifetimes, swr=lifetimes, sie=lifetimes, age=st.integers(0, 160).map(float))
def test_state_follows_the_windows(ttl: float, swr: float, sie: float, age: float) -> None:
    """With the upstream failing, the answer at any age is the one the windows prescribe."""

    async def scenario() -> str:
        s = Setup(ttl=ttl, swr=swr, sie=sie)
        await s.get()
        s.clock.now += age
        s.upstream.error = UpstreamUnavailable("down")
        state: str
        try:
            state = (await s.get()).state
        except UpstreamError:
            state = "error"
        await s.settle()
        return state

    if age < ttl:
        expected = "hit"
    elif age < ttl + swr:
        expected = "stale"
    elif age < ttl + sie:
        expected = "stale-error"
    else:
        expected = "error"
    assert uvloop.run(scenario()) == expected


async def test_a_value_fetched_already_aged_is_backdated() -> None:
    """A value read from a shared cache keeps its real age, so `Age` stays truthful."""
    clock = Clock()
    loader: Loader[str, str] = Loader(Cache(1 << 20), SingleFlight(), clock=clock, rng=lambda: 0.5)

    async def fetch() -> tuple[str, Freshness]:
        return "v", Freshness(ttl=10.0, size=10, age=4.0)

    lookup = await loader.get("k", fetch)
    assert lookup.stored_at == T0 - 4.0 and lookup.fresh_until == T0 + 10.0


# begin / landing / settle: several values fetched together


class Keyed:
    """Fetches per key, each held at its own gate until released."""

    def __init__(self, freshness: Freshness) -> None:
        self.freshness = freshness
        self.gates: dict[str, asyncio.Event] = {}
        self.calls: list[str] = []

    def fetch(self, key: str) -> Callable[[], Awaitable[tuple[str, Freshness]]]:
        async def fetch() -> tuple[str, Freshness]:
            self.calls.append(key)
            await self.gates.setdefault(key, asyncio.Event()).wait()
            return f"{key}-value", self.freshness

        return fetch

    def release(self, key: str) -> None:
        self.gates.setdefault(key, asyncio.Event()).set()


async def test_begin_answers_a_cached_key_at_once_and_flies_the_rest() -> None:
    s = Setup(ttl=10.0)
    await s.get("cached")
    keyed = Keyed(Freshness(ttl=10.0, size=100))
    cached = s.loader.begin("cached", keyed.fetch("cached"))
    assert cached == Lookup("v1", T0, T0 + 10, "hit")
    first = s.loader.begin("a", keyed.fetch("a"))
    joined = s.loader.begin("a", keyed.fetch("a"))
    assert isinstance(first, Flight) and isinstance(joined, Flight)
    assert (first.state, joined.state) == ("miss", "coalesced")
    assert first.call is joined.call and not first.landed()
    keyed.release("a")
    await landing(first, joined)
    assert s.loader.settle(first) == Lookup("a-value", T0, T0 + 10, "miss")
    assert s.loader.settle(joined).state == "coalesced"
    assert s.loader.settle(cached) is cached
    assert keyed.calls == ["a"]


async def test_landing_waits_for_every_flight_or_for_the_first() -> None:
    s = Setup()
    keyed = Keyed(Freshness(ttl=10.0, size=100))
    a = s.loader.begin("a", keyed.fetch("a"))
    b = s.loader.begin("b", keyed.fetch("b"))
    first = asyncio.create_task(landing(a, b, first=True))
    every = asyncio.create_task(landing(a, b))
    await asyncio.sleep(0.01)
    assert not first.done() and not every.done()
    keyed.release("b")
    await asyncio.wait_for(first, 1.0)
    await asyncio.sleep(0.01)
    assert not every.done()
    keyed.release("a")
    await asyncio.wait_for(every, 1.0)


async def test_landing_returns_at_once_when_nothing_is_in_flight() -> None:
    s = Setup()
    await s.get("cached")
    keyed = Keyed(Freshness(ttl=10.0, size=100))
    cached = s.loader.begin("cached", keyed.fetch("cached"))
    flying = s.loader.begin("a", keyed.fetch("a"))
    # One value is ready, so the first of the two is already there.
    await asyncio.wait_for(landing(cached, flying, first=True), 0.1)
    await asyncio.wait_for(landing(cached), 0.1)
    await asyncio.wait_for(landing(), 0.1)
    keyed.release("a")
    await s.settle()


async def test_a_waiter_cancelled_in_landing_never_cancels_the_flight() -> None:
    s = Setup()
    keyed = Keyed(Freshness(ttl=10.0, size=100))
    flight = s.loader.begin("a", keyed.fetch("a"))
    assert isinstance(flight, Flight)
    waiter = asyncio.create_task(landing(flight))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not flight.call.task.cancelled()
    keyed.release("a")
    await s.settle()
    assert s.loader.settle(flight).value == "a-value"
    cached = s.cache.peek("a")
    assert cached is not None and cached.value == "a-value"


async def test_landing_times_out_without_cancelling_the_flight() -> None:
    s = Setup()
    keyed = Keyed(Freshness(ttl=10.0, size=100))
    flight = s.loader.begin("a", keyed.fetch("a"))
    assert isinstance(flight, Flight)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        # wait_for only stops a landing that ignores its timeout (and fails the next line).
        await asyncio.wait_for(landing(flight, timeout=0.05), 2.0)
    assert 0.04 <= loop.time() - started < 1.0
    assert not flight.landed() and not flight.call.task.cancelled()
    # A landing that ends in time leaves no timer behind to fire later.
    keyed.release("a")
    await landing(flight, timeout=0.05)
    await asyncio.sleep(0.1)
    assert s.loader.settle(flight).value == "a-value"
    # Nothing to wait for: no timeout either, however short.
    await landing(flight, timeout=0.0)
    await s.settle()


async def test_settle_falls_back_to_the_old_entry_when_its_flight_fails() -> None:
    s = Setup(ttl=10.0, sie=60.0)
    await s.get()
    s.clock.now += 20
    s.upstream.error = UpstreamUnavailable("refused")
    flight = s.loader.begin("k", s.upstream.fetch)
    await landing(flight)
    assert s.loader.settle(flight) == Lookup("v1", T0, T0 + 10, "stale-error")
    s.clock.now += 60  # past stale-if-error: the failure itself comes out
    flight = s.loader.begin("k", s.upstream.fetch)
    await landing(flight)
    with pytest.raises(UpstreamUnavailable):
        s.loader.settle(flight)


def named(key: str) -> Callable[[Flight[str, str]], Flight[str, str] | None]:
    """An `until` that answers with the flight for `key`."""
    return lambda flight: flight if flight.key == key else None


async def test_landing_until_stops_at_the_first_flight_that_meets_it() -> None:
    s = Setup()
    keyed = Keyed(Freshness(ttl=10.0, size=100))
    a = s.loader.begin("a", keyed.fetch("a"))
    b = s.loader.begin("b", keyed.fetch("b"))
    every = asyncio.create_task(landing(a, b, until=named("b")))
    keyed.release("a")
    await asyncio.sleep(0.01)
    assert not every.done(), "a landed, but it does not meet `until`"
    keyed.release("b")
    assert await asyncio.wait_for(every, 1.0) is None, "b landed well: `until` is for failures"
    s.upstream.error = UpstreamUnavailable("refused")
    c = s.loader.begin("c", s.upstream.fetch)
    d = s.loader.begin("d", keyed.fetch("d"))
    stopped = await asyncio.wait_for(landing(c, d, until=named("c")), 1.0)
    assert stopped is c and isinstance(d, Flight) and not d.landed()
    # Already met when called: no wait at all.
    assert await asyncio.wait_for(landing(d, c, until=named("c")), 0.1) is c
    keyed.release("d")
    await s.settle()


async def test_failure_is_what_settle_would_raise() -> None:
    s = Setup(ttl=10.0, sie=60.0)
    s.upstream.error = UpstreamUnavailable("refused")
    cold = s.loader.begin("cold", s.upstream.fetch)
    await landing(cold)
    assert isinstance(cold, Flight) and s.loader.failure(cold) is s.upstream.error
    s.upstream.error = None
    await s.get("k")
    s.clock.now += 20
    s.upstream.error = UpstreamUnavailable("refused again")
    stale = s.loader.begin("k", s.upstream.fetch)
    await landing(stale)
    assert isinstance(stale, Flight) and s.loader.failure(stale) is None  # stale-if-error
    s.upstream.error = None
    fine = s.loader.begin("other", s.upstream.fetch)
    await landing(fine)
    assert isinstance(fine, Flight) and s.loader.failure(fine) is None


async def test_lookups_compare_by_value_and_show_their_fields() -> None:
    lookup = Lookup("v", 1.0, 2.0, "hit")
    assert lookup == Lookup("v", 1.0, 2.0, "hit") and lookup != Lookup("v", 1.0, 2.0, "miss")
    assert lookup != ("v", 1.0, 2.0, "hit")
    assert repr(lookup) == "Lookup('v', 1.0, 2.0, 'hit')"
    flights: SingleFlight[str, object] = SingleFlight()
    call = flights.start("k", asyncio.sleep, 0)
    assert repr(call) == "<Call in flight>"
    assert repr(Flight("k", call, "miss")) == "Flight('k', <Call in flight>, 'miss')"
    await asyncio.shield(call.task)
    assert repr(call) == "<Call: None>"

    async def fail() -> object:
        raise ValueError("no")

    failed = flights.start("k", fail)
    await asyncio.wait([failed.task])
    assert repr(failed) == "<Call failed: ValueError('no')>"
