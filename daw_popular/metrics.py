"""Prometheus metrics: plain counters on the request paths, exposition summed across workers.

Theory of operation
-------------------
Nothing on a request path calls into a metrics library. The endpoint keeps plain
integers (`EndpointCounters`: one list increment on a cache hit), the other parts
already keep their own (`statistics()` of the cache, the upstream client, the
breakers, the Redis tier, `HttpServer.stats`). `Metrics.snapshot()` reads them all
into one map of cumulative values; that costs microseconds and runs a few times a
second on the server's tick, never per request.

Across workers (the equivalent of prometheus-client's multiprocess mode): each
worker writes its snapshot to `<dir>/worker-<pid>.json` on every tick (atomic
rename), and `/metrics` in any worker sums the files. Counters and histograms are
summed over every worker that ever ran: when one exits, the supervisor folds its
counters into `retired.json` under an exclusive `flock`, so a scrape (shared lock)
never sees them twice or not at all. Gauges are summed over live workers only. A
worker killed with SIGKILL loses what it counted since its last tick.

Answers written at once from a fresh cached answer are recorded in the latency
histogram as taking 0 s: they leave inside the read callback, far below the first
bucket, and timing them would cost two clock reads per hit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from . import responses
from .breaker import CircuitBreaker, State
from .cache import Cache
from .errors import ServiceError
from .server import HttpServer, Request, Result
from .upstream import UpstreamClient

# A Final name for an imported function: compiled, a C static rather than a lookup in
# the module's dict (one per upstream call and per answer).
_bisect_left: Final = bisect_left

if TYPE_CHECKING:
    from .shared import SharedCache

CONTENT_TYPE: Final = b"text/plain; version=0.0.4; charset=utf-8"

# Seconds. A cache hit takes microseconds, a cold answer two dependent upstream round
# trips (a few ms on a LAN), the deadline 2 s by default.
# Not `Final`: compiled by mypyc, a Final tuple used as a default argument (Histogram's)
# was never set ("value for final name ... was not set").
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

WORKER_PREFIX: Final = "worker-"
RETIRED: Final = "retired.json"
_LOCK: Final = ".lock"

ENDPOINT_ROUTE: Final = "recent_purchases"


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: its exposition name, type and help text."""

    name: str
    type: str  # counter, gauge or histogram
    help: str


_FAMILIES: Final = (
    Family("daw_popular_requests_total", "counter", "Requests answered, by route and status."),
    Family(
        "daw_popular_request_duration_seconds",
        "histogram",
        "Time from a complete request to its answer (cache hits count as 0).",
    ),
    Family(
        "daw_popular_cache_lookups_total",
        "counter",
        "Cache lookups by level and result (hit, miss, stale, stale-error, coalesced).",
    ),
    Family("daw_popular_cache_evictions_total", "counter", "Entries evicted for space."),
    Family("daw_popular_cache_entries", "gauge", "Entries in the in-process caches."),
    Family("daw_popular_cache_bytes", "gauge", "Bytes charged to the in-process caches."),
    Family(
        "daw_popular_upstream_calls_total", "counter", "Upstream API calls (retries inside one)."
    ),
    Family(
        "daw_popular_upstream_errors_total", "counter", "Upstream API calls that failed, by kind."
    ),
    Family(
        "daw_popular_upstream_call_duration_seconds",
        "histogram",
        "Duration of upstream API calls, retries included.",
    ),
    Family("daw_popular_upstream_requests_total", "counter", "HTTP requests sent to the upstream."),
    Family("daw_popular_upstream_retries_total", "counter", "Upstream requests retried."),
    Family(
        "daw_popular_upstream_connections_opened_total",
        "counter",
        "Connections opened to the upstream.",
    ),
    Family("daw_popular_upstream_connections", "gauge", "Upstream connections by state."),
    Family("daw_popular_upstream_waiting", "gauge", "Calls queued for an upstream connection."),
    Family("daw_popular_open_connections", "gauge", "Open client connections."),
    Family("daw_popular_connections_accepted_total", "counter", "Client connections accepted."),
    Family(
        "daw_popular_connections_refused_total", "counter", "Connections refused (over the limit)."
    ),
    Family(
        "daw_popular_requests_rejected_total",
        "counter",
        "Requests refused by the HTTP core (malformed, over a limit, timed out).",
    ),
    Family(
        "daw_popular_breaker_state",
        "gauge",
        "Workers whose breaker is in this state (1 per worker).",
    ),
    Family("daw_popular_breaker_opened_total", "counter", "Times a breaker opened."),
    Family("daw_popular_breaker_rejected_total", "counter", "Calls a breaker refused."),
    Family("daw_popular_redis_operations_total", "counter", "Redis tier outcomes, by kind."),
    Family("daw_popular_workers", "gauge", "Worker processes serving."),
)
_TYPES: Final = {family.name: family.type for family in _FAMILIES}

Samples = dict[str, dict[str, float]]  # family name -> sample suffix and labels -> value


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(**pairs: str | int | float) -> str:
    """`{a="1",b="x"}` in exposition syntax (empty string for no labels)."""
    if not pairs:
        return ""
    inner = ",".join(f'{name}="{_escape(str(value))}"' for name, value in pairs.items())
    return "{" + inner + "}"


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


class Histogram:
    """Bucket counts without cumulation; `observe` is a bisect and two additions."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[_bisect_left(self.bounds, value)] += 1
        self.sum += value

    def samples(self, out: dict[str, float], extra: int = 0, **pairs: str) -> None:
        """Cumulative `_bucket`, `_sum`, `_count` samples; `extra` observations of 0 s."""
        total = extra
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out["_bucket" + labels(**pairs, le=_bound(bound))] = total
        out["_sum" + labels(**pairs)] = self.sum
        out["_count" + labels(**pairs)] = total


def status_of(wire: bytes) -> int:
    """The status code of a built response (`HTTP/1.1 200 ...`)."""
    return int(wire[9:12])


class EndpointCounters:
    """What the endpoint counts on its request paths: plain integers, read per tick."""

    __slots__ = ("at_once", "latency", "lookups", "statuses")

    def __init__(self) -> None:
        # Indexed by status code: a list increment is the cheapest count there is.
        self.at_once = [0] * 600
        self.statuses: dict[int, int] = {}
        self.latency = Histogram()
        # By level, then by state: string keys (their hashes cached) rather than a tuple
        # made, hashed twice and compared per count, which cost three times as much.
        self.lookups: dict[str, dict[str, int]] = {}

    def answered(self, wire: bytes, seconds: float) -> None:
        """An answer that was awaited (not written at once from the cache)."""
        status = status_of(wire)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latency.observe(seconds)

    def looked_up(self, level: str, state: str) -> None:
        states = self.lookups.get(level)
        if states is None:
            states = self.lookups[level] = {}
        states[state] = states.get(state, 0) + 1

    def answered_at_once(self) -> int:
        return sum(self.at_once)


class UpstreamCounters:
    """What the guarded upstream counts per call: calls, errors by kind, durations."""

    __slots__ = ("calls", "errors", "latency")

    def __init__(self) -> None:
        self.calls = 0
        self.errors: dict[str, int] = {}
        self.latency = Histogram()

    def failed(self, exc: ServiceError) -> None:
        kind = type(exc).__name__
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Metrics:
    """Collects a snapshot of every counter; serves `/metrics`; shares it across workers."""

    def __init__(
        self,
        *,
        endpoint: EndpointCounters,
        upstream: UpstreamCounters,
        client: UpstreamClient,
        breakers: Iterable[CircuitBreaker],
        caches: dict[str, Cache[Any, Any]],
        shared: SharedCache | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.upstream = upstream
        self.client = client
        self.breakers = list(breakers)
        self.caches = caches
        self.shared = shared
        self.routes: dict[tuple[str, int], int] = {}
        self.server: HttpServer | None = None
        self.directory: Path | None = None
        self._written: bytes = b""

    # wiring

    def attach(self, server: HttpServer, directory: str | Path | None = None) -> None:
        """Count `server`'s connections; with `directory`, share snapshots through it."""
        self.server = server
        if directory is not None:
            self.directory = Path(directory)
            server.on_tick(self._on_tick)
            self.publish()

    def counted(
        self, route: str, handler: Callable[[Request, str], bytes]
    ) -> Callable[[Request, str], Result]:
        """`handler` (a route answering with bytes at once) with its answers counted."""

        def counted_handler(request: Request, param: str) -> Result:
            wire = handler(request, param)
            key = (route, status_of(wire))
            self.routes[key] = self.routes.get(key, 0) + 1
            return wire

        return counted_handler

    # collection

    def snapshot(self) -> tuple[Samples, Samples]:
        """This process's (cumulative counters and histograms, gauges)."""
        counters: Samples = {f.name: {} for f in _FAMILIES if f.type != "gauge"}
        gauges: Samples = {f.name: {} for f in _FAMILIES if f.type == "gauge"}
        self._requests(counters)
        self._caches(counters, gauges)
        self._upstream(counters, gauges)
        self._server(counters, gauges)
        self._breakers(counters, gauges)
        self._shared(counters)
        gauges["daw_popular_workers"][""] = 1
        return counters, gauges

    def _requests(self, counters: Samples) -> None:
        requests = counters["daw_popular_requests_total"]
        endpoint = self.endpoint
        by_status: dict[int, int] = dict(endpoint.statuses)
        for status, count in enumerate(endpoint.at_once):
            if count:
                by_status[status] = by_status.get(status, 0) + count
        for status, count in by_status.items():
            requests[labels(route=ENDPOINT_ROUTE, status=status)] = count
        for (route, status), count in self.routes.items():
            requests[labels(route=route, status=status)] = count
        endpoint.latency.samples(
            counters["daw_popular_request_duration_seconds"],
            extra=endpoint.answered_at_once(),
            route=ENDPOINT_ROUTE,
        )

    def _caches(self, counters: Samples, gauges: Samples) -> None:
        lookups = counters["daw_popular_cache_lookups_total"]
        endpoint = self.endpoint
        hits = endpoint.answered_at_once()
        if hits:
            lookups[labels(level="answer", result="hit")] = hits
        for level, states in endpoint.lookups.items():
            for state, count in states.items():
                key = labels(level=level, result=state)
                lookups[key] = lookups.get(key, 0) + count
        for name, cache in self.caches.items():
            stats = cache.statistics()
            counters["daw_popular_cache_evictions_total"][labels(cache=name)] = stats.evictions
            gauges["daw_popular_cache_entries"][labels(cache=name)] = stats.entries
            gauges["daw_popular_cache_bytes"][labels(cache=name)] = stats.bytes

    def _upstream(self, counters: Samples, gauges: Samples) -> None:
        meter = self.upstream
        counters["daw_popular_upstream_calls_total"][""] = meter.calls
        for kind, count in meter.errors.items():
            counters["daw_popular_upstream_errors_total"][labels(kind=kind)] = count
        meter.latency.samples(counters["daw_popular_upstream_call_duration_seconds"])
        stats = self.client.statistics()
        counters["daw_popular_upstream_requests_total"][""] = stats.requests_sent
        counters["daw_popular_upstream_retries_total"][""] = stats.retries
        counters["daw_popular_upstream_connections_opened_total"][""] = stats.connections_opened
        connections = gauges["daw_popular_upstream_connections"]
        connections[labels(state="idle")] = stats.connections_idle
        connections[labels(state="in_use")] = stats.connections_in_use
        gauges["daw_popular_upstream_waiting"][""] = stats.waiting

    def _server(self, counters: Samples, gauges: Samples) -> None:
        server = self.server
        if server is None:
            return
        stats = server.stats
        gauges["daw_popular_open_connections"][""] = len(server.connections)
        counters["daw_popular_connections_accepted_total"][""] = stats.accepted
        counters["daw_popular_connections_refused_total"][""] = stats.refused
        rejected = counters["daw_popular_requests_rejected_total"]
        rejected[labels(reason="invalid")] = stats.rejected - stats.timed_out
        rejected[labels(reason="timeout")] = stats.timed_out

    def _breakers(self, counters: Samples, gauges: Samples) -> None:
        snapshots = [breaker.statistics() for breaker in self.breakers]
        if self.shared is not None:
            snapshots.append(self.shared.statistics().breaker)
        for stats in snapshots:
            for state in State:
                key = labels(breaker=stats.name, state=state.name.lower())
                gauges["daw_popular_breaker_state"][key] = int(stats.state is state)
            name = labels(breaker=stats.name)
            counters["daw_popular_breaker_opened_total"][name] = stats.times_opened
            counters["daw_popular_breaker_rejected_total"][name] = stats.rejected

    def _shared(self, counters: Samples) -> None:
        if self.shared is None:
            return
        stats = self.shared.statistics()
        operations = counters["daw_popular_redis_operations_total"]
        for kind in (
            "hits",
            "misses",
            "leases_won",
            "leases_lost",
            "waits",
            "fallbacks",
            "stored",
            "errors",
            "bypassed",
        ):
            operations[labels(kind=kind)] = getattr(stats, kind)

    # sharing across workers

    def publish(self) -> None:
        """Write this worker's snapshot where the other workers read it (if it changed)."""
        if self.directory is None:
            return
        counters, gauges = self.snapshot()
        data = orjson.dumps({"counters": counters, "gauges": gauges})
        if data == self._written:
            return
        path = self.directory / f"{WORKER_PREFIX}{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)
        self._written = data

    def _on_tick(self, now: float) -> None:
        with contextlib.suppress(OSError):
            self.publish()

    def collect(self) -> tuple[Samples, Samples]:
        """Counters and gauges of every worker summed (this process alone without a dir)."""
        if self.directory is None:
            return self.snapshot()
        self.publish()
        return read_directory(self.directory)

    # the route

    def handle(self, request: Request, _: str) -> bytes:
        """`GET /metrics`."""
        body = render(*self.collect()).encode("utf-8")
        return responses.response(
            200,
            body,
            content_type=CONTENT_TYPE,
            headers=[(b"Cache-Control", b"no-store")],
            head_only=request.method == "HEAD",
        )


# the directory of snapshots


@contextlib.contextmanager
def _locked(directory: Path, mode: int) -> Iterator[None]:
    with open(directory / _LOCK, "a+b") as lock:
        fcntl.flock(lock, mode)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _add(into: Samples, samples: Samples) -> None:
    for family, values in samples.items():
        target = into.setdefault(family, {})
        for key, value in values.items():
            target[key] = target.get(key, 0) + value


def _load(path: Path) -> dict[str, Samples]:
    try:
        data: dict[str, Samples] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data


def read_directory(directory: Path) -> tuple[Samples, Samples]:
    """Counters of every worker that ran, and gauges of those still running, summed."""
    counters: Samples = {}
    gauges: Samples = {}
    with _locked(directory, fcntl.LOCK_SH):
        _add(counters, _load(directory / RETIRED).get("counters", {}))
        for path in directory.glob(WORKER_PREFIX + "*.json"):
            data = _load(path)
            _add(counters, data.get("counters", {}))
            _add(gauges, data.get("gauges", {}))
    return counters, gauges


def retire(directory: Path, pid: int) -> None:
    """Fold a worker that exited into the retired totals; its gauges go with it."""
    path = directory / f"{WORKER_PREFIX}{pid}.json"
    with _locked(directory, fcntl.LOCK_EX):
        counters = _load(directory / RETIRED).get("counters", {})
        _add(counters, _load(path).get("counters", {}))
        temporary = directory / (RETIRED + ".tmp")
        temporary.write_bytes(orjson.dumps({"counters": counters}))
        os.replace(temporary, directory / RETIRED)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            path.with_suffix(".tmp").unlink()


# exposition


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render(counters: Samples, gauges: Samples) -> str:
    """Prometheus text format 0.0.4, families in a fixed order."""
    lines: list[str] = []
    for family in _FAMILIES:
        samples = (gauges if family.type == "gauge" else counters).get(family.name, {})
        if not samples:
            continue
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.type}")
        lines.extend(f"{family.name}{key} {_number(value)}" for key, value in samples.items())
    return "\n".join(lines) + "\n"
