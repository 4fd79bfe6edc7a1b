"""`python -m bench.instructions`: CPU instructions per answer, counted by callgrind.

The cold scenario's latency moves with whatever else the shared machine runs: on these
machines the same build measured 375 to 630 us of CPU per cold answer from one run to
the next. Instructions do not move. This runs the service under valgrind's callgrind
(about 50 times slower, which only stretches the run), asks it for cold users against
the simulator with 2 ms of injected latency over ten connections, and divides the
instructions the service executed while it answered them by the number of answers.
Two counts of one build agree within about 1% over the default 300 answers, and within
0.2% over `--answers 1000` (the answers' order in the loop's turns still varies). The cold
limit (`bench/cold_limit.py`, the same calls and composition without the service's
layers) is counted the same way on the same users, and the service's count is also
given as a multiple of it.

It counts the service's other two paths the same way: an answer composed from upstream
data it has cached (the warm scenario's service, which keeps no finished answer), and a
cache hit (one user's answer asked for again and again, which the server's fast lane
answers).

It counts user-space instructions only: system calls (one send and one receive per
upstream call) are outside it, so it measures the Python-side cost that this project
controls. Needs `valgrind` (Debian package) and takes about two minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import uvloop

from . import client, procs, scenarios


class CallgrindError(Exception):
    """callgrind is missing, or wrote no counts."""


def totals(text: str) -> int:
    """The instruction count of one callgrind dump (its `totals:` or `summary:` line)."""
    for line in text.splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise CallgrindError("no totals in the callgrind dump")


def _dump(pid: int, pattern: str, before: set[Path]) -> int:
    """Have the process write its counts since the last dump; their instruction total."""
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    folder, _, prefix = pattern.rpartition("/")
    while time.monotonic() < deadline:
        new = set(Path(folder).glob(prefix + "*")) - before
        if new:
            before |= new
            time.sleep(0.2)  # the file is written before callgrind_control returns; be sure
            return totals(max(new, key=lambda p: p.stat().st_mtime).read_text())
        time.sleep(0.1)
    raise CallgrindError("callgrind wrote no dump")


# What callgrind runs, given the upstream URL, then the port.
SERVERS: dict[str, Callable[[str], Callable[[int], list[str]]]] = {
    "service": lambda upstream: (
        lambda port: [
            *(procs.PYTHON, "-m", "daw_popular", "serve", "--port", str(port)),
            *("--upstream", upstream, "--log-level", "warning"),
        ]
    ),
    "cold limit": lambda upstream: (
        lambda port: [
            *(procs.PYTHON, "-m", "bench.cold_limit", "--port", str(port)),
            *("--upstream", upstream),
        ]
    ),
}


def measure(answers: int, connections: int, logs: Path) -> dict[str, dict[str, float]]:
    """Instructions and upstream calls per cold answer of the service in this checkout,
    and of the cold limit (`bench/cold_limit.py`) on the same users and simulator; then
    per composed answer and per cache hit of the service."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise CallgrindError("valgrind not found: install it with `apt-get install valgrind`")
    warm_up = 50
    total = 3 * (answers + warm_up)
    with procs.simulator(
        logs, users=total, products=total, latency_ms=scenarios.COLD_UPSTREAM_MS
    ) as sim:
        names = scenarios._usernames(sim, total)
        # The same users for both, new to each (the simulator keeps nothing per request).
        paths = [scenarios._path(name) for name in names[: answers + warm_up]]
        counts = {
            name: _count(
                name, argv(sim.url), paths[:warm_up], paths[warm_up:], connections, logs, sim
            )
            for name, argv in SERVERS.items()
        }
    composed = 3 * answers
    with procs.simulator(logs, users=composed, products=composed) as sim:
        paths = [scenarios._path(name) for name in scenarios._usernames(sim, composed)]
        service = SERVERS["service"](sim.url)
        # Every user once to cache the upstream data, then each answer composed from it.
        counts["service, composed"] = _count(
            "service, composed",
            lambda port: [*service(port), *scenarios.COMPOSE_EVERY_TIME],
            paths,
            paths,
            connections,
            logs,
            sim,
        )
        hits = [paths[0]] * (60 * answers)
        counts["service, cache hit"] = _count(
            "service, cache hit", service, hits[:warm_up], hits, connections, logs, sim
        )
    return counts


def _count(
    name: str,
    argv: Callable[[int], list[str]],
    warm_up: list[str],
    paths: list[str],
    connections: int,
    logs: Path,
    sim: procs.Proc,
) -> dict[str, float]:
    """Instructions per answer to `paths`, asked for after `warm_up`."""
    port = procs.free_port()
    out = f"{logs}/callgrind-{port}.out"
    grind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p"]
    with procs.running(name, grind + argv(port), port, logs, cpu=procs.SERVER_CPU) as proc:
        uvloop.run(client.load(port, warm_up, connections=connections))
        dumps: set[Path] = set()
        _dump(proc.pid, out, dumps)  # from here on, the counts are the answers'
        procs.post(sim.port, "/__sim/stats/reset")
        statuses = uvloop.run(client.load(port, paths, connections=connections))
        instructions = _dump(proc.pid, out, dumps)
        calls = sum(procs.get_json(sim.port, "/__sim/stats").values())
    answers = len(paths)
    if statuses.get(200) != answers:
        raise CallgrindError(f"{name}: not every answer was a 200: {dict(statuses)}")
    return {
        "answers": answers,
        "connections": connections,
        "instructions_per_answer": instructions / answers,
        "upstream_calls_per_answer": calls / answers,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    p.add_argument(
        "--answers",
        type=int,
        default=300,
        help="cold answers counted (composed answers: three times as many; cache hits: 60 times)",
    )
    p.add_argument("--connections", type=int, default=10, help="concurrent clients")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="daw-instructions-") as logs:
        try:
            result = measure(args.answers, args.connections, Path(logs))
        except (CallgrindError, procs.ProcessError) as exc:
            print(f"bench.instructions: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(result))
    for name, counts in result.items():
        print(
            f"{name}: {counts['instructions_per_answer']:,.0f} instructions per answer "
            f"({counts['upstream_calls_per_answer']:.2f} upstream calls each)",
            file=sys.stderr,
        )
    ratio = result["service"]["instructions_per_answer"] / max(
        1.0, result["cold limit"]["instructions_per_answer"]
    )
    print(
        f"service / cold limit: {ratio:.2f}x ({args.connections} connections, "
        f"{args.answers} answers each)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
