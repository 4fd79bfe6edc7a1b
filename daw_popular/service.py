"""The Popular Purchases endpoint: cached, coalesced composition of upstream data.

Two cache levels share one byte-bounded cache:

    answer      username -> Reply (pre-built bytes)       the hit path: one lookup, one write
    resources   ("user", name) -> bool                    from GET /api/users/{name}
                ("purchases", name) -> product ids        from GET /api/purchases/by_user/{name}
                ("product", id) -> product object | None  from GET /api/products/{id}
                ("buyers", id) -> usernames, newest first from GET /api/purchases/by_product/{id}

Each level is read through a `Loader`: one fetch per key however many requests
wait (single-flight), stale-while-revalidate, XFetch early refresh and
stale-if-error. An answer stays fresh no longer than the data it was built
from, so a fresh answer never hides stale purchases.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from . import popular, responses
from .cache import ENTRY_OVERHEAD, Cache
from .dawapi import DawApi
from .errors import CircuitOpen, Overloaded, ServiceError, UpstreamTimeout
from .loader import Freshness, Loader, Lookup
from .reply import Reply
from .routing import BadParameter
from .server import Request, Result
from .singleflight import SingleFlight
from .usernames import BadUsername, decode_segment

if TYPE_CHECKING:
    from .shared import SharedCache

PREFIX = "/api/recent_purchases/"

# A resource's key is a tuple (kind, id): about this much more than the cache's
# measured per-entry overhead, which assumes a plain string key.
_TUPLE_KEY_OVERHEAD = 64


def username_param(raw: bytes) -> str:
    """Route converter: the decoded username, or a 400 for the router."""
    try:
        return decode_segment(raw)
    except BadUsername as exc:
        raise BadParameter(exc.message) from None


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
        self._shared = shared
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
        self._ok_cache_control = b"public, max-age=%d, stale-while-revalidate=%d" % (
            max_age,
            client_stale_while_revalidate,
        )
        self._not_found_cache_control = b"public, max-age=%d" % not_found_max_age

    # the route handler

    def __call__(self, request: Request, username: str) -> Result:
        entry = self._cache.get(username)
        if entry is not None and self._clock() < entry.fresh_until:
            reply: Reply = entry.value
            return reply.answer(request)
        return self._answer_slowly(request, username)

    async def _answer_slowly(self, request: Request, username: str) -> bytes:
        try:
            async with asyncio.timeout(self._deadline):
                lookup = await self._loader.get(
                    username,
                    self._through_shared(("answer", username), lambda: self._compose(username)),
                )
        except TimeoutError:
            # The deadline can fire before the upstream call's own timeout turns into
            # an UpstreamError the loader would answer with stale data: do it here.
            entry = self._cache.peek(username)
            if entry is not None and self._clock() < entry.error_until:
                stale: Reply = entry.value
                return stale.answer(request)
            return error_response(
                request,
                UpstreamTimeout(
                    f"Gateway Timeout: no complete answer from the upstream "
                    f"within {self._deadline:g} s"
                ),
            )
        except ServiceError as exc:
            return error_response(request, exc)
        reply: Reply = lookup.value
        return reply.answer(request)

    # composition (runs in its own single-flight task: a client leaving never cancels it)

    async def _compose(self, username: str) -> tuple[Reply, Freshness]:
        user, ids = await asyncio.gather(self._user(username), self._product_ids(username))
        if not user.value:
            reply = Reply.not_found(
                f"User with username of '{username}' was not found",
                cache_control=self._not_found_cache_control,
                born=user.stored_at,
            )
            return reply, self._answer_freshness(reply, [user])
        product_ids: tuple[int, ...] = ids.value
        lookups = await asyncio.gather(
            *(self._product(pid) for pid in product_ids),
            *(self._buyers(pid) for pid in product_ids),
        )
        count = len(product_ids)
        products = {pid: lookups[i].value for i, pid in enumerate(product_ids)}
        buyers = {pid: lookups[count + i].value for i, pid in enumerate(product_ids)}
        entries = popular.compose(username, list(product_ids), products, buyers)
        used: list[Lookup[Any]] = [user, ids, *lookups]
        reply = Reply.ok(
            popular.render(entries),
            cache_control=self._ok_cache_control,
            born=min(lookup.stored_at for lookup in used),
        )
        return reply, self._answer_freshness(reply, used)

    def _answer_freshness(self, reply: Reply, used: list[Lookup[Any]]) -> Freshness:
        now = self._clock()
        ttl = min([self._response_ttl, *(lookup.fresh_until - now for lookup in used)])
        return Freshness(
            ttl=max(0.0, ttl),
            stale_while_revalidate=self._swr,
            stale_if_error=self._sie,
            size=ENTRY_OVERHEAD + reply.size,
        )

    # the resources, each read through the loader

    def _resource(
        self, key: tuple[str, Any], fetch: Callable[[], Awaitable[Any]], ttl: Callable[[Any], float]
    ) -> Awaitable[Lookup[Any]]:
        async def load() -> tuple[Any, Freshness]:
            value = await fetch()
            return value, Freshness(
                ttl=ttl(value),
                stale_while_revalidate=self._swr,
                stale_if_error=self._sie,
                size=ENTRY_OVERHEAD + _TUPLE_KEY_OVERHEAD + _payload_size(value),
            )

        return self._loader.get(key, self._through_shared(key, load))

    def _through_shared(
        self, key: tuple[str, Any], fetch: Callable[[], Awaitable[tuple[Any, Freshness]]]
    ) -> Callable[[], Awaitable[tuple[Any, Freshness]]]:
        # The Redis tier, when there is one, sits behind the in-process cache: consulted
        # only on a miss or refresh, inside the loader's single-flight fetch.
        if self._shared is None:
            return fetch
        return partial(self._shared.load, key, fetch)

    def _user(self, username: str) -> Awaitable[Lookup[Any]]:
        return self._resource(
            ("user", username),
            lambda: self._api.user_exists(username),
            lambda exists: self._user_ttl if exists else self._unknown_user_ttl,
        )

    def _product_ids(self, username: str) -> Awaitable[Lookup[Any]]:
        return self._resource(
            ("purchases", username),
            lambda: self._api.recent_product_ids(username),
            lambda _: self._purchases_ttl,
        )

    def _product(self, product_id: int) -> Awaitable[Lookup[Any]]:
        return self._resource(
            ("product", product_id),
            lambda: self._api.product(product_id),
            lambda _: self._product_ttl,
        )

    def _buyers(self, product_id: int) -> Awaitable[Lookup[Any]]:
        return self._resource(
            ("buyers", product_id),
            lambda: self._api.buyers(product_id),
            lambda _: self._purchases_ttl,
        )


def _payload_size(value: Any) -> int:
    if isinstance(value, tuple):
        return 8 * len(value) + sum(len(item) if isinstance(item, str) else 0 for item in value)
    if isinstance(value, dict):
        return 64 * len(value) + sum(len(str(v)) for v in value.values())
    return 0


def error_response(request: Request, exc: ServiceError) -> bytes:
    """The one place where service errors become HTTP answers; never cached."""
    headers = [(b"Cache-Control", b"no-store")]
    if isinstance(exc, CircuitOpen | Overloaded):
        headers.append((b"Retry-After", b"%d" % max(1, round(exc.retry_after))))
    return responses.text(
        exc.status, exc.message, headers=headers, head_only=request.method == "HEAD"
    )
