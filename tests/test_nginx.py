"""deploy/nginx.conf on a real nginx, in front of two real service instances and the simulator."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from support import free_port

from daw_popular.sim.routes import USER

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx.conf"
PLACEHOLDER = re.compile(r"\$\{(NGINX_[A-Z0-9_]+)\}")
PREFIX = "/api/recent_purchases/"


def tool(name: str, package: str) -> str:
    """A Debian tool the test needs: missing is a failure, never a skip."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.fail(f"{name} is not installed (Debian package {package})")
    return found


def render(template: str, values: dict[str, str]) -> str:
    """envsubst restricted to NGINX_* names, as the official image's entrypoint does it."""
    missing = set(PLACEHOLDER.findall(template)) - set(values)
    assert not missing, f"no value for {sorted(missing)}"
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


def wait_for(port: int, path: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"{process.args!r} exited {process.returncode}: {stderr}")
        try:
            if fetch(port, path).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{process.args!r} did not answer {path} on port {port}")


@dataclass(slots=True)
class Topology:
    nginx: int
    h2c: int
    services: list[int]
    sim: int
    processes: dict[str, subprocess.Popen[bytes]]
    users: list[str]

    def sim_stats(self) -> dict[str, int]:
        stats: dict[str, int] = json.loads(fetch(self.sim, "/__sim/stats").body)
        return stats

    def fresh_user(self) -> str:
        """A user nobody asked nginx for yet, the one with most purchases first."""
        return self.users.pop(0)


def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    nginx_bin = tool("nginx", "nginx")
    processes: dict[str, subprocess.Popen[bytes]] = {}
    # Not pytest's tmp_path: its parents are private to this user, and when the test runs as
    # root nginx's workers run as `nobody` and must reach the cache directory.
    prefix = Path(tempfile.mkdtemp(prefix="daw-nginx-"))
    prefix.chmod(0o755)
    try:
        sim = free_port()
        processes["sim"] = spawn(
            [
                sys.executable,
                "-m",
                "daw_popular",
                "sim",
                "--port",
                str(sim),
                "--seed",
                "1",
                "--users",
                "40",
            ]
        )
        wait_for(sim, "/api/users?limit=1", processes["sim"])
        services = [free_port(), free_port()]
        for index, port in enumerate(services):
            processes[f"service{index}"] = spawn(
                [
                    sys.executable,
                    "-m",
                    "daw_popular",
                    "serve",
                    "--port",
                    str(port),
                    "--upstream",
                    f"http://127.0.0.1:{sim}",
                ]
            )
        nginx, h2c = free_port(), free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(
            render(
                TEMPLATE.read_text(),
                {
                    "NGINX_LISTEN": f"127.0.0.1:{nginx}",
                    "NGINX_H2C_LISTEN": f"127.0.0.1:{h2c}",
                    "NGINX_UPSTREAM_SERVERS": " ".join(
                        f"server 127.0.0.1:{port};" for port in services
                    ),
                    "NGINX_STATE_DIR": str(prefix / "state"),
                },
            )
        )
        (prefix / "state").mkdir()
        argv = [nginx_bin, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
        checked = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=10)
        assert checked.returncode == 0, checked.stderr
        for index, port in enumerate(services):
            wait_for(port, "/healthz", processes[f"service{index}"])
        processes["nginx"] = spawn(argv)
        wait_for(nginx, "/nginx_status", processes["nginx"])

        users = json.loads(fetch(sim, "/api/users?limit=1000").body)["users"]
        names = [user["username"] for user in users]
        bought = {
            name: len(
                json.loads(fetch(sim, f"/api/purchases/by_user/{name}?limit=5").body)["purchases"]
            )
            for name in names
        }
        yield Topology(
            nginx, h2c, services, sim, processes, sorted(names, key=lambda n: -bought[n])
        )
    finally:
        for process in reversed(processes.values()):
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()
        shutil.rmtree(prefix, ignore_errors=True)


def path_of(user: str) -> str:
    return PREFIX + quote(user, safe="")


def test_answers_through_nginx_equal_the_service(topology: Topology) -> None:
    for user in [topology.fresh_user() for _ in range(3)] + ["No.Such.User"]:
        through = fetch(topology.nginx, path_of(user))
        direct = fetch(topology.services[0], path_of(user))
        assert (through.status, through.body) == (direct.status, direct.body), user
        for header in ("content-type", "cache-control", "etag"):
            assert through.headers.get(header) == direct.headers.get(header), (user, header)
        assert through.headers["x-cache-status"] == "MISS"


def test_repeated_request_is_served_from_the_cache(topology: Topology) -> None:
    """The second request never reaches a replica: the simulator's counters stay still."""
    path = path_of(topology.fresh_user())
    first = fetch(topology.nginx, path)
    assert first.status == 200 and first.headers["x-cache-status"] == "MISS"
    before = topology.sim_stats()
    second = fetch(topology.nginx, path)
    assert topology.sim_stats() == before
    assert second.headers["x-cache-status"] == "HIT"
    assert (second.status, second.body, second.headers["etag"]) == (
        200,
        first.body,
        first.headers["etag"],
    )


def test_if_none_match_is_answered_from_the_cache(topology: Topology) -> None:
    path = path_of(topology.fresh_user())
    etag = fetch(topology.nginx, path).headers["etag"]
    before = topology.sim_stats()
    assert fetch(topology.nginx, path, {"If-None-Match": etag}).status == 304
    assert topology.sim_stats() == before


def test_concurrent_cold_requests_reach_the_upstream_once(topology: Topology) -> None:
    """proxy_cache_lock: one request per key goes to a replica, whichever replicas there are."""
    path = path_of(topology.fresh_user())
    before = topology.sim_stats()
    gate = threading.Barrier(16)

    def one(_: int) -> Reply:
        gate.wait()
        return fetch(topology.nginx, path)

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(one, range(16)))
    assert {(r.status, r.body) for r in replies} == {(200, replies[0].body)}
    assert [r.headers["x-cache-status"] for r in replies].count("MISS") == 1
    assert topology.sim_stats()[USER] - before[USER] == 1


def test_gzip_when_asked(topology: Topology) -> None:
    path = path_of(topology.fresh_user())
    plain = fetch(topology.nginx, path)
    assert len(plain.body) > 256, "pick a user with a longer answer"
    assert "content-encoding" not in plain.headers
    packed = fetch(topology.nginx, path, {"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert packed.headers["x-cache-status"] == "HIT"
    assert gzip.decompress(packed.body) == plain.body
    assert len(packed.body) < len(plain.body)


def nghttp(*args: str) -> str:
    done = subprocess.run(
        [tool("nghttp", "nghttp2-client"), *args], capture_output=True, timeout=10, check=True
    )
    return done.stdout.decode()


def test_http2_prior_knowledge_on_the_h2c_listener(topology: Topology) -> None:
    path = path_of(topology.fresh_user())
    url = f"http://127.0.0.1:{topology.h2c}{path}"
    expected = fetch(topology.nginx, path)
    trace = nghttp("--verbose", "--null-out", url)
    assert "recv SETTINGS frame" in trace
    stream = re.search(r"recv \(stream_id=(\d+)\) :status: ", trace)
    assert stream is not None, trace
    headers = dict(re.findall(rf"recv \(stream_id={stream[1]}\) ([:\w-]+): (.*)", trace))
    assert headers[":status"] == "200"
    assert headers["x-cache-status"] == "HIT"
    # nghttp asks for gzip, and nginx weakens the ETag of what it compresses.
    assert headers["content-encoding"] == "gzip"
    assert headers["etag"] == "W/" + expected.headers["etag"]
    assert nghttp(url).encode() == expected.body


def test_http2_load_all_succeed(topology: Topology) -> None:
    """h2load: many multiplexed streams over a few connections, every one a 2xx."""
    path = path_of(topology.fresh_user())
    report = subprocess.run(
        [
            tool("h2load", "nghttp2-client"),
            "-n",
            "200",
            "-c",
            "2",
            "-m",
            "10",
            f"http://127.0.0.1:{topology.h2c}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    assert "200 succeeded, 0 failed, 0 errored" in report, report
    assert re.search(r"status codes: 200 2xx, 0 3xx, 0 4xx, 0 5xx", report), report
    assert "Application protocol: h2c" in report


def test_metrics_are_not_served_through_the_balancer(topology: Topology) -> None:
    assert fetch(topology.nginx, "/metrics").status == 404


def test_a_dead_replica_is_routed_around(topology: Topology) -> None:
    """Uncached requests keep succeeding on the surviving replica (proxy_next_upstream)."""
    victim = topology.processes["service1"]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=5)
    for _ in range(6):
        assert fetch(topology.nginx, "/healthz").status == 200
    user = topology.fresh_user()
    assert (
        fetch(topology.nginx, path_of(user)).body == fetch(topology.services[0], path_of(user)).body
    )
