"""`serve --workers 2` as real processes: load spread, a killed worker replaced, SIGTERM drain."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daw_popular import workers
from daw_popular.config import Settings

ROOT = Path(__file__).resolve().parents[1]
LISTENING = re.compile(
    r"listening on http://127\.0\.0\.1:(\d+)/ \(2 workers, supervisor pid (\d+)\)"
)
WORKER_LISTENING = re.compile(r"daw_popular\[\d+\]: daw-popular listening")
SIMULATOR = re.compile(r"simulator on (http://\S+)")


@dataclass
class Service:
    process: subprocess.Popen[str]
    port: int


def _start(
    args: list[str], pattern: re.Pattern[str], stream: str, then: int = 0
) -> tuple[subprocess.Popen[str], re.Match[str]]:
    """Start `daw-popular ARGS`; wait for `pattern`, and for `then` workers listening."""
    process = subprocess.Popen(
        [sys.executable, "-m", "daw_popular", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE if stream == "stdout" else subprocess.DEVNULL,
        stderr=subprocess.PIPE if stream == "stderr" else subprocess.DEVNULL,
        text=True,
    )
    pipe = process.stdout if stream == "stdout" else process.stderr
    assert pipe is not None
    deadline = time.monotonic() + 10
    found = None
    while time.monotonic() < deadline:
        line = pipe.readline()
        found = found or pattern.search(line)
        then -= WORKER_LISTENING.search(line) is not None
        if found and then <= 0:
            return process, found
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"{args[0]} did not start")


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    process, match = _start(["sim", "--port", "0", "--seed", "7"], SIMULATOR, "stdout")
    yield match.group(1)
    process.terminate()
    process.wait(5)


@pytest.fixture
def service(upstream: str) -> Iterator[Service]:
    process, match = _start(
        ["serve", "--workers", "2", "--port", "0", "--upstream", upstream, "--shutdown-grace", "2"],
        LISTENING,
        "stderr",
        then=2,
    )
    assert int(match.group(2)) == process.pid
    yield Service(process, int(match.group(1)))
    if process.poll() is None:
        process.kill()
        process.wait(5)


def get(port: int, path: str) -> tuple[int, bytes]:
    """One request on a fresh connection, so the kernel picks a worker each time."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def worker_pids(port: int, tries: int = 60) -> set[int]:
    pids = set()
    for _ in range(tries):
        status, body = get(port, "/healthz")
        assert status == 200
        pids.add(int(body.decode().split("pid=")[1]))
    return pids


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def test_two_workers_share_the_port_and_the_load(service: Service) -> None:
    """Connections land on both workers, and both are the supervisor's children."""
    pids = worker_pids(service.port)
    assert len(pids) == 2
    assert pids == children(service.process.pid)


def test_a_killed_worker_is_replaced_and_the_service_keeps_answering(service: Service) -> None:
    """Once the killed worker is reaped every request is answered, before and after its
    replacement starts (connections queued on the dead socket itself are reset by the kernel)."""
    victim = min(worker_pids(service.port))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while victim in children(service.process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    replaced: set[int] = set()
    while time.monotonic() < deadline:
        assert get(service.port, "/healthz")[0] == 200
        replaced = children(service.process.pid)
        if len(replaced) == 2 and victim not in replaced:
            break
    assert len(replaced) == 2 and victim not in replaced
    seen: set[int] = set()
    while seen != replaced and time.monotonic() < deadline + 3:
        seen |= worker_pids(service.port, tries=10)
    assert seen == replaced


def test_counters_of_a_killed_worker_are_kept(service: Service) -> None:
    """Counts survive a worker's death: folded into the retired totals, not lost or doubled."""
    for _ in range(20):
        assert get(service.port, "/readyz")[0] == 200
    time.sleep(0.6)  # each worker publishes its counts on its tick
    os.kill(min(children(service.process.pid)), signal.SIGKILL)
    time.sleep(0.3)
    families = {
        f.name: f for f in text_string_to_metric_families(get(service.port, "/metrics")[1].decode())
    }
    readyz = [
        s.value
        for s in families["daw_popular_requests"].samples
        if s.name == "daw_popular_requests_total" and s.labels["route"] == "readyz"
    ]
    assert readyz == [20]


def test_sigterm_drains_and_exits_0_within_the_grace(service: Service) -> None:
    pids = worker_pids(service.port, tries=10)
    started = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(5) == 0
    assert time.monotonic() - started < 3.0
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_one_worker_runs_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--workers 1` starts no supervisor: serve runs on this process's loop."""
    calls: list[object] = []

    async def serve(settings: Settings) -> None:
        calls.append(settings)

    monkeypatch.setattr(workers.service_app, "serve", serve)
    settings = Settings(workers=1)
    assert workers.run(settings) == 0
    assert calls == [settings]


def test_crash_backoff_grows_and_resets_after_a_stable_run() -> None:
    assert workers.backoff(1) == 0.0
    assert [workers.backoff(n) for n in (2, 3, 4)] == [0.1, 0.2, 0.4]
    assert workers.backoff(50) == workers.BACKOFF_MAX


def test_a_serving_process_freezes_its_start_up_objects_and_raises_the_gc_threshold() -> None:
    """`serve` tunes the collector once started (in a child: it is process-wide)."""
    probe = (
        "import gc; from daw_popular.app import GC_THRESHOLDS, tune_gc\n"
        # Python 3.12.1 starts with a few hundred objects frozen already.
        "before = gc.get_freeze_count()\n"
        "assert gc.get_threshold() != GC_THRESHOLDS\n"
        "tune_gc()\n"
        "print(gc.get_freeze_count() - before, gc.get_threshold() == GC_THRESHOLDS)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert int(out[0]) > 1000 and out[1] == "True"
