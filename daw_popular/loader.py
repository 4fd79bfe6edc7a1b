"""Read-through caching for one cache level: fresh hits, stale-while-revalidate, stale-if-error.

Theory of operation (groupcache's ``load()`` is the model)
-----------------------------------------------------------
``Loader.get(key, fetch)`` looks the key up and picks one of four paths by the clock:

=====================================  ============================================
entry                                  answer
=====================================  ============================================
fresh (``now < fresh_until``)          the entry, "hit"; XFetch may start one
                                       background refresh early
stale, ``now < stale_until``           the entry at once, "stale", and one
                                       background refresh (stale-while-revalidate)
absent or older                        wait for a fetch, "miss" (or "coalesced" when
                                       joining one already running)
... and that fetch raised an           the old entry, "stale-error", if
``UpstreamError``                      ``now < error_until`` (stale-if-error)
=====================================  ============================================

Every fetch, foreground or background, runs through the same ``SingleFlight``, so a
key has at most one fetch in flight whichever path started it. The fetch function
returns the value with its ``Freshness``: the caller decides per value how long it
stays fresh (an unknown user can get a short negative TTL). Errors are raised, never
stored: a failed refresh leaves the old entry in place.

XFetch (Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache Stampede
Prevention", VLDB 2015) refreshes a fresh entry early when
``now - delta * beta * ln(rng()) >= fresh_until``, ``delta`` being how long its fetch
took: slow keys and busy keys are refreshed before they expire, so their readers never
wait.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar

from daw_popular.cache import Cache, Entry
from daw_popular.errors import UpstreamError
from daw_popular.singleflight import Call, SingleFlight

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")

State = Literal["hit", "miss", "stale", "stale-error", "coalesced"]

# random.random() never returns a positive number below 2**-53, so -ln(rng()) stays
# under 53 ln 2 (about 36.7): XFetch cannot fire while more than that many (beta-scaled)
# fetch times remain, and a hit that far from expiry skips drawing a number at all.
# rng() == 0.0 exactly (odds 2**-53) is the one draw this skip ignores.
_XFETCH_REACH: Final = 53 * math.log(2.0)


# The records below are made once or more per upstream call, so they are plain slots
# classes: a frozen dataclass pays an object.__setattr__ per field (3.6x the cost).
# Nothing mutates them after construction.


class Freshness:
    """How long a fetched value may be served, and what it costs to keep (seconds, bytes)."""

    # A plain class, not a dataclass: mypyc compiles this `__init__`, where a dataclass's
    # generated one stays interpreted (four times the cost, 2% of a cold answer's
    # instructions at one per upstream call).
    __slots__ = ("age", "size", "stale_if_error", "stale_while_revalidate", "ttl")

    def __init__(
        self,
        *,
        ttl: float,
        size: int,
        stale_while_revalidate: float = 0.0,
        stale_if_error: float = 0.0,
        age: float = 0.0,
    ) -> None:
        # Comparisons, not min(): one of these is made per upstream call.
        if ttl < 0 or stale_while_revalidate < 0 or stale_if_error < 0 or age < 0 or size < 0:
            raise ValueError(
                f"negative lifetime or size in Freshness(ttl={ttl!r}, "
                f"stale_while_revalidate={stale_while_revalidate!r}, "
                f"stale_if_error={stale_if_error!r}, size={size!r}, age={age!r})"
            )
        self.ttl = ttl
        self.stale_while_revalidate = stale_while_revalidate
        self.stale_if_error = stale_if_error
        self.size = size
        # How old the value already was when fetched (read from a shared cache): its
        # `stored_at` is backdated so that `Age` tells the truth on every instance.
        self.age = age


class Lookup(Generic[V]):
    """A value as served, with what a response needs (Age, freshness) and how it was found."""

    # A plain class compiled by mypyc (as `Freshness`): several are made per cold answer.
    __slots__ = ("fresh_until", "state", "stored_at", "value")

    def __init__(self, value: V, stored_at: float, fresh_until: float, state: State) -> None:
        self.value = value
        self.stored_at = stored_at
        self.fresh_until = fresh_until
        self.state = state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Lookup):
            return NotImplemented
        return (self.value, self.stored_at, self.fresh_until, self.state) == (
            other.value,
            other.stored_at,
            other.fresh_until,
            other.state,
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, and mutable

    def __repr__(self) -> str:
        return f"Lookup({self.value!r}, {self.stored_at!r}, {self.fresh_until!r}, {self.state!r})"


# What a caller reads a value from (`value`, `stored_at`, `fresh_until`): a `Lookup`, or
# a fresh `Entry`. A union of the two classes, not a protocol: compiled, each read is
# then a type check and a field load, where a protocol's is a generic attribute lookup.
Timed: TypeAlias = "Lookup[Any] | Entry[Any]"

Fetch = Callable[[], Awaitable[tuple[V, Freshness]]]


class Flight(Generic[K, V]):
    """A fetch `Loader.begin` started or joined: the single-flight call filling `key`."""

    # A plain class compiled by mypyc (as `Freshness`): one is made per resource begun.
    __slots__ = ("call", "key", "state")

    def __init__(self, key: K, call: Call[Entry[V]], state: State) -> None:
        self.key = key
        self.call = call
        self.state = state  # "miss" (this call started the fetch) or "coalesced"

    def __repr__(self) -> str:
        return f"Flight({self.key!r}, {self.call!r}, {self.state!r})"

    def landed(self) -> bool:
        return self.call.done


async def landing(
    *begun: Lookup[Any] | Flight[Any, Any],
    first: bool = False,
    until: Callable[[Flight[Any, Any]], T | None] | None = None,
    timeout: float | None = None,  # noqa: ASYNC109
) -> T | None:
    """Wait until every flight among `begun` has landed, or (`first`) until one is ready,
    or until a flight lands that failed and for which `until(flight)` answers something:
    that answer is returned (else None). `TimeoutError` after `timeout` seconds.

    Waiting never cancels a flight: a caller that goes away (its client left, its
    deadline passed) stops waiting while the fetch goes on to fill the cache for
    everybody else, as with `asyncio.shield`. The wait is one future, resolved by the
    calls' listeners as the last of them ends (see `singleflight`), so the waiter
    resumes at the next event-loop turn. (This is `asyncio.wait` without its set and
    per-call checks: measured, they cost 2.5 us more per wait. The timeout is one timer
    on the future waited for: an `asyncio.timeout` scope around the wait costs 2% of a
    cold answer's instructions.)
    """
    flights = [b for b in begun if isinstance(b, Flight)]
    if until is not None:
        for flight in flights:
            if flight.landed() and _failed(flight.call):
                answer = until(flight)
                if answer is not None:
                    return answer
    calls = [f.call for f in flights if not f.landed()]
    if not calls or (first and len(calls) < len(begun)):
        return None
    landed: asyncio.Future[T | None] = calls[0].task.get_loop().create_future()
    waiting = 1 if first else len(calls)
    by_call = {f.call: f for f in flights} if until is not None else {}

    def on_landed(call: Call[Any]) -> None:
        nonlocal waiting
        waiting -= 1
        if landed.done():
            return
        answer = until(by_call[call]) if until is not None and _failed(call) else None
        if answer is not None:
            landed.set_result(answer)
        elif waiting == 0:
            landed.set_result(None)

    for call in calls:
        call.add_listener(on_landed)
    timer = None if timeout is None else landed.get_loop().call_later(timeout, _expire, landed)
    try:
        return await landed
    finally:
        for call in calls:
            call.remove_listener(on_landed)
        if timer is not None:
            timer.cancel()


def _expire(landed: asyncio.Future[Any]) -> None:
    if not landed.done():
        landed.set_exception(TimeoutError())


def _failed(call: Call[Any]) -> bool:
    return call.cancelled() or call.exception() is not None


class Loader(Generic[K, V]):
    """The read-through policy over one `Cache` and one `SingleFlight`."""

    __slots__ = ("_beta", "_cache", "_clock", "_flights", "_on_refresh_error", "_reach", "_rng")

    def __init__(
        self,
        cache: Cache[K, V],
        flights: SingleFlight[K, Entry[V]],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        beta: float = 1.0,
        on_refresh_error: Callable[[K, BaseException], None] | None = None,
    ) -> None:
        if beta < 0:
            raise ValueError(f"beta must not be negative, not {beta}")
        self._cache = cache
        self._flights = flights
        self._clock = clock
        self._rng = rng
        self._beta = beta
        self._reach = beta * _XFETCH_REACH
        self._on_refresh_error = on_refresh_error

    def serves_as_is(self, entry: Entry[V]) -> bool:
        """True when `get` would answer this entry as a plain fresh hit, with no XFetch draw.

        A hot path may then serve the entry without calling `get`; otherwise it must call
        `get`, or early refresh would never happen for the keys it serves.
        """
        return self._clock() < entry.plain_until

    async def get(self, key: K, fetch: Fetch[V]) -> Lookup[V]:
        """The value for `key`, from the cache when it may be served, else from `fetch`."""
        begun = self.begin(key, fetch)
        if isinstance(begun, Lookup):
            return begun
        await landing(begun)
        return self.settle(begun)

    def begin(self, key: K, fetch: Fetch[V]) -> Lookup[V] | Flight[K, V]:
        """What `get` does before it would wait: a `Lookup` the cache serves now, or a `Flight`.

        A hit may start an early refresh (XFetch) and a stale entry a background one,
        as in `get`. A caller that needs several values begins them all, waits for
        their flights together (`landing`), then `settle`s each.
        """
        entry = self._cache.get(key)
        if entry is not None:
            now = self._clock()
            fresh_until = entry.fresh_until
            if now < fresh_until:
                delta = entry.fetch_time
                gap = fresh_until - now
                if gap <= delta * self._reach:
                    r = self._rng()
                    if r <= 0.0 or -delta * self._beta * math.log(r) >= gap:
                        self._refresh(key, fetch)
                return Lookup(entry.value, entry.stored_at, fresh_until, "hit")
            if now < entry.stale_until:
                self._refresh(key, fetch)
                return Lookup(entry.value, entry.stored_at, fresh_until, "stale")
        state: State = "coalesced" if key in self._flights else "miss"
        return Flight(key, self._flights.start(key, self._load, key, fetch), state)

    def settle(self, begun: Lookup[V] | Flight[K, V]) -> Lookup[V]:
        """The lookup a `begin` came to, once its flight (if any) has landed.

        A flight that failed with an `UpstreamError` falls back to the entry it was
        to replace while that is within its stale-if-error window; otherwise its
        exception is raised here.
        """
        if isinstance(begun, Lookup):
            return begun
        try:
            entry = begun.call.result()
        except UpstreamError:
            old = self.stand_in(begun.key)
            if old is None:
                raise
            return Lookup(old.value, old.stored_at, old.fresh_until, "stale-error")
        return Lookup(entry.value, entry.stored_at, entry.fresh_until, begun.state)

    def failure(self, flight: Flight[K, V]) -> BaseException | None:
        """What `settle` would raise for a landed flight: its failure when nothing stale
        may stand in for it (see `settle`), else None."""
        call = flight.call
        if call.cancelled():
            return asyncio.CancelledError()
        error = call.exception()
        if isinstance(error, UpstreamError) and self.stand_in(flight.key) is not None:
            return None
        return error

    def stand_in(self, key: K) -> Entry[V] | None:
        """The entry a failed or late fetch may be answered with (fresh, or stale within
        stale-if-error), if any; no I/O.

        Looked up after the fetch: the entry seen before it may be gone by then.
        """
        old = self._cache.peek(key)
        return old if old is not None and self._clock() < old.error_until else None

    def _refresh(self, key: K, fetch: Fetch[V]) -> None:
        if key in self._flights:
            return
        # Not eager: the request that found the entry due is answered before its
        # refresh does any work.
        call = self._flights.start(key, self._load, key, fetch, eager=False)
        call.add_listener(partial(self._refreshed, key))

    def _refreshed(self, key: K, call: Call[Entry[V]]) -> None:
        if self._on_refresh_error is None or call.cancelled():
            return
        exc = call.exception()
        if exc is not None:
            self._on_refresh_error(key, exc)

    def fresh(self, key: K) -> Entry[V] | None:
        """The entry when `get` would serve it as a plain hit, else None; no I/O.

        Lets a caller that needs several values skip every await when all are fresh.
        """
        entry = self._cache.get(key)
        if entry is None or self._clock() >= entry.plain_until:
            return None
        return entry

    def store(self, key: K, value: V, freshness: Freshness, *, fetch_time: float = 0.0) -> Entry[V]:
        """Keep a value obtained without `get` (a synchronous composition) as `get` would."""
        now = self._clock()
        fresh_until = now + freshness.ttl
        delta = fetch_time * self._reach
        entry = Entry(
            value,
            freshness.size,
            now - freshness.age if freshness.age else now,
            fresh_until,
            freshness.stale_while_revalidate,
            freshness.stale_if_error,
            fetch_time,
            fresh_until - delta if delta else fresh_until,
        )
        if entry.stale_until > now or entry.error_until > now:
            self._cache.put(key, entry)
        else:
            # Dead on arrival ("do not store"): drop the predecessor too, it is outdated.
            self._cache.pop(key)
        return entry

    async def _load(self, key: K, fetch: Fetch[V]) -> Entry[V]:
        started = self._clock()
        value, freshness = await fetch()
        return self.store(key, value, freshness, fetch_time=self._clock() - started)
