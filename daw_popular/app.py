"""Assembly: build the service from `Settings`, serve it, stop it cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import task_registry
from .breaker import CircuitBreaker
from .cache import Cache
from .config import Settings
from .dawapi import DawApi
from .health import Readiness, healthz
from .logs import AccessLog
from .metrics import ENDPOINT_ROUTE, Metrics
from .resilience import GuardedUpstream
from .retry import RetryBudget
from .routing import Route, Router
from .server import Handler, HttpServer
from .service import PREFIX, PopularPurchases
from .upstream import ClientLimits, UpstreamClient
from .usernames import decode_segment

if TYPE_CHECKING:
    from .shared import SharedCache

log = logging.getLogger("daw_popular")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# The cycle collector, tuned for a cache server (measured in bench/README.md).
# CPython's young generation is collected every 700 net new container objects; a
# cold answer leaves about 11 (its cache entries) and makes many short-lived ones,
# so at 700 the collector ran every few answers and rescanned the growing cache
# through the older generations: 60-130 us of every cold answer. At 10,000 a young
# collection is rare and still short; the hit path allocates no containers, so it
# never triggers one.
GC_THRESHOLDS = (10_000, 5, 10)


@dataclass(slots=True)
class App:
    """The running pieces of one service process."""

    settings: Settings
    client: UpstreamClient
    upstream: GuardedUpstream
    cache: Cache[Any, Any]
    service: PopularPurchases
    router: Router
    shared: SharedCache | None = None
    metrics: Metrics | None = None
    access_log: AccessLog | None = None

    async def close(self) -> None:
        if self.metrics is not None:
            self.metrics.publish()
        if self.access_log is not None:
            self.access_log.flush()
        await self.client.close()
        if self.shared is not None:
            await self.shared.close()


def build(settings: Settings) -> App:
    client = UpstreamClient(
        settings.upstream,
        ClientLimits(
            max_connections=settings.upstream_connections,
            max_waiting=settings.upstream_queue,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_response_bytes=settings.max_response_bytes,
        ),
    )
    upstream = GuardedUpstream(
        client,
        breaker=CircuitBreaker(
            "upstream",
            failure_threshold=settings.breaker_failures,
            reset_timeout=settings.breaker_reset,
        ),
        budget=RetryBudget(),
        retries=settings.retries,
        read_timeout=settings.read_timeout,
        deadline=settings.deadline,
    )
    api = DawApi(upstream.get_json, page_size=settings.page_size)
    cache: Cache[Any, Any] = Cache(settings.cache_bytes)
    shared = None
    if settings.redis_url:
        # Imported only when configured: redis-py costs half a second at start-up.
        from .shared import SharedCache

        shared = SharedCache.connect(
            settings.redis_url,
            timeout=settings.redis_timeout,
            lease=settings.redis_lease,
            lease_wait=settings.redis_lease_wait,
            connections=settings.redis_connections,
            breaker=CircuitBreaker(
                "redis",
                failure_threshold=settings.breaker_failures,
                reset_timeout=settings.redis_breaker_reset,
            ),
        )
    service = PopularPurchases(
        api,
        cache=cache,
        user_ttl=settings.user_ttl,
        unknown_user_ttl=settings.unknown_user_ttl,
        purchases_ttl=settings.purchases_ttl,
        product_ttl=settings.product_ttl,
        response_ttl=settings.response_ttl,
        stale_while_revalidate=settings.stale_while_revalidate,
        stale_if_error=settings.stale_if_error,
        xfetch_beta=settings.xfetch_beta,
        deadline=settings.deadline,
        max_age=settings.max_age,
        client_stale_while_revalidate=settings.client_stale_while_revalidate,
        not_found_max_age=settings.not_found_max_age,
        shared=shared,
    )
    metrics = Metrics(
        endpoint=service.counters,
        upstream=upstream.counters,
        client=client,
        breakers=[upstream.breaker],
        caches={"memory": cache},
        shared=shared,
    )
    router = Router(
        [
            Route(PREFIX + "{username}", service, converter=decode_segment, name=ENDPOINT_ROUTE),
            Route("/healthz", metrics.counted("healthz", healthz), name="healthz"),
            Route(
                "/readyz",
                metrics.counted("readyz", Readiness(upstream.breaker, shared)),
                name="readyz",
            ),
            Route("/metrics", metrics.counted("metrics", metrics.handle), name="metrics"),
        ],
        counts=metrics.routes,
    )
    app = App(settings, client, upstream, cache, service, router, shared, metrics)
    if settings.access_log:
        app.access_log = AccessLog(router, json=settings.log_json)
    return app


async def start(
    settings: Settings, *, reuse_port: bool = False, metrics_dir: str | Path | None = None
) -> tuple[App, HttpServer]:
    """Build and listen. Workers pass `reuse_port` and the directory their metrics share."""
    app = build(settings)
    # The access log wraps the router only when on: off, the request path never sees it.
    handler: Handler = app.router if app.access_log is None else app.access_log
    # The fast lane answers cache hits before routing; an access log must see them all.
    fast = app.service.fast if app.access_log is None else None
    server = HttpServer(handler, settings.limits(), fast=fast)
    await server.start(settings.host, settings.port, reuse_port=reuse_port)
    if app.metrics is not None:
        app.metrics.attach(server, metrics_dir)
    if app.access_log is not None:
        app.access_log.attach(server)
    return app, server


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event that SIGTERM or SIGINT sets while inside; back to the defaults on leaving,
    so a second signal during the graceful shutdown that follows stops at once.

    Enter it before listening: a client that can connect can also be the one that
    sends the signal, and a signal before the handler is there kills the process.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def shut_down(
    server: HttpServer, grace: float, *, on_stop: Callable[[], Any] | None = None
) -> None:
    """Stop `server` gracefully within `grace` seconds, then `on_stop()`."""
    log.info("shutting down (grace %.1f s)", grace)
    await server.shutdown(grace)
    if on_stop is not None:
        result = on_stop()
        if asyncio.iscoroutine(result):
            await result


async def serve(
    settings: Settings, *, reuse_port: bool = False, metrics_dir: str | Path | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    tune_gc()
    task_registry.install()
    with stop_signals() as stop:
        app, server = await start(settings, reuse_port=reuse_port, metrics_dir=metrics_dir)
        log.info("daw-popular listening on http://%s:%d/", settings.host, server.port)
        await stop.wait()
    await shut_down(server, settings.shutdown_grace, on_stop=app.close)


def tune_gc() -> None:
    """For a serving process, before it builds the app: see `GC_THRESHOLDS`.

    `gc.freeze()` moves everything alive now (every module, class and function the
    service imported) to the permanent generation, so no collection ever scans it
    again; it is still freed by reference counting if it dies.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
