"""The Popular Purchases endpoint: cached, coalesced composition of upstream data.

Two cache levels share one byte-bounded cache:

    answer      raw request path -> Reply (pre-built bytes) the hit path: one lookup, one write
    resources   ("user", name) -> bool                    from GET /api/users/{name}
                ("purchases", name) -> product ids        from GET /api/purchases/by_user/{name}
                ("product", id) -> product object | None  from GET /api/products/{id}
                ("buyers", id) -> usernames, newest first from GET /api/purchases/by_product/{id}

Each level is read through a `Loader`: one fetch per key however many requests
wait (single-flight), stale-while-revalidate, XFetch early refresh and
stale-if-error. An answer stays fresh no longer than the data it was built
from, so a fresh answer never hides stale purchases. When an answer expires
but its data is still fresh (the warm path), it is rebuilt synchronously, in
the request's own call, without a task; a stale answer (stale-while-revalidate)
is also served from that call, its refresh started there.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import orjson

from . import popular, responses
from .cache import ENTRY_OVERHEAD, Cache
from .dawapi import DawApi
from .errors import CircuitOpen, Overloaded, ServiceError, UpstreamTimeout
from .loader import Flight, Freshness, Loader, Lookup, Timed, landing
from .metrics import EndpointCounters
from .reply import Reply
from .server import Later, Request, Result
from .singleflight import Call, SingleFlight

if TYPE_CHECKING:
    from .shared import SharedCache

# Final names for imported functions: compiled, each is a C static rather than a lookup
# in a module's dict (`partial`: one or two per upstream call; the others per answer).
_partial: Final = partial
_perf_counter: Final = time.perf_counter
_dumps: Final = orjson.dumps

PREFIX: Final = "/api/recent_purchases/"

# A resource's key is a tuple (kind, id): about this much more than the cache's
# measured per-entry overhead, which assumes a plain string key.
_TUPLE_KEY_OVERHEAD: Final = 64

Begun: TypeAlias = Lookup[Any] | Flight[Any, Any]
Fetch = Callable[[], Awaitable[tuple[Any, Freshness]]]


class PopularPurchases:
    """Answers `GET /api/recent_purchases/{username}` from cache or upstream."""

    def __init__(
        self,
        api: DawApi,
        *,
        cache: Cache[Any, Any],
        user_ttl: float = 600.0,
        unknown_user_ttl: float = 30.0,
        purchases_ttl: float = 30.0,
        product_ttl: float = 600.0,
        response_ttl: float = 30.0,
        stale_while_revalidate: float = 60.0,
        stale_if_error: float = 600.0,
        xfetch_beta: float = 1.0,
        deadline: float = 2.0,
        max_age: int = 15,
        client_stale_while_revalidate: int = 30,
        not_found_max_age: int = 10,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedCache | None = None,
    ) -> None:
        self._api = api
        # The resources by kind: the call that fetches each (see `_fetch`).
        self._calls: dict[str, Callable[[Any], Awaitable[Any]]] = {
            "user": api.user_exists,
            "purchases": api.recent_product_ids,
            "product": api.product,
            "buyers": api.buyers,
        }
        self._shared = shared
        # Plain counters, read by the metrics a few times a second.
        self.counters = EndpointCounters()
        self._at_once = self.counters.at_once
        self._cache = cache
        self._clock = clock
        self._loader: Loader[Any, Any] = Loader(
            cache, SingleFlight(), clock=clock, beta=xfetch_beta
        )
        self._user_ttl = user_ttl
        self._unknown_user_ttl = unknown_user_ttl
        self._purchases_ttl = purchases_ttl
        self._product_ttl = product_ttl
        self._response_ttl = response_ttl
        self._swr = stale_while_revalidate
        self._sie = stale_if_error
        self._deadline = deadline
        self._max_age = max_age
        self._client_swr = client_stale_while_revalidate
        self._not_found_max_age = not_found_max_age

    # the route handler

    def fast(self, path: bytes) -> bytes | None:
        """The server's fast lane: a plain keep-alive GET of a fresh cached answer.

        Called with the raw request target before any routing or decoding; None
        sends the request down the full path (router, then `__call__`).
        """
        entry = self._cache.get(path)
        # Loader.serves_as_is, inlined: a method call is a tenth of a repeated hit.
        if entry is None or self._clock() >= entry.plain_until:
            return None
        reply: Reply = entry.value
        self._at_once[reply.status] += 1
        return reply.wire()

    def __call__(self, request: Request, username: str) -> Result:
        # Answers are kept under the raw path, so a hit needs no decoding; two
        # spellings of one name share every upstream resource below the answer.
        key = request.path
        entry = self._cache.get(key)
        # Near its expiry a hot answer goes through the loader, which may refresh it early.
        if entry is not None and self._loader.serves_as_is(entry):
            reply: Reply = entry.value
            if request.if_none_match is None:
                self._at_once[reply.status] += 1
                return reply.answer(request)
            return self._answer_conditionally(reply, request)
        composed = self._compose_now(username)
        if composed is not None:
            reply = self._loader.store(key, *composed).value
            self.counters.looked_up("answer", "miss")
            return self._answer_conditionally(reply, request)
        # Begun here, not in the task that waits for it: the composition runs at once,
        # up to its first wait (its upstream requests are sent before this returns).
        begun = self._loader.begin(
            key, self._through_shared(("answer", username), lambda: self._compose(username))
        )
        if isinstance(begun, Lookup):  # a hit due for early refresh, or stale: served now
            self.counters.looked_up("answer", begun.state)
            return self._answer_conditionally(begun.value, request)
        later = Later()
        _Awaited(self, request, key, username, begun, later)
        return later

    def _answer_conditionally(self, reply: Reply, request: Request) -> bytes:
        wire = reply.answer(request)
        # A 304 is counted as such; it is the only other status a cached answer gives.
        self._at_once[304 if wire.startswith(b"HTTP/1.1 304") else reply.status] += 1
        return wire

    def _landed(self, request: Request, flight: Flight[Any, Any]) -> bytes:
        """The answer to `request` once the answer's flight has landed."""
        try:
            lookup = self._loader.settle(flight)
        except ServiceError as exc:
            return error_response(request, exc)
        self.counters.looked_up("answer", lookup.state)
        reply: Reply = lookup.value
        return reply.answer(request)

    def _too_late(self, request: Request, key: bytes, username: str) -> bytes:
        """The answer to `request` when the deadline passed before the flight landed."""
        # The deadline can fire before the upstream call's own timeout turns into an
        # UpstreamError the loader would answer with stale data: do it here, from the
        # answer kept for this path, else from the resources (another spelling of the
        # name, or an answer evicted before its data).
        entry = self._cache.peek(key)
        if entry is not None and self._clock() < entry.error_until:
            self.counters.looked_up("answer", "stale-error")
            stale: Reply = entry.value
            return stale.answer(request)
        composed = self._compose_cached(username, stale_if_error=True)
        if composed is not None:
            self.counters.looked_up("answer", "stale-error")
            return composed[0].answer(request)
        return error_response(
            request,
            UpstreamTimeout(
                f"Gateway Timeout: no complete answer from the upstream within {self._deadline:g} s"
            ),
        )

    # composition

    def _compose_now(self, username: str) -> tuple[Reply, Freshness] | None:
        """The answer from resources all fresh in this process, without a task; else None.

        The warm path: a finished answer expired or was evicted, its data was not.
        """
        return self._compose_cached(username, stale_if_error=False)

    def _compose_cached(
        self, username: str, *, stale_if_error: bool
    ) -> tuple[Reply, Freshness] | None:
        """The answer from resources in this process, without I/O; else None.

        Each resource must be fresh, or with `stale_if_error` may be stale within its
        stale-if-error window (the deadline's fallback, see `_too_late`).
        """
        # `self._loader.fresh(...)` each time, not a local bound method: compiled, that
        # is a native call.
        loader = self._loader
        key: tuple[str, Any] = ("user", username)
        user = loader.stand_in(key) if stale_if_error else loader.fresh(key)
        if user is None:
            return None
        if not user.value:
            return self._not_found(username, user)
        key = ("purchases", username)
        ids = loader.stand_in(key) if stale_if_error else loader.fresh(key)
        if ids is None:
            return None
        lookups: list[Timed] = []
        for kind in ("product", "buyers"):
            for pid in ids.value:
                key = (kind, pid)
                lookup = loader.stand_in(key) if stale_if_error else loader.fresh(key)
                if lookup is None:
                    return None
                lookups.append(lookup)
        return self._popular(username, user, ids, lookups)

    async def _compose(self, username: str) -> tuple[Reply, Freshness]:
        """The answer, fetching what is missing (runs in its own single-flight task,
        so a client leaving never cancels it).

        The second round (products and their buyers) starts as soon as the purchases
        are known, without waiting for the user lookup: an unknown user has no
        purchases, so nothing is fetched in vain. When this composition fetches the
        purchases itself, that fetch begins the second round in the task step that
        parses them, not three steps later when this coroutine resumes (the fetch's
        end, the wait's callback, this task's wake-up): under load each step waits
        behind the others' work, and the second round's 2 ms start that much sooner.
        Waiting never cancels a fetch (see `landing`): whatever was started goes on to
        fill the cache.
        """
        # The purchases go first: the second round waits for them, not for the user
        # lookup, and an upstream that serves calls in order then answers them first.
        key = ("purchases", username)
        second_round = _SecondRound()
        fetch = _partial(self._fetch_purchases, key, second_round)
        ids = self._begin(key, self._through_shared(key, fetch))
        user = self._begin(("user", username))
        await landing(user, ids, first=True)
        if isinstance(user, Lookup) or user.landed():  # a failure is raised here
            user = self._settle(user)
            if not user.value:
                return self._not_found(username, user)
        await landing(ids)
        ids = self._settle(ids)
        product_ids: tuple[int, ...] = ids.value
        second = second_round.begun
        if second is None:  # the purchases came from a cache or from another's fetch
            second = self._begin_second_round(product_ids)
        # A failure with nothing stale to stand in for it ends the wait at once.
        error = await landing(user, *second, until=self._loader.failure)
        if error is not None:
            raise error
        user = self._settle(user)
        if not user.value:
            return self._not_found(username, user)
        return self._popular(username, user, ids, [self._settle(b) for b in second])

    def _not_found(self, username: str, user: Timed) -> tuple[Reply, Freshness]:
        message = f"User with username of '{username}' was not found"
        return self._finish(
            [user],
            lambda lifetime, age, born: Reply.not_found(
                message,
                cache_control=b"public, max-age=%d"
                % client_max_age(lifetime, age, self._not_found_max_age),
                born=born,
            ),
        )

    def _popular(
        self,
        username: str,
        user: Timed,
        ids: Timed,
        lookups: list[Timed],
    ) -> tuple[Reply, Freshness]:
        """`lookups`: each product's object, then each product's buyers, in `ids` order."""
        product_ids: tuple[int, ...] = ids.value
        count = len(product_ids)
        products: dict[int, Any] = {}
        buyers: dict[int, Any] = {}
        for i, pid in enumerate(product_ids):
            products[pid] = lookups[i].value
            buyers[pid] = lookups[count + i].value
        body = popular.render(popular.compose(username, list(product_ids), products, buyers))
        return self._finish(
            [user, ids, *lookups],
            lambda lifetime, age, born: Reply.ok(
                body,
                cache_control=b"public, max-age=%d, stale-while-revalidate=%d"
                % (client_max_age(lifetime, age, self._max_age), self._client_swr),
                born=born,
            ),
        )

    def _finish(
        self, used: list[Timed], make: Callable[[int, int, float], Reply]
    ) -> tuple[Reply, Freshness]:
        """`make(lifetime, age, born)`, and lifetimes no answer built from `used` may
        outlast: the answer's `lifetime` and `age` in whole seconds (see
        `client_max_age`), `born` the birth of its oldest data."""
        now = self._clock()
        # One typed pass: compiled, the floats stay unboxed (`min()` over lists of them
        # boxed each one).
        data_fresh_until = born = math.inf
        for lookup in used:
            if lookup.fresh_until < data_fresh_until:
                data_fresh_until = lookup.fresh_until
            if lookup.stored_at < born:
                born = lookup.stored_at
        fresh_until = now if data_fresh_until < now else data_fresh_until
        if now + self._response_ttl < fresh_until:
            fresh_until = now + self._response_ttl
        # Whole seconds, as `Age` is sent (the millisecond absorbs clock-subtraction noise).
        lifetime = int(fresh_until - born + 0.001)
        age = int(now - born)
        reply = make(lifetime, age, born)
        # The data's windows bound the answer's: re-composing from stale data (as a
        # stale-if-error fallback does) must not stretch how long that data is served.
        return reply, Freshness(
            ttl=fresh_until - now,
            stale_while_revalidate=_remaining(data_fresh_until, self._swr, fresh_until),
            stale_if_error=_remaining(data_fresh_until, self._sie, fresh_until),
            size=ENTRY_OVERHEAD + reply.size,
        )

    # the resources, each read through the loader

    def _begin(self, key: tuple[str, Any], fetch: Fetch | None = None) -> Begun:
        if fetch is None:
            fetch = self._through_shared(key, _partial(self._fetch, key))
        begun = self._loader.begin(key, fetch)
        if isinstance(begun, Lookup):
            self.counters.looked_up(key[0], begun.state)
        return begun

    def _settle(self, begun: Begun) -> Lookup[Any]:
        if isinstance(begun, Lookup):
            return begun
        lookup = self._loader.settle(begun)
        self.counters.looked_up(begun.key[0], lookup.state)
        return lookup

    def _begin_second_round(self, product_ids: tuple[int, ...]) -> list[Begun]:
        """Each product's object, then each product's buyers, in `product_ids` order."""
        second = [self._begin(("product", pid)) for pid in product_ids]
        second += [self._begin(("buyers", pid)) for pid in product_ids]
        return second

    async def _fetch_purchases(
        self, key: tuple[str, Any], second_round: _SecondRound
    ) -> tuple[Any, Freshness]:
        """`_fetch`, then the second round begun at once, in the same task step."""
        value, freshness = await self._fetch(key)
        second_round.begun = self._begin_second_round(value)
        return value, freshness

    async def _fetch(self, key: tuple[str, Any]) -> tuple[Any, Freshness]:
        kind, ident = key
        value = await self._calls[kind](ident)
        if kind == "user":
            ttl = self._user_ttl if value else self._unknown_user_ttl
        else:
            ttl = self._product_ttl if kind == "product" else self._purchases_ttl
        return value, Freshness(
            ttl=ttl,
            stale_while_revalidate=self._swr,
            stale_if_error=self._sie,
            size=ENTRY_OVERHEAD + _TUPLE_KEY_OVERHEAD + _payload_size(value),
        )

    def _through_shared(
        self, key: tuple[str, Any], fetch: Callable[[], Awaitable[tuple[Any, Freshness]]]
    ) -> Callable[[], Awaitable[tuple[Any, Freshness]]]:
        # The Redis tier, when there is one, sits behind the in-process cache: consulted
        # only on a miss or refresh, inside the loader's single-flight fetch.
        if self._shared is None:
            return fetch
        return _partial(self._shared.load, key, fetch)


class _Awaited:
    """A request waiting for its answer's flight, by callbacks rather than a task.

    The answer is given (`Later`) by a listener of the flight's call, which the server
    writes at once: in the composition's last task step, as it ends (see
    `singleflight`). A task awaiting the flight would write it two event-loop turns
    later (the wait's callback, then the task's step), a done callback of the flight's
    task one turn later, and under load each turn waits behind everything else that
    became ready first. A timer gives the deadline's answer instead when the flight is
    late. Waiting never cancels the flight (see `landing`).
    """

    __slots__ = (
        "_flight",
        "_key",
        "_later",
        "_request",
        "_service",
        "_started",
        "_timer",
        "_username",
    )

    def __init__(
        self,
        service: PopularPurchases,
        request: Request,
        key: bytes,
        username: str,
        flight: Flight[Any, Any],
        later: Later,
    ) -> None:
        self._service = service
        self._request = request
        self._key = key
        self._username = username
        self._flight = flight
        self._later = later
        self._started = _perf_counter()
        call = flight.call
        self._timer = call.task.get_loop().call_later(service._deadline, self._expired)
        call.add_listener(self._landed)

    def _landed(self, _call: Call[Any]) -> None:
        if self._timer.cancelled():
            return  # the deadline's answer was given
        self._timer.cancel()
        try:
            wire = self._service._landed(self._request, self._flight)
        except (Exception, asyncio.CancelledError) as exc:  # a cancelled flight, or a bug
            self._later.fail(exc)  # the server answers 503 or 500
            return
        self._give(wire)

    def _expired(self) -> None:
        self._timer.cancel()  # marks the wait over for `_landed`
        self._give(self._service._too_late(self._request, self._key, self._username))

    def _give(self, wire: bytes) -> None:
        self._service.counters.answered(wire, _perf_counter() - self._started)
        self._later.give(wire)


class _SecondRound:
    """The second round of a composition, when its own purchases fetch began it."""

    __slots__ = ("begun",)

    def __init__(self) -> None:
        self.begun: list[Begun] | None = None


def client_max_age(lifetime: int, age: int, seconds: int) -> int:
    """The `max-age` of an answer `age` seconds old (its `Age` now) that may stay fresh
    `lifetime` seconds from its birth, for a client to keep it at most `seconds` more.

    `Age` counts from the oldest data in the answer, so `max-age` must too: a client
    then sees the answer stale exactly when it is (`lifetime` is rounded down, so never
    later), and a fresh answer built from data older than `seconds` does not arrive
    stale.
    """
    return min(lifetime, age + seconds)


def _remaining(data_fresh_until: float, window: float, fresh_until: float) -> float:
    """What is left of a window that opened when the data went stale, from `fresh_until`."""
    return max(0.0, min(window, data_fresh_until + window - fresh_until))


def _payload_size(value: Any) -> int:
    if isinstance(value, tuple):
        return 8 * len(value) + sum([len(item) for item in value if isinstance(item, str)])
    if isinstance(value, dict):
        return 64 * len(value) + len(_dumps(value))
    return 0


def error_response(request: Request, exc: ServiceError) -> bytes:
    """The one place where service errors become HTTP answers; never cached."""
    headers = [(b"Cache-Control", b"no-store")]
    if isinstance(exc, CircuitOpen | Overloaded):
        headers.append((b"Retry-After", b"%d" % max(1, round(exc.retry_after))))
    return responses.text(
        exc.status, exc.message, headers=headers, head_only=request.method == "HEAD"
    )
