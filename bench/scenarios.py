"""The scenarios: hot, warm, cold, stampede, memory. Each returns a JSON-ready dict.

Every scenario starts its own simulator and service (their settings differ), so one
scenario's cache never helps another's. The limit server replays a response the
service really sent in the same scenario.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import uvloop

from . import client, procs, speed, upstream_probe, wrk
from .progress import Progress

PREFIX = "/api/recent_purchases/"
ROTATE = Path(__file__).with_name("rotate.lua")
MIB = 1024**2

# Upstream data that never expires during a run, so the warm and memory scenarios
# measure what they say and no background refresh runs in the middle.
LONG_TTLS = ("--user-ttl", "3600", "--purchases-ttl", "3600", "--product-ttl", "3600")
# The warm path's service: no finished answers kept (ttl 0 and no stale windows), so
# each request composes its answer from the upstream data cached.
COMPOSE_EVERY_TIME = (
    "--response-ttl", "0", "--stale-while-revalidate", "0", "--stale-if-error", "0",
    "--xfetch-beta", "0", *LONG_TTLS,
)  # fmt: skip

# Issue 4's targets.
HOT_RATIO = 0.8
HOT_P99_C10_MS = 1.0
COLD_UPSTREAM_MS = 2.0
COLD_SLACK_MS = 1.0
BYTES_PER_USER = 4096
# RSS allowed beyond the cache cap: the interpreter and its modules (the baseline,
# measured) plus this much for allocator slack and buffers.
RSS_SLACK = 32 * MIB


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run measures, and how long each load lasts."""

    duration: float
    hot_connections: tuple[int, ...] = (1, 10, 100, 1000, 10000)
    warm_users: int = 10_000
    warm_connections: tuple[int, ...] = (100, 1000)
    cold_connections: tuple[int, ...] = (1, 10)
    cold_users: tuple[int, ...] = (5_000, 25_000)  # per round, at each concurrency
    # The service and the cold limit, one after the other, this many times at each
    # concurrency; the median round is reported (the machines' speed drifts).
    cold_rounds: int = 3
    # Likewise for the hot path where a target is checked (the p99 at c=10, the ratio
    # to the limit server at c=100 and c=1000): a load of a few seconds can land on a
    # stretch where the server's core runs at half speed, and the other server's not.
    hot_rounds: int = 3
    # The hot path beside other servers serving the same bytes (the `peers` scenario).
    peer_connections: tuple[int, ...] = (10, 100, 1000)
    stampede_clients: int = 1000
    memory_users: int = 100_000
    memory_cap: int = 64 * MIB
    memory_phase_cap: bool = True

    @classmethod
    def quick(cls, duration: float) -> Plan:
        return cls(
            duration=duration,
            hot_connections=(10, 100, 1000),
            warm_users=2_000,
            warm_connections=(100,),
            cold_connections=(10,),
            cold_users=(8_000,),
            cold_rounds=1,
            hot_rounds=1,
            peer_connections=(100,),
            stampede_clients=1000,
            memory_users=10_000,
            memory_cap=8 * MIB,
            memory_phase_cap=False,
        )


@dataclass(frozen=True, slots=True)
class Context:
    plan: Plan
    logs: Path
    progress: Progress
    wrk_binary: str = "wrk"


Check = dict[str, Any]


def check(name: str, target: str, measured: str, ok: bool) -> Check:
    return {"name": name, "target": target, "measured": measured, "ok": ok}


# helpers


def _load_run(
    ctx: Context,
    label: str,
    proc: procs.Proc,
    connections: int,
    *,
    paths_file: Path | None = None,
    path: str = "/",
) -> wrk.WrkResult:
    seconds = ctx.plan.duration
    argv = wrk.command(
        proc.url + path,
        connections,
        seconds,
        cpu=procs.LOAD_CPU,
        script=ROTATE if paths_file else None,
        script_args=[str(paths_file)] if paths_file else (),
        binary=ctx.wrk_binary,
    )
    before = speed.probe(procs.SERVER_CPU)
    result = wrk.run(argv, seconds, tick=ctx.progress.timer(label))
    after = speed.probe(procs.SERVER_CPU)
    result = dataclasses.replace(result, probe_ms=(before, after))
    ctx.progress.step(
        f"  {label}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.3f} ms, "
        f"p99 {result.p99_ms:.3f} ms, errors {result.errors}, timeouts {result.timeouts}, "
        f"core {procs.SERVER_CPU} probe {before:.1f} / {after:.1f} ms"
    )
    return result


def _usernames(sim: procs.Proc, count: int) -> list[str]:
    users = procs.get_json(sim.port, f"/api/users?limit={count}")["users"]
    return [user["username"] for user in users]


def _distinct_products(sim: procs.Proc, username: str) -> list[int]:
    target = f"/api/purchases/by_user/{quote(username, safe='')}?limit=5"
    purchases = procs.get_json(sim.port, target)["purchases"]
    return list(dict.fromkeys(p["productId"] for p in purchases))


def _busy_user(sim: procs.Proc, names: Sequence[str]) -> tuple[str, list[int]]:
    """A user whose five recent purchases name the most distinct products (five if any)."""
    best: tuple[str, list[int]] = (names[0], [])
    for name in names[:200]:
        products = _distinct_products(sim, name)
        if len(products) > len(best[1]):
            best = (name, products)
        if len(products) == 5:
            break
    return best


def _path(username: str) -> str:
    return PREFIX + quote(username, safe="")


def _write_paths(ctx: Context, name: str, paths: Sequence[str]) -> Path:
    file = ctx.logs / f"{name}.paths"
    file.write_text("".join(p + "\n" for p in paths))
    return file


def _load_all(ctx: Context, port: int, paths: Sequence[str], label: str) -> dict[int, int]:
    total = len(paths)

    def show(done: int) -> None:
        ctx.progress.status(f"{label}: {done:,}/{total:,}")

    started = time.monotonic()
    statuses = uvloop.run(client.load(port, paths, progress=show))
    seconds = time.monotonic() - started
    ctx.progress.step(f"  {label}: {total:,} requests in {seconds:.1f} s {dict(statuses)}")
    return dict(statuses)


def _sim_stats(sim: procs.Proc) -> dict[str, int]:
    stats: dict[str, int] = procs.get_json(sim.port, "/__sim/stats")
    return stats


def _side_by_side(
    ctx: Context,
    scenario: str,
    service: procs.Proc,
    limit: procs.Proc,
    connections: Sequence[int],
    *,
    path: str = "/",
    paths_file: Path | None = None,
    sim: procs.Proc | None = None,
    rounds: int = 1,
    median_by: Mapping[int, Callable[[dict[str, Any]], float]] | None = None,
) -> list[dict[str, Any]]:
    """At each concurrency, the service then the limit server, same load.

    At a concurrency `median_by` names, `rounds` times: the point is the round that is
    the median by `median_by[c]` (the lower of the middle two), every round beside it.
    """
    points = []
    for c in connections:
        measure = (median_by or {}).get(c)
        results = []
        for _ in range(1 if measure is None else rounds):
            if sim is not None:
                procs.post(sim.port, "/__sim/stats/reset")
            ours = _load_run(
                ctx, f"{scenario} c={c} service", service, c, path=path, paths_file=paths_file
            )
            upstream = sum(_sim_stats(sim).values()) if sim is not None else None
            bound = _load_run(
                ctx, f"{scenario} c={c} limit", limit, c, path=path, paths_file=paths_file
            )
            point: dict[str, Any] = {
                "service": ours.as_dict(),
                "limit": bound.as_dict(),
                "ratio": ours.rps / bound.rps if bound.rps else 0.0,
            }
            if upstream is not None:
                point["upstream_calls"] = upstream
            results.append(point)
        if len(results) == 1:
            points.append({"connections": c, **results[0]})
        else:
            assert measure is not None
            points.append({"connections": c, **_median(results, measure), "rounds": results})
    return points


# scenarios


@contextlib.contextmanager
def _hot_service(ctx: Context) -> Iterator[tuple[procs.Proc, str, str, bytes]]:
    """A service with one busy user's answer cached: the service, the user, the path,
    and the answer's exact bytes (a hit, as every later request for it)."""
    with procs.simulator(ctx.logs, users=1000, products=1000) as sim:
        username, _ = _busy_user(sim, _usernames(sim, 1000))
        path = _path(username)
        with procs.service(ctx.logs, sim.url) as service:
            procs.raw_get(service.port, path)
            yield service, username, path, procs.raw_get(service.port, path)


def hot(ctx: Context) -> dict[str, Any]:
    """One cached user, many connections: the cache-hit path against the limit server.

    Where a target is checked (c=10, 100, 1000), `hot_rounds` rounds of both.
    """
    with (
        _hot_service(ctx) as (service, username, path, answer),
        procs.limit_server(ctx.logs, answer) as limit,
    ):
        points = _side_by_side(
            ctx,
            "hot",
            service,
            limit,
            ctx.plan.hot_connections,
            path=path,
            rounds=ctx.plan.hot_rounds,
            median_by={10: _service_p99, 100: _ratio, 1000: _ratio},
        )
    checks = []
    by_c = {p["connections"]: p for p in points}
    for c in (100, 1000):
        if c in by_c:
            ratio = by_c[c]["ratio"]
            checks.append(
                check(
                    f"hot c={c} throughput",
                    f">= {HOT_RATIO}x limit",
                    f"{ratio:.2f}x",
                    ratio >= HOT_RATIO,
                )
            )
    if 10 in by_c:
        p99 = by_c[10]["service"]["p99_ms"]
        checks.append(
            check("hot c=10 p99", f"<= {HOT_P99_C10_MS} ms", f"{p99:.3f} ms", p99 <= HOT_P99_C10_MS)
        )
    top = max(by_c)
    failures = by_c[top]["service"]["errors"] + by_c[top]["service"]["timeouts"]
    checks.append(
        check(
            f"hot c={top} errors + timeouts",
            "0",
            f"{by_c[top]['service']['errors']} errors, {by_c[top]['service']['timeouts']} timeouts",
            failures == 0,
        )
    )
    return {"user": username, "response_bytes": len(answer), "points": points, "checks": checks}


# Other servers serving the bytes of the hot answer (`bench/peers.py`), and Varnish
# caching it.
PEERS: Final = ("uvicorn", "aiohttp", "granian", "varnish")


def peers(ctx: Context) -> dict[str, Any]:
    """The hot path beside other servers serving the same bytes, in one run.

    The service and the limit server, then uvicorn, aiohttp and granian answering every
    request with the service's cached answer (`bench/peers.py`), and Varnish serving it
    from its cache. Varnish fetches it from the limit server, which replays it as it was
    captured (`Age: 0`): the service's own copy grows older, and once its `Age` passes
    its `max-age` (15 s) a shared cache may no longer keep it, so that Varnish in front
    of the service would pass every request through. Each alone on the servers' core,
    one after another at each concurrency, so that the machine's drift touches all
    alike. A peer that is not installed is reported so, and the others still run.
    Reported, not checked: the targets are the limit server's.
    """
    with _hot_service(ctx) as (service, username, path, answer), contextlib.ExitStack() as stack:
        servers = {
            "service": service,
            "limit server": stack.enter_context(procs.limit_server(ctx.logs, answer)),
        }
        missing: dict[str, str] = {}
        for name in PEERS:
            try:
                servers[name] = stack.enter_context(
                    procs.varnish(ctx.logs, servers["limit server"].port)
                    if name == "varnish"
                    else procs.peer(ctx.logs, name, answer)
                )
            except procs.ProcessError as exc:
                missing[name] = str(exc).splitlines()[-1] if str(exc) else "did not start"
                ctx.progress.step(f"  peers: {name} left out: {missing[name]}")
        for proc in servers.values():
            _expect_answer(proc, path, answer)
        points = []
        for c in ctx.plan.peer_connections:
            results = {
                name: _load_run(ctx, f"peers c={c} {name}", proc, c, path=path).as_dict()
                for name, proc in servers.items()
            }
            ours = results["service"]["rps"]
            points.append(
                {
                    "connections": c,
                    "servers": results,
                    "service_to": {
                        name: ours / r["rps"] if r["rps"] else 0.0
                        for name, r in results.items()
                        if name != "service"
                    },
                }
            )
    # "runs", not "points": each holds every server's result, not a service-limit pair.
    return {"user": username, "runs": points, "missing": missing, "checks": []}


def _expect_answer(proc: procs.Proc, path: str, answer: bytes) -> None:
    """The server answers `path` with the answer's status and body (its own head aside)."""
    got = procs.raw_get(proc.port, path)
    if got.split(b" ", 2)[1] != answer.split(b" ", 2)[1] or (
        got.partition(b"\r\n\r\n")[2] != answer.partition(b"\r\n\r\n")[2]
    ):
        raise procs.ProcessError(f"{proc.name} does not serve the service's answer:\n{got!r}")


def warm(ctx: Context) -> dict[str, Any]:
    """Distinct users in rotation, upstream data cached, every answer composed."""
    users = ctx.plan.warm_users
    with procs.simulator(ctx.logs, users=users, products=users) as sim:
        paths = [_path(name) for name in _usernames(sim, users)]
        with procs.service(ctx.logs, sim.url, COMPOSE_EVERY_TIME) as service:
            statuses = _load_all(ctx, service.port, paths, "warm: caching upstream data")
            answer = procs.raw_get(service.port, paths[0])
            paths_file = _write_paths(ctx, "warm", paths)
            with procs.limit_server(ctx.logs, answer) as limit:
                points = _side_by_side(
                    ctx,
                    "warm",
                    service,
                    limit,
                    ctx.plan.warm_connections,
                    paths_file=paths_file,
                    sim=sim,
                )
    upstream = sum(p["upstream_calls"] for p in points)
    errors = sum(p["service"]["errors"] + p["service"]["timeouts"] for p in points)
    checks = [
        check("warm upstream calls under load", "0", str(upstream), upstream == 0),
        check("warm errors + timeouts", "0", str(errors), errors == 0),
    ]
    return {"users": users, "priming": statuses, "points": points, "checks": checks}


def _upstream_rtt_ms(sim: procs.Proc, username: str, samples: int = 50) -> float:
    """The upstream's idle round trip: the median of `samples` back-to-back GETs."""
    target = _probe_target(username)
    return statistics.median(
        uvloop.run(upstream_probe.round_trips(sim.port, target, samples=samples))
    )


def _probe_target(username: str) -> str:
    return f"/api/users/{quote(username, safe='')}"


def _upstream_call_seconds(service: procs.Proc) -> tuple[float, float]:
    """The service's own count of upstream calls and the seconds they took, so far."""
    text = procs.raw_get(service.port, "/metrics").decode()
    totals = {"_sum": 0.0, "_count": 0.0}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        for suffix in totals:
            if name == "daw_popular_upstream_call_duration_seconds" + suffix:
                totals[suffix] = float(value)
    return totals["_sum"], totals["_count"]


def cold(ctx: Context) -> dict[str, Any]:
    """Every request a user never seen, 2 ms injected upstream latency.

    At each concurrency, `cold_rounds` times, on servers started for the round: the
    service, then the cold limit (`bench/cold_limit.py`) on the same users, new to both
    (the simulator keeps nothing per request). Two round trips + 1 ms is the target, the
    cold limit what a Python server of this design without the service's layers makes of
    it here. The point is the round with the median service p50, and every round is kept
    beside it: the speed of these machines drifts between one load and the next.
    """
    slices = ctx.plan.cold_users
    rounds = ctx.plan.cold_rounds
    users = rounds * sum(slices) + 1
    # As many products as one round's users: each round, on fresh servers, then sees as
    # large a share of its products for the second time as a single round would.
    products = sum(slices) + 1
    with procs.simulator(
        ctx.logs, users=users, products=products, latency_ms=COLD_UPSTREAM_MS
    ) as sim:
        names = _usernames(sim, users)
        rtt = _upstream_rtt_ms(sim, names[-1])
        bound = 2 * max(COLD_UPSTREAM_MS, rtt) + COLD_SLACK_MS
        ctx.progress.step(f"  cold: upstream round trip {rtt:.2f} ms, bound {bound:.2f} ms")
        probe = _probe_target(names[-1])
        points: list[dict[str, Any]] = []
        start = 0  # each round takes users neither server has been asked for
        for c, size in zip(ctx.plan.cold_connections, slices, strict=True):
            results = []
            for r in range(rounds):
                paths_file = _write_paths(
                    ctx, f"cold-{c}-{r}", [_path(n) for n in names[start : start + size]]
                )
                start += size
                # Fresh servers: no product or buyers list cached by an earlier round.
                with (
                    procs.service(ctx.logs, sim.url) as service,
                    procs.cold_limit(ctx.logs, sim.url) as limit,
                ):
                    results.append(
                        _cold_round(ctx, service, limit, c, paths_file, bound, sim, probe)
                    )
            points.append({"connections": c, **median_round(results), "rounds": results})
    checks = []
    for p in points:
        c = p["connections"]
        p50 = p["service"]["p50_ms"]
        checks.append(check(f"cold c={c} p50", f"<= {bound:.2f} ms", f"{p50:.2f} ms", p50 <= bound))
        if not p["every_user_new"]:
            checks.append(check(f"cold c={c} users", "all new", "list wrapped", False))
    return {"upstream_rtt_ms": rtt, "bound_ms": bound, "points": points, "checks": checks}


def _cold_round(
    ctx: Context,
    service: procs.Proc,
    limit: procs.Proc,
    c: int,
    paths_file: Path,
    bound: float,
    sim: procs.Proc,
    probe: str,
) -> dict[str, Any]:
    """The service, then the cold limit, on the same users (new to both); the upstream's
    round trip probed beside each load (`bench/upstream_probe.py`)."""
    # The probe stops before the load does: it must not time an idle upstream.
    probe_seconds = max(0.5, ctx.plan.duration - 0.5)
    used = service.cpu_seconds()
    with upstream_probe.Beside(sim.port, probe, probe_seconds) as beside_ours:
        ours, calls, call_ms = _cold_run(ctx, service, c, paths_file)
    ours_cpu = _us_per_answer(service.cpu_seconds() - used, ours)
    ctx.progress.step(
        f"  cold c={c}: {calls:.1f} upstream calls per answer, {call_ms:.2f} ms each on average;"
        f" the upstream's round trip meanwhile {beside_ours.median_ms:.2f} ms"
    )
    used = limit.cpu_seconds()
    with upstream_probe.Beside(sim.port, probe, probe_seconds) as beside_floor:
        floor = _load_run(ctx, f"cold c={c} limit", limit, c, paths_file=paths_file)
    floor_cpu = _us_per_answer(limit.cpu_seconds() - used, floor)
    ctx.progress.step(
        f"  cold c={c}: CPU per answer {ours_cpu:.0f} us, the cold limit's {floor_cpu:.0f} us;"
        f" the upstream's round trip meanwhile {beside_floor.median_ms:.2f} ms"
    )
    return {
        "service": ours.as_dict(),
        "limit": floor.as_dict(),
        "ratio": ours.rps / floor.rps if floor.rps else 0.0,
        "upstream_calls_per_answer": calls,
        "upstream_call_mean_ms": call_ms,
        # The upstream's own round trip during each load (median of the probe's): the
        # rest of `upstream_call_mean_ms` is the wait for the server's core.
        "upstream_rtt_during_service_ms": beside_ours.median_ms,
        "upstream_rtt_during_limit_ms": beside_floor.median_ms,
        # User plus system time per answer, from /proc: what queues on the server's core.
        "cpu_us_per_answer": ours_cpu,
        "limit_cpu_us_per_answer": floor_cpu,
        "bound_ms": bound,
        "p50_to_bound": ours.p50_ms / bound,
        "limit_p50_to_bound": floor.p50_ms / bound,
        "every_user_new": _every_path_once(ours) and _every_path_once(floor),
    }


def _us_per_answer(cpu_seconds: float, result: wrk.WrkResult) -> float:
    return 1e6 * cpu_seconds / result.requests if result.requests else 0.0


def median_round(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The round whose service p50 is the median (the lower of the middle two), with
    `every_user_new` only if it held in every round."""
    middle = _median(rounds, _service_p50)
    middle["every_user_new"] = all(r["every_user_new"] for r in rounds)
    return middle


def _median(
    rounds: Sequence[dict[str, Any]], measure: Callable[[dict[str, Any]], float]
) -> dict[str, Any]:
    """A copy of the round that is the median by `measure` (the lower of the middle two)."""
    return dict(sorted(rounds, key=measure)[(len(rounds) - 1) // 2])


def _service_p50(point: dict[str, Any]) -> float:
    return float(point["service"]["p50_ms"])


def _service_p99(point: dict[str, Any]) -> float:
    return float(point["service"]["p99_ms"])


def _ratio(point: dict[str, Any]) -> float:
    return float(point["ratio"])


def _cold_run(
    ctx: Context, service: procs.Proc, c: int, paths_file: Path
) -> tuple[wrk.WrkResult, float, float]:
    """One cold load on the service; its upstream calls per answer and their mean ms."""
    seconds_before, calls_before = _upstream_call_seconds(service)
    result = _load_run(ctx, f"cold c={c} service", service, c, paths_file=paths_file)
    seconds, calls = _upstream_call_seconds(service)
    calls -= calls_before
    # An upstream call as the service saw it, under this load: the simulator shares
    # the load generator's core, and its round trip grows with load.
    call_ms = 1e3 * (seconds - seconds_before) / calls if calls else 0.0
    return result, calls / max(1, result.requests), call_ms


def _every_path_once(result: wrk.WrkResult) -> bool:
    return (result.paths_used or 0) <= (result.paths or 0)


def stampede(ctx: Context) -> dict[str, Any]:
    """Many concurrent first requests for one cold user: upstream calls per resource."""
    clients = ctx.plan.stampede_clients
    with procs.simulator(ctx.logs, users=1000, products=1000, latency_ms=2.0) as sim:
        username, products = _busy_user(sim, _usernames(sim, 1000))
        with procs.service(ctx.logs, sim.url) as service:
            procs.post(sim.port, "/__sim/stats/reset")
            started = time.monotonic()
            answers = uvloop.run(client.stampede(service.port, _path(username), clients))
            seconds = time.monotonic() - started
            stats = _sim_stats(sim)
    statuses: dict[int, int] = {}
    for status, _ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    bodies = {body for _, body in answers}
    expected = {
        "user": 1,
        "by_user": 1,
        "product": len(products),
        "by_product": len(products),
        "users": 0,
        "products": 0,
        "other": 0,
    }
    calls = {key: stats.get(key, 0) for key in expected}
    ok = calls == expected and statuses == {200: clients} and len(bodies) == 1
    ctx.progress.step(f"  stampede: {clients} clients in {seconds:.2f} s, upstream calls {calls}")
    return {
        "clients": clients,
        "user": username,
        "seconds": seconds,
        "statuses": statuses,
        "distinct_bodies": len(bodies),
        "upstream_calls": calls,
        "expected_calls": expected,
        "checks": [
            check(
                f"stampede ({clients} clients) upstream calls",
                "one per resource",
                ", ".join(f"{k} {v}" for k, v in calls.items() if expected[k] or v),
                ok,
            )
        ],
    }


def _memory_phase(
    ctx: Context, sim: procs.Proc, paths: Sequence[str], cap: int, label: str
) -> dict[str, Any]:
    options = ("--cache-bytes", str(cap), "--response-ttl", "3600", *LONG_TTLS)
    with procs.service(ctx.logs, sim.url, options) as service:
        warmup = 100
        _load_all(ctx, service.port, paths[:warmup], f"{label}: warm-up")
        baseline = service.rss()
        statuses = _load_all(ctx, service.port, paths[warmup:], f"{label}: caching users")
        rss = service.rss()
    users = len(paths) - warmup
    return {
        "cache_bytes": cap,
        "users": users,
        "statuses": statuses,
        "baseline_rss": baseline,
        "rss": rss,
        "bytes_per_user": (rss - baseline) / users,
        "rss_bound": cap + baseline + RSS_SLACK,
    }


def memory(ctx: Context) -> dict[str, Any]:
    """RSS after caching many distinct users; bytes per user; RSS under the cap."""
    users = ctx.plan.memory_users
    with procs.simulator(ctx.logs, users=users, products=users) as sim:
        paths = [_path(n) for n in _usernames(sim, users)]
        roomy = _memory_phase(ctx, sim, paths, 4 * 1024 * MIB, "memory (no eviction)")
        per_user = roomy["bytes_per_user"]
        ctx.progress.step(f"  memory: {per_user:,.0f} bytes of RSS per cached user")
        checks = [
            check(
                f"RSS per cached user ({roomy['users']:,} users)",
                f"<= {BYTES_PER_USER} B",
                f"{per_user:,.0f} B",
                per_user <= BYTES_PER_USER,
            )
        ]
        result: dict[str, Any] = {"no_eviction": roomy, "checks": checks}
        if ctx.plan.memory_phase_cap:
            capped = _memory_phase(ctx, sim, paths, ctx.plan.memory_cap, "memory (capped)")
            checks.append(
                check(
                    f"RSS with --cache-bytes {capped['cache_bytes'] // MIB} MiB",
                    f"<= cap + baseline + {RSS_SLACK // MIB} MiB "
                    f"= {capped['rss_bound'] / MIB:.0f} MiB",
                    f"{capped['rss'] / MIB:.0f} MiB",
                    capped["rss"] <= capped["rss_bound"],
                )
            )
            result["capped"] = capped
    return result


SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "hot": hot,
    "warm": warm,
    "cold": cold,
    "stampede": stampede,
    "memory": memory,
    "peers": peers,
}
