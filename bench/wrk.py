"""Running wrk and reading its report: throughput, latency distribution, errors, timeouts."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

INSTALL_HINT = "wrk not found: install it with `sudo apt-get install wrk` (Debian/Ubuntu)"

# wrk prints times with the unit it found most readable (src/units.c).
_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_LATENCY_LINE = re.compile(rf"^\s*Latency\s+{_TIME}\s+{_TIME}\s+{_TIME}", re.MULTILINE)
_PERCENTILE = re.compile(rf"^\s*(\d+(?:\.\d+)?)%\s+{_TIME}\s*$", re.MULTILINE)
_TOTALS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PATHS_USED = re.compile(r"^paths (\d+) used (\d+)$", re.MULTILINE)


class WrkError(Exception):
    """wrk failed or printed something this parser does not understand."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run. Latencies in milliseconds; `errors` excludes timeouts."""

    requests: int
    seconds: float
    rps: float
    latency_avg_ms: float
    latency_max_ms: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    non_2xx: int
    paths: int | None = None
    paths_used: int | None = None
    # Set by the caller: how long `bench/speed.py`'s probe took on the server's core
    # just before and just after the run, in ms (lower is faster).
    probe_ms: tuple[float, float] | None = None

    @property
    def errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.non_2xx

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def _ms(number: str, unit: str) -> float:
    return float(number) * _TIME_UNITS[unit]


def parse(output: str) -> WrkResult:
    """Read wrk's `--latency` report (and the rotation script's `paths N used M` line)."""
    totals = _TOTALS.search(output)
    rps = _RPS.search(output)
    latency = _LATENCY_LINE.search(output)
    if totals is None or rps is None or latency is None:
        raise WrkError(f"unexpected wrk output:\n{output}")
    percentiles = {float(p): _ms(n, u) for p, n, u in _PERCENTILE.findall(output)}
    missing = {50.0, 75.0, 90.0, 99.0} - percentiles.keys()
    if missing:
        raise WrkError(f"wrk output lacks the latency distribution (run with --latency):\n{output}")
    socket_errors = _SOCKET_ERRORS.search(output)
    connect, read, write, timeout = (
        (int(g) for g in socket_errors.groups()) if socket_errors else (0, 0, 0, 0)
    )
    non_2xx = _NON_2XX.search(output)
    paths = _PATHS_USED.search(output)
    return WrkResult(
        requests=int(totals.group(1)),
        seconds=_ms(totals.group(2), totals.group(3)) / 1e3,
        rps=float(rps.group(1)),
        latency_avg_ms=_ms(latency.group(1), latency.group(2)),
        latency_max_ms=_ms(latency.group(5), latency.group(6)),
        p50_ms=percentiles[50.0],
        p75_ms=percentiles[75.0],
        p90_ms=percentiles[90.0],
        p99_ms=percentiles[99.0],
        connect_errors=connect,
        read_errors=read,
        write_errors=write,
        timeouts=timeout,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        paths=int(paths.group(1)) if paths else None,
        paths_used=int(paths.group(2)) if paths else None,
    )


def find() -> str | None:
    """Path of the wrk binary, or None."""
    return shutil.which("wrk")


def command(
    url: str,
    connections: int,
    seconds: float,
    *,
    cpu: int | None = 1,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    timeout: float = 2.0,
    binary: str = "wrk",
) -> list[str]:
    """The argv of one run: one thread, pinned to `cpu`, latency distribution on."""
    argv = [
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout))}s",
        "--latency",
    ]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    return argv


def run(
    argv: Sequence[str],
    seconds: float,
    *,
    tick: Callable[[float, float], None] | None = None,
) -> WrkResult:
    """Run wrk, calling `tick(elapsed, seconds)` a few times a second, and parse its report."""
    started = time.monotonic()
    with subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        while True:
            try:
                output, _ = proc.communicate(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if tick is not None:
                    tick(time.monotonic() - started, seconds)
                if time.monotonic() - started > seconds + 60:
                    proc.kill()
                    raise WrkError(f"wrk did not finish: {' '.join(argv)}") from None
    if proc.returncode != 0:
        raise WrkError(f"wrk exited with {proc.returncode}:\n{output}")
    return parse(output)
