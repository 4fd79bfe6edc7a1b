"""The benchmark harness: wrk report parsing, the limit servers, the summary, one short wrk run."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import uvloop
from hypothesis import given
from hypothesis import strategies as st
from support import expected_answer, free_port, http

from bench import (
    cold_limit,
    instructions,
    peers,
    procs,
    report,
    scenarios,
    speed,
    upstream_probe,
    wrk,
)
from bench.client import read_response
from bench.progress import Progress
from daw_popular.sim import Store, start_simulator

FIXTURES = sorted((Path(__file__).parents[2] / "shared" / "fixtures").glob("real-upstream-*.json"))

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n[1,2,3]"

PLAIN_RUN = """\
Running 1s test @ http://127.0.0.1:18081/
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.86ms    1.51ms   9.17ms   84.97%
    Req/Sec    51.92k     6.56k   61.00k    60.00%
  Latency Distribution
     50%   88.00us
     75%    1.02ms
     90%    3.20ms
     99%    6.75ms
  51750 requests in 1.01s, 1.97MB read
Requests/sec:  51480.29
Transfer/sec:      1.96MB
"""

TROUBLED_RUN = """\
Running 5s test @ http://127.0.0.1:8080/api/recent_purchases/x
  1 threads and 10000 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   120.50ms   80.00ms    1.99s    70.00%
    Req/Sec    80.00k    10.00k   90.00k    75.00%
  Latency Distribution
     50%  100.00ms
     75%  150.00ms
     90%  300.00ms
     99%    1.50s
  400000 requests in 5.10s, 350.00MB read
  Socket errors: connect 12, read 3, write 2, timeout 41
  Non-2xx or 3xx responses: 7
Requests/sec:  78431.37
Transfer/sec:     68.63MB
paths 10000 used 400012
"""


def test_parses_a_clean_run() -> None:
    result = wrk.parse(PLAIN_RUN)
    assert result.requests == 51750
    assert result.seconds == pytest.approx(1.01)
    assert result.rps == pytest.approx(51480.29)
    assert result.latency_avg_ms == pytest.approx(0.86)
    assert result.latency_max_ms == pytest.approx(9.17)
    assert (result.p50_ms, result.p75_ms, result.p90_ms, result.p99_ms) == pytest.approx(
        (0.088, 1.02, 3.2, 6.75)
    )
    assert (result.errors, result.timeouts) == (0, 0)
    assert result.paths is None and result.paths_used is None


def test_parses_socket_errors_timeouts_statuses_and_seconds() -> None:
    result = wrk.parse(TROUBLED_RUN)
    assert (result.connect_errors, result.read_errors, result.write_errors) == (12, 3, 2)
    assert result.timeouts == 41
    assert result.non_2xx == 7
    assert result.errors == 12 + 3 + 2 + 7
    assert result.p99_ms == pytest.approx(1500.0)
    assert result.latency_max_ms == pytest.approx(1990.0)
    assert (result.paths, result.paths_used) == (10000, 400012)
    assert result.as_dict()["errors"] == 24


def test_refuses_output_without_latency_distribution() -> None:
    cut = PLAIN_RUN.replace("     99%    6.75ms\n", "")
    with pytest.raises(wrk.WrkError, match="latency distribution"):
        wrk.parse(cut)
    with pytest.raises(wrk.WrkError):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@given(
    values=st.lists(
        st.tuples(st.integers(0, 99_999), st.sampled_from(sorted(_UNITS))), min_size=4, max_size=4
    )
)
def test_percentiles_in_any_unit(values: list[tuple[int, str]]) -> None:
    lines = [
        f"     {p}%  {v / 100:.2f}{u}" for p, (v, u) in zip((50, 75, 90, 99), values, strict=True)
    ]
    text = PLAIN_RUN.replace(
        "\n".join(PLAIN_RUN.splitlines()[6:10]),
        "\n".join(lines),
    )
    result = wrk.parse(text)
    got = (result.p50_ms, result.p75_ms, result.p90_ms, result.p99_ms)
    assert got == pytest.approx([v / 100 * _UNITS[u] for v, u in values])


def test_command_pins_one_thread_to_the_load_core() -> None:
    argv = wrk.command(
        "http://127.0.0.1:1/", 100, 5, cpu=1, script=Path("r.lua"), script_args=["p"]
    )
    core = argv[argv.index("wrk") :]
    assert core == [
        *("wrk", "-t1", "-c100", "-d5s", "--timeout=2s", "--latency", "-s", "r.lua"),
        *("http://127.0.0.1:1/", "--", "p"),
    ]
    if shutil.which("taskset"):
        assert argv[:3] == ["taskset", "-c", "1"]


async def _limit_server() -> tuple[asyncio.Server, int]:
    from bench import limit_server

    server = await limit_server.start(ANSWER)
    return server, int(server.sockets[0].getsockname()[1])


async def test_limit_server_answers_every_request_with_the_same_bytes() -> None:
    server, port = await _limit_server()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /anything HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request + request.replace(b"anything", b"other"))
        got = await reader.readexactly(2 * len(ANSWER))
        assert got == ANSWER * 2
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert await reader.read() == ANSWER
        writer.close()
    finally:
        server.close()


async def test_limit_server_drops_a_malformed_request() -> None:
    server, port = await _limit_server()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00\x01 nonsense\r\n\r\n")
        assert await reader.read() == b""
        writer.close()
    finally:
        server.close()


async def test_client_reads_status_and_body() -> None:
    server, port = await _limit_server()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await read_response(reader) == (200, b"[1,2,3]")
        writer.close()
    finally:
        server.close()


def test_summary_marks_each_target() -> None:
    point = {"connections": 100, "service": wrk.parse(PLAIN_RUN).as_dict(), "ratio": 0.5}
    point["limit"] = wrk.parse(TROUBLED_RUN).as_dict()
    results = {
        "meta": {"started": "now"},
        "scenarios": {
            "hot": {
                "points": [point],
                "checks": [
                    {"name": "a", "target": ">= 1", "measured": "2", "ok": True},
                    {"name": "b", "target": "0", "measured": "3", "ok": False},
                ],
            }
        },
    }
    text = report.table(results)
    assert "0.50x" in text and "51,480" in text and "78,431" in text
    assert "PASS  a: 2 (target >= 1)" in text
    assert "FAIL  b: 3 (target 0)" in text


def test_summary_gives_a_cold_point_its_limit_and_its_bound() -> None:
    point = {"connections": 10, "service": wrk.parse(PLAIN_RUN).as_dict(), "ratio": 0.75}
    point |= {"limit": wrk.parse(TROUBLED_RUN).as_dict(), "p50_to_bound": 1.125}
    text = report.table({"meta": {}, "scenarios": {"cold": {"points": [point]}}})
    row = text.splitlines()[1].split()
    assert row[:3] == ["cold", "10", "51,480"]
    assert row[-4:] == ["0.75x,", "p50", "1.12x", "bound"]
    assert "CPU" not in text  # a point measured without the CPU per answer


def test_summary_gives_a_cold_point_its_cpu_per_answer_beside_the_cold_limit_s() -> None:
    point = {"connections": 10, "service": wrk.parse(PLAIN_RUN).as_dict(), "ratio": 0.75}
    point |= {"limit": wrk.parse(TROUBLED_RUN).as_dict(), "p50_to_bound": 1.125}
    point |= {"cpu_us_per_answer": 291.4, "limit_cpu_us_per_answer": 138.6}
    text = report.table({"meta": {}, "scenarios": {"cold": {"points": [point]}}})
    assert "CPU   cold c=10: 291 us per answer (the cold limit 139 us)" in text.splitlines()


def test_summary_gives_a_cold_point_the_upstream_s_round_trip_beside_each_load() -> None:
    point = {"connections": 10, "service": wrk.parse(PLAIN_RUN).as_dict(), "ratio": 0.75}
    point |= {"limit": wrk.parse(TROUBLED_RUN).as_dict(), "p50_to_bound": 1.125}
    point |= {"upstream_rtt_during_service_ms": 2.031, "upstream_rtt_during_limit_ms": 2.376}
    point |= {"upstream_call_mean_ms": 2.864}
    cold = {"upstream_rtt_ms": 2.32, "points": [point]}
    text = report.table({"meta": {}, "scenarios": {"cold": cold}})
    assert (
        "RTT   cold c=10: the upstream answered in 2.03 ms during the service's load"
        " (2.38 ms during the cold limit's, 2.32 ms idle); the service timed its calls at 2.86 ms"
    ) in text.splitlines()


def test_the_upstream_probe_times_each_round_trip_beside_a_load(tmp_path: Path) -> None:
    with procs.simulator(tmp_path, users=10, products=10, latency_ms=2.0) as sim:
        name = scenarios._usernames(sim, 1)[0]
        target = scenarios._probe_target(name)
        assert procs.status_of(procs.raw_get(sim.port, target)) == 200
        with upstream_probe.Beside(sim.port, target, 0.5, interval=0.01) as probe:
            time.sleep(1.0)  # the load would run here; the probe stops on its own
        idle = uvloop.run(upstream_probe.round_trips(sim.port, target, samples=5))
    # Each answer waits for the simulator's 2 ms; 0.5 s at one request per 10 ms and more.
    assert 10 <= len(probe.times) <= 50
    assert min(probe.times) >= 1.0 and 1.0 <= probe.median_ms < 50
    assert len(idle) == 5 and min(idle) >= 1.0


def test_an_upstream_probe_that_gets_no_answer_is_killed_and_said_so() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with (
            pytest.raises(procs.ProcessError, match="still running"),
            upstream_probe.Beside(port, "/", 0.2, cpu=None, grace=1.0),
        ):
            pass
        assert time.monotonic() - started < 30
    finally:
        silent.close()


def test_an_upstream_probe_that_cannot_connect_is_said_so() -> None:
    with (
        pytest.raises(procs.ProcessError, match="exited with"),
        upstream_probe.Beside(free_port(), "/", 0.2, cpu=None),
    ):
        pass


def test_the_upstream_probe_needs_a_count_or_a_time() -> None:
    with pytest.raises(ValueError):
        uvloop.run(upstream_probe.round_trips(1, "/", samples=None, seconds=None))


def test_a_process_s_cpu_time_counts_its_work(tmp_path: Path) -> None:
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    argv = [sys.executable, "-c", burn + "time.sleep(60)"]
    proc = procs.Proc("burner", argv, 0, tmp_path / "burner.log")
    try:
        deadline = time.monotonic() + 30
        while proc.cpu_seconds() < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0.3 <= proc.cpu_seconds() < 5
    finally:
        proc.stop()


def test_one_second_of_wrk_against_the_limit_server(tmp_path: Path) -> None:
    with procs.limit_server(tmp_path, ANSWER) as limit:
        argv = wrk.command(limit.url + "/", 4, 1, cpu=None)
        result = wrk.run(argv, 1)
    assert result.requests > 0 and result.rps > 0
    assert result.errors == 0 and result.timeouts == 0


def test_a_point_given_rounds_is_its_median_round_by_its_own_measure(tmp_path: Path) -> None:
    binary = wrk.find()
    assert binary is not None, wrk.INSTALL_HINT
    plan = scenarios.Plan(duration=1.0)
    ctx = scenarios.Context(
        plan=plan, logs=tmp_path, progress=Progress(io.StringIO()), wrk_binary=binary
    )
    with procs.limit_server(tmp_path, ANSWER) as one, procs.limit_server(tmp_path, ANSWER) as two:
        points = scenarios._side_by_side(
            ctx,
            "hot",
            one,
            two,
            (1, 2, 3),
            rounds=3,
            median_by={2: scenarios._service_p99, 3: scenarios._ratio},
        )
    single, by_p99, by_ratio = points
    assert single["connections"] == 1 and "rounds" not in single
    for point, measure in ((by_p99, scenarios._service_p99), (by_ratio, scenarios._ratio)):
        assert len(point["rounds"]) == 3
        assert measure(point) == sorted(measure(r) for r in point["rounds"])[1]
        assert {k: v for k, v in point.items() if k not in ("connections", "rounds")} in (
            point["rounds"]
        )


def test_speed_probe_times_fixed_work_on_the_core_asked_and_comes_back() -> None:
    assert speed.work(2048) == speed.work(2048) == 7 * 1024
    home = os.sched_getaffinity(0)
    for cpu in (None, procs.SERVER_CPU):
        assert speed.probe(cpu, rounds=1000, repeat=2) > 0
        assert os.sched_getaffinity(0) == home


def test_speed_spread_is_the_slowest_probe_over_the_fastest() -> None:
    assert speed.spread([]) == speed.spread([9.0]) == 0.0
    assert speed.spread([10.0, 12.5, 11.0]) == pytest.approx(0.25)


def test_summary_warns_when_the_server_core_changed_speed() -> None:
    def summary(*probes: list[float] | None) -> str:
        points = [
            {"connections": 1, "service": wrk.parse(PLAIN_RUN).as_dict() | {"probe_ms": p}}
            | {"p50_to_bound": 1.0}
            for p in probes
        ]
        return report.table({"meta": {}, "scenarios": {"cold": {"points": points}}})

    moved = summary([8.7, 9.0], [17.6, 18.0])
    assert "NOTE" in moved and "8.7 to 18.0 ms" in moved
    assert "NOTE" not in summary([8.7, 9.0], [9.5, 9.1])
    assert "NOTE" not in summary(None, None)  # results from before the probe


def test_a_load_point_records_the_server_core_speed_around_it(tmp_path: Path) -> None:
    binary = wrk.find()
    assert binary is not None, wrk.INSTALL_HINT
    out = io.StringIO()
    ctx = scenarios.Context(
        plan=scenarios.Plan(duration=1.0), logs=tmp_path, progress=Progress(out), wrk_binary=binary
    )
    with procs.limit_server(tmp_path, ANSWER) as limit:
        result = scenarios._load_run(ctx, "probed", limit, 4)
    assert result.requests > 0
    assert result.probe_ms is not None and min(result.probe_ms) > 0
    assert result.as_dict()["probe_ms"] == result.probe_ms
    assert "probed:" in out.getvalue() and " probe " in out.getvalue()


def test_the_cold_point_is_its_median_round() -> None:
    def round_(p50: float, new: bool = True) -> dict[str, Any]:
        return {"service": {"p50_ms": p50}, "ratio": p50 / 10, "every_user_new": new}

    rounds = [round_(7.0), round_(5.0), round_(6.0, new=False)]
    point = scenarios.median_round(rounds)
    assert point["service"]["p50_ms"] == 6.0 and point["ratio"] == 0.6
    assert point["every_user_new"] is False, "a wrapped list in any round is reported"
    assert scenarios.median_round([round_(7.0), round_(5.0)])["service"]["p50_ms"] == 5.0
    assert rounds[2]["every_user_new"] is False, "the rounds themselves are left as they were"


def test_a_short_cold_scenario_runs_both_servers_on_new_users_each_round(tmp_path: Path) -> None:
    binary = wrk.find()
    assert binary is not None, wrk.INSTALL_HINT
    plan = scenarios.Plan(duration=1.0, cold_connections=(2,), cold_users=(800,), cold_rounds=2)
    ctx = scenarios.Context(
        plan=plan, logs=tmp_path, progress=Progress(io.StringIO()), wrk_binary=binary
    )
    result = scenarios.cold(ctx)
    (point,) = result["points"]
    assert len(point["rounds"]) == 2 and point["every_user_new"]
    for round_ in point["rounds"]:
        for who in ("service", "limit"):
            assert round_[who]["requests"] > 0 and round_[who]["errors"] == 0
    assert point["service"] in [r["service"] for r in point["rounds"]]
    assert [c["name"] for c in result["checks"]] == ["cold c=2 p50"]
    for round_ in point["rounds"]:
        # Two Python servers each spend well over 10 us and well under 100 ms per answer.
        assert 10 < round_["cpu_us_per_answer"] < 100_000
        assert 10 < round_["limit_cpu_us_per_answer"] < 100_000
        # The upstream's own round trip beside each load: its 2 ms and a little more.
        for key in ("upstream_rtt_during_service_ms", "upstream_rtt_during_limit_ms"):
            assert 1.0 <= round_[key] < 50


async def test_load_reconnects_when_the_server_closes() -> None:
    from bench import client

    closing = ANSWER.replace(b"Content-Length", b"Connection: close\r\nContent-Length")

    async def one_answer_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(closing)
        writer.close()

    server = await asyncio.start_server(one_answer_per_connection, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        statuses = await client.load(port, ["/a", "/b", "/c"], connections=1)
    finally:
        server.close()
    assert statuses == {200: 3}


def test_instructions_reads_the_total_of_a_callgrind_dump() -> None:
    dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nfn=(1) main\n0 12\ntotals: 398132 \n"
    assert instructions.totals(dump) == 398132
    assert instructions.totals("events: Ir\nsummary: 77\n") == 77
    with pytest.raises(instructions.CallgrindError):
        instructions.totals("events: Ir\n")


@contextlib.asynccontextmanager
async def _cold_limit(
    store: Store, *, page: int = 1000, faults: Sequence[str] = ()
) -> AsyncIterator[int]:
    sim = await start_simulator(store, faults=faults)
    server = await cold_limit.start(sim.url, page=page)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await sim.close()


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
async def test_cold_limit_gives_every_user_of_a_real_data_set_the_reference_answer(
    fixture: Path,
) -> None:
    data = _load(fixture)
    async with _cold_limit(Store.from_fixture(fixture)) as port:
        for user in data["users"]:
            name = user["username"]
            answer = await http(port, "/api/recent_purchases/" + quote(name, safe=""))
            assert answer.status == 200, answer
            assert orjson.loads(answer.body) == expected_answer(data, name)
        unknown = await http(port, "/api/recent_purchases/No.Such%20User")
        assert unknown.status == 404
        assert unknown.body == b"User with username of 'No.Such User' was not found"


async def test_cold_limit_pages_through_every_buyer() -> None:
    store = Store.generate(seed=7, users=400, products=3, max_purchases_per_user=6)
    data = {"users": store.users, "products": store.products, "purchases": store.purchases}
    async with _cold_limit(store, page=7) as port:
        for user in store.users[:25]:
            name = user["username"]
            answer = await http(port, "/api/recent_purchases/" + quote(name, safe=""))
            assert orjson.loads(answer.body) == expected_answer(data, name)
    assert max(len(entry["recent"]) for entry in orjson.loads(answer.body)) > 10


@pytest.mark.parametrize("fault", ["user:status=503", "by_product:invalid_json", "product:reset"])
async def test_cold_limit_closes_the_client_on_an_unusable_upstream_answer(fault: str) -> None:
    store = Store.generate(seed=4)
    name = store.purchases[0]["username"]
    async with _cold_limit(store, faults=[fault]) as port:
        for _ in range(3):  # the connection the failure left behind is not reused
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /api/recent_purchases/%s HTTP/1.1\r\nHost: x\r\n\r\n"
                % quote(name, safe="").encode()
            )
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()


async def test_cold_limit_closes_the_client_when_the_upstream_is_gone() -> None:
    server = await cold_limit.start(f"http://127.0.0.1:{free_port()}")
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/recent_purchases/Amiya HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        server.close()


# peers: other servers serving the hot answer's bytes

SERVICE_ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: daw-popular\r\nDate: Mon, 07 Dec 2026 23:00:00 GMT\r\n"
    b'Content-Type: application/json\r\nETag: "x1"\r\nCache-Control: public, max-age=15\r\n'
    b"Age: 0\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\n[1,2,3]"
)


def test_a_peer_is_handed_the_service_s_status_headers_and_body() -> None:
    """Every header but those a server sets itself (date, server, length, connection)."""
    answer = peers.Answer(SERVICE_ANSWER)
    assert answer.status == 200 and answer.body == b"[1,2,3]"
    assert answer.headers == [
        (b"content-type", b"application/json"),
        (b"etag", b'"x1"'),
        (b"cache-control", b"public, max-age=15"),
        (b"age", b"0"),
    ]
    not_found = peers.Answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno")
    assert (not_found.status, not_found.headers, not_found.body) == (404, [], b"no")


@pytest.mark.parametrize(
    "raw",
    [b"", b"HTTP/1.1 200 OK\r\n", b"SSH-2.0 hello\r\n\r\n", b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n"],
)
def test_a_peer_refuses_what_is_not_an_http_response(raw: bytes) -> None:
    with pytest.raises(ValueError):
        peers.Answer(raw)


async def test_the_asgi_peer_sends_the_answer_with_its_length() -> None:
    """Without a length, an ASGI server would send the body chunked."""
    app = peers.asgi_app(peers.Answer(SERVICE_ANSWER))
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    await app({"type": "http", "method": "GET", "path": "/x"}, receive, send)
    await app({"type": "lifespan"}, receive, send)  # nothing for other scopes
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200
    assert (b"content-length", b"7") in sent[0]["headers"]
    assert (b"etag", b'"x1"') in sent[0]["headers"]
    assert sent[1]["body"] == b"[1,2,3]"


async def test_the_rsgi_peer_hands_granian_the_answer() -> None:
    app = peers.RSGIApp(peers.Answer(SERVICE_ANSWER))
    given: list[dict[str, Any]] = []

    class Protocol:
        def response_bytes(self, **response: Any) -> None:
            given.append(response)

    await app.__rsgi__(object(), Protocol())
    (response,) = given
    assert response["status"] == 200 and response["body"] == b"[1,2,3]"
    assert ("etag", '"x1"') in response["headers"]


def test_summary_lists_each_peer_beside_the_service() -> None:
    run = {
        "connections": 100,
        "servers": {
            "service": wrk.parse(PLAIN_RUN).as_dict(),
            "uvicorn": wrk.parse(TROUBLED_RUN).as_dict(),
        },
        "service_to": {"uvicorn": 4.0},
    }
    peers_result = {"runs": [run], "missing": {"varnish": "varnishd not found"}, "checks": []}
    text = report.table({"meta": {}, "scenarios": {"peers": peers_result}})
    lines = [line for line in text.splitlines() if line.startswith("PEERS")]
    assert "service" in lines[1] and "51,480" in lines[1] and "x" not in lines[1].split()[-1]
    assert "uvicorn" in lines[2] and lines[2].endswith("service 4.00x")
    assert lines[3] == "PEERS  varnish left out: varnishd not found"


def test_a_peer_that_serves_other_bytes_is_refused(tmp_path: Path) -> None:
    with procs.limit_server(tmp_path, ANSWER) as limit:
        scenarios._expect_answer(limit, "/x", ANSWER)
        other = ANSWER.replace(b"[1,2,3]", b"[1,2,4]")
        with pytest.raises(procs.ProcessError, match="does not serve the service's answer"):
            scenarios._expect_answer(limit, "/x", other)


def _short_peers(tmp_path: Path) -> dict[str, Any]:
    binary = wrk.find()
    assert binary is not None, wrk.INSTALL_HINT
    plan = scenarios.Plan(duration=1.0, peer_connections=(4,))
    ctx = scenarios.Context(
        plan=plan, logs=tmp_path, progress=Progress(io.StringIO()), wrk_binary=binary
    )
    return scenarios.peers(ctx)


def test_a_short_peers_scenario_runs_every_server(tmp_path: Path) -> None:
    """Each peer serves the service's answer and takes the load (they are test
    dependencies, and Varnish a Debian package `.ci/run` installs)."""
    result = _short_peers(tmp_path)
    assert result["missing"] == {}
    (run,) = result["runs"]
    assert run["connections"] == 4
    assert list(run["servers"]) == ["service", "limit server", *scenarios.PEERS]
    for name, measured in run["servers"].items():
        assert measured["requests"] > 0 and measured["errors"] == 0, name
        if name != "service":
            assert run["service_to"][name] > 0
    assert result["checks"] == []


def test_a_peer_that_is_not_installed_is_left_out_and_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scenarios, "PEERS", ("varnish",))
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "varnishd" else which(name))
    result = _short_peers(tmp_path)
    assert result["missing"] == {"varnish": procs.VARNISH_HINT}
    (run,) = result["runs"]
    assert list(run["servers"]) == ["service", "limit server"]
