"""Metrics, readiness and logs: counts after known traffic, summed across worker processes."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from support import http

from daw_popular import app as service_app
from daw_popular import logs, metrics
from daw_popular.app import App
from daw_popular.config import Settings
from daw_popular.server import HttpServer, Later, Request
from daw_popular.sim import RunningSimulator, Store, start_simulator

ROOT = Path(__file__).resolve().parents[1]
STORE = Store.generate(seed=3, users=6, products=8)
KNOWN = STORE.purchases[0]["username"]

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Values:
    """Every sample of a scrape, by name and sorted labels (the format must parse)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(values: Values, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


@asynccontextmanager
async def stack(**settings: Any) -> AsyncIterator[tuple[RunningSimulator, App, HttpServer]]:
    sim = await start_simulator(STORE)
    config = dataclasses.replace(Settings(port=0, upstream=sim.url), **settings)
    app, server = await service_app.start(config)
    try:
        yield sim, app, server
    finally:
        await server.shutdown(1.0)
        await app.close()
        await sim.close()


async def scrape(port: int) -> Values:
    answer = await http(port, "/metrics")
    assert answer.status == 200
    assert answer.header("content-type") == metrics.CONTENT_TYPE.decode()
    return parse(answer.body.decode())


async def test_counts_after_known_traffic() -> None:
    """One cold answer, two hits, a 304 and a 404: each counted once, under its level."""
    async with stack() as (sim, _, server):
        first = await http(server.port, f"/api/recent_purchases/{KNOWN}")
        assert first.status == 200
        for _ in range(2):
            assert (await http(server.port, f"/api/recent_purchases/{KNOWN}")).status == 200
        etag = {"If-None-Match": first.header("etag") or ""}
        conditional = await http(server.port, f"/api/recent_purchases/{KNOWN}", headers=etag)
        assert conditional.status == 304
        assert (await http(server.port, "/api/recent_purchases/Nobody.Here")).status == 404
        values = await scrape(server.port)
        upstream_calls = sum(sim.sim.stats().values())

    route = "recent_purchases"
    requests = "daw_popular_requests_total"
    assert value(values, requests, route=route, status="200") == 3
    assert value(values, requests, route=route, status="304") == 1
    assert value(values, requests, route=route, status="404") == 1
    lookups = "daw_popular_cache_lookups_total"
    assert value(values, lookups, level="answer", result="hit") == 3
    assert value(values, lookups, level="answer", result="miss") == 2
    assert value(values, lookups, level="user", result="miss") == 2
    latency = "daw_popular_request_duration_seconds"
    assert value(values, latency + "_count", route=route) == 5
    # Hits count as 0 s: at least the three hits sit in the first bucket.
    assert value(values, latency + "_bucket", route=route, le="0.0005") >= 3
    assert value(values, "daw_popular_upstream_requests_total") == upstream_calls
    assert value(values, "daw_popular_upstream_calls_total") == upstream_calls
    assert value(values, "daw_popular_upstream_call_duration_seconds_count") == upstream_calls
    assert value(values, "daw_popular_breaker_state", breaker="upstream", state="closed") == 1
    assert value(values, "daw_popular_open_connections") == 1  # the scrape itself
    assert value(values, "daw_popular_workers") == 1


async def test_readyz_flips_to_503_while_the_upstream_breaker_is_open() -> None:
    async with stack(breaker_failures=1, retries=0, breaker_reset=30.0) as (sim, _, server):
        ready = await http(server.port, "/readyz")
        assert (ready.status, orjson.loads(ready.body)["ready"]) == (200, True)
        sim.sim.set_faults(["*:status=500"])
        assert (await http(server.port, f"/api/recent_purchases/{KNOWN}")).status == 502
        unready = await http(server.port, "/readyz")
        assert unready.status == 503
        assert orjson.loads(unready.body) == {
            "ready": False,
            "upstream": "open",
            "reasons": ["upstream circuit breaker open"],
        }
        values = await scrape(server.port)
    assert value(values, "daw_popular_breaker_state", breaker="upstream", state="open") == 1
    failed = value(values, "daw_popular_upstream_requests_total")
    assert failed >= 1
    assert value(values, "daw_popular_upstream_errors_total", kind="UpstreamServerError") == failed
    assert value(values, "daw_popular_requests_total", route="readyz", status="503") == 1


async def test_access_log_is_off_by_default_and_writes_a_line_per_request_when_on() -> None:
    async with stack() as (_, app, server):
        assert app.access_log is None
        assert server.handler is app.router
    stream = io.BytesIO()
    async with stack(access_log=True, log_json=True) as (_, app, server):
        assert app.access_log is not None
        app.access_log._stream = stream
        await http(server.port, f"/api/recent_purchases/{KNOWN}?x=1")
        await http(server.port, "/healthz")
        app.access_log.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["path"], line["status"]) for line in lines] == [
        (f"/api/recent_purchases/{KNOWN}?x=1", 200),
        ("/healthz", 200),
    ]
    assert lines[0]["duration_ms"] > 0 and lines[1]["duration_ms"] == 0


def test_the_access_log_passes_a_later_answer_on_and_a_failure_unlogged() -> None:
    request = Request("GET", b"/x", b"", [(b"host", b"t")], "1.1", True, None)
    owed: list[Later] = []

    def handler(request: Request) -> Later:
        owed.append(Later())
        return owed[-1]

    access = logs.AccessLog(handler, stream=io.BytesIO())
    outcomes: list[bytes | BaseException] = []
    for _ in range(2):
        relay = access(request)
        assert isinstance(relay, Later) and relay is not owed[-1]
        relay.deliver_to(outcomes.append)
    error = RuntimeError("boom")
    owed[0].fail(error)
    owed[1].give(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert outcomes == [error, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]
    assert len(access._lines) == 1 and b" 200 " in access._lines[0]


async def test_the_access_log_records_an_awaited_answer_when_it_comes() -> None:
    request = Request("GET", b"/x", b"", [(b"host", b"t")], "1.1", True, None)

    async def handler(request: Request) -> bytes:
        await asyncio.sleep(0.01)
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    access = logs.AccessLog(handler, stream=io.BytesIO())
    result = access(request)
    assert not isinstance(result, bytes | Later) and access._lines == []
    assert await result == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert len(access._lines) == 1 and b" 200 " in access._lines[0]


def test_json_logs_are_one_object_per_line() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("info", json=True, stream=stream)
        logging.getLogger("daw_popular.test").info("hello %s", "there")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    record = json.loads(stream.getvalue())
    assert record["message"] == "hello there"
    assert (record["level"], record["logger"], record["pid"]) == (
        "info",
        "daw_popular.test",
        os.getpid(),
    )


def test_directory_sums_workers_and_keeps_retired_counters(tmp_path: Path) -> None:
    """Counters add up over live and retired workers; gauges only over live ones."""

    def write(pid: int, count: int, gauge: int) -> None:
        doc = {
            "counters": {"daw_popular_requests_total": {'{route="healthz",status="200"}': count}},
            "gauges": {"daw_popular_workers": {"": gauge}},
        }
        (tmp_path / f"worker-{pid}.json").write_bytes(orjson.dumps(doc))

    write(1, 5, 1)
    write(2, 7, 1)
    metrics.retire(tmp_path, 1)
    write(3, 11, 1)
    counters, gauges = metrics.read_directory(tmp_path)
    values = parse(metrics.render(counters, gauges))
    assert value(values, "daw_popular_requests_total", route="healthz", status="200") == 23
    assert value(values, "daw_popular_workers") == 2


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False)), st.integers(0, 50))
def test_histogram_buckets_are_cumulative_and_add_up(observed: list[float], at_once: int) -> None:
    histogram = metrics.Histogram()
    for seconds in observed:
        histogram.observe(seconds)
    samples: dict[str, float] = {}
    histogram.samples(samples, extra=at_once, route="r")
    text = "".join(f"x{key} {val}\n" for key, val in samples.items())
    values = parse("# TYPE x histogram\n" + text)
    buckets = [
        (float(dict(labels)["le"]), count)
        for (name, labels), count in values.items()
        if name == "x_bucket"
    ]
    counts = [count for _, count in sorted(buckets)]
    assert counts == sorted(counts)
    assert counts[-1] == value(values, "x_count", route="r") == len(observed) + at_once
    for bound, count in buckets:
        assert count == at_once + sum(1 for seconds in observed if seconds <= bound)


def test_metrics_add_up_across_two_worker_processes() -> None:
    """Known traffic spread over two workers: the scrape of either shows the sums."""
    sim = subprocess.Popen(
        [sys.executable, "-m", "daw_popular", "sim", "--port", "0", "--seed", "3", "--users", "6"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sim.stdout is not None
    sim_url = re.search(r"(http://\S+)", sim.stdout.readline())
    assert sim_url is not None
    users = []
    for line in sim.stdout:
        if "/api/users/" in line:
            users.append(line.split("/api/users/")[1].strip())
        if "/__sim/stats" in line:  # the last line it prints
            break
    service = subprocess.Popen(
        [
            *(sys.executable, "-m", "daw_popular", "serve", "--workers", "2", "--port", "0"),
            *("--upstream", sim_url.group(1), "--log-json"),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert service.stderr is not None
        port, listening = 0, 0
        while listening < 2:
            record = json.loads(service.stderr.readline())
            found = re.search(
                r"listening on http://127\.0\.0\.1:(\d+)/( \(2 workers)?", record["message"]
            )
            if found and found.group(2):
                port = int(found.group(1))
            elif found:
                listening += 1
        pids = set()
        for _ in range(40):
            pids.add(_get(port, "/healthz").split("pid=")[1])
            _get(port, f"/api/recent_purchases/{users[0]}")
        assert len(pids) == 2
        upstream_calls = sum(json.loads(_get_upstream(sim_url.group(1), "/__sim/stats")).values())
        deadline = time.monotonic() + 5
        while True:
            values = parse(_get(port, "/metrics"))
            requests = value(
                values, "daw_popular_requests_total", route="recent_purchases", status="200"
            )
            if requests == 40 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert requests == 40
        assert value(values, "daw_popular_requests_total", route="healthz", status="200") == 40
        assert value(values, "daw_popular_upstream_requests_total") == upstream_calls
        assert value(values, "daw_popular_workers") == 2
        assert value(values, "daw_popular_breaker_state", breaker="upstream", state="closed") == 2
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(10) == 0
        sim.terminate()
        sim.wait(5)


def _get(port: int, path: str) -> str:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def _get_upstream(url: str, path: str) -> str:
    _, port = url.removeprefix("http://").split(":")
    return _get(int(port), path)


async def test_the_routers_own_answers_are_counted() -> None:
    """404 for unknown paths, 405 and 400 on a route: counted without a handler."""
    async with stack() as (_, _, server):
        assert (await http(server.port, "/nowhere")).status == 404
        assert (await http(server.port, "/api/recent_purchases/%zz")).status == 400
        assert (await http(server.port, "/healthz", method="DELETE")).status == 405
        values = await scrape(server.port)
    requests = "daw_popular_requests_total"
    assert value(values, requests, route="unmatched", status="404") == 1
    assert value(values, requests, route="recent_purchases", status="400") == 1
    assert value(values, requests, route="healthz", status="405") == 1
