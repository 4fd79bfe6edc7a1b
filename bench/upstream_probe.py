"""The upstream's round trip, idle or beside a load (`python -m bench.upstream_probe`).

The cold bound is two upstream round trips measured idle. Under the cold load the
service times its own upstream calls longer than that. Is the upstream slower, or is
the time spent waiting for the server's core? `Beside` answers it: a process pinned
to the load generator's core asks the upstream once every `interval` seconds for as
long as the load runs, over one keep-alive connection, the way the idle measurement
does. It adds a hundred requests a second to the thousands of the load, and its start
(an interpreter importing uvloop, about a tenth of a second) falls on the load's first
moments, for the service's load and the cold limit's alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from types import TracebackType

import uvloop

from . import client, procs


async def round_trips(
    port: int,
    target: str,
    *,
    samples: int | None = None,
    seconds: float | None = None,
    interval: float = 0.0,
) -> list[float]:
    """Milliseconds per GET of `target`, one after another over one connection, until
    `samples` were taken or `seconds` have passed, pausing `interval` s between them."""
    if samples is None and seconds is None:
        raise ValueError("round_trips needs samples or seconds")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {target} HTTP/1.1\r\nHost: upstream\r\n\r\n".encode()
    ends = None if seconds is None else time.monotonic() + seconds
    times: list[float] = []
    try:
        while (samples is None or len(times) < samples) and (
            ends is None or time.monotonic() < ends
        ):
            started = time.perf_counter()
            writer.write(request)
            await client.read_response(reader)
            times.append((time.perf_counter() - started) * 1e3)
            if interval:
                await asyncio.sleep(interval)
    finally:
        writer.close()
    return times


class Beside:
    """The upstream's round trips, taken by a process pinned to `cpu` while the block runs.

    `seconds` bounds the probe: give it the load's length, so it never outlasts it. A
    probe still running `grace` seconds after that (an upstream that stopped answering)
    is killed, and so is one whose block raised; a probe that failed, or took no
    sample, is a `procs.ProcessError`.
    """

    def __init__(
        self,
        port: int,
        target: str,
        seconds: float,
        *,
        interval: float = 0.01,
        cpu: int | None = procs.LOAD_CPU,
        grace: float = 60.0,
    ) -> None:
        argv = [procs.PYTHON, "-m", "bench.upstream_probe", "--port", str(port)]
        argv += ["--target", target, "--seconds", f"{seconds:g}", "--interval", f"{interval:g}"]
        self._argv = procs.pinned(argv, cpu)
        self._wait = seconds + grace
        self._popen: subprocess.Popen[str] | None = None
        self.times: list[float] = []

    def __enter__(self) -> Beside:
        self._popen = subprocess.Popen(self._argv, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        popen = self._popen
        assert popen is not None
        if kind is not None:
            popen.kill()
            popen.wait()
            return
        try:
            out, _ = popen.communicate(timeout=self._wait)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
            raise procs.ProcessError(
                f"upstream probe still running {self._wait:g} s after it started"
            ) from None
        if popen.returncode != 0:
            raise procs.ProcessError(f"upstream probe exited with {popen.returncode}")
        self.times = json.loads(out)
        if not self.times:
            raise procs.ProcessError("upstream probe took no sample")

    @property
    def median_ms(self) -> float:
        """The median round trip, in milliseconds, once the block has ended."""
        return statistics.median(self.times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream_probe", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="the upstream's port")
    parser.add_argument("--target", required=True, help="the path asked for")
    parser.add_argument("--seconds", type=float, required=True, help="how long to probe")
    parser.add_argument("--interval", type=float, default=0.01, help="pause between requests")
    args = parser.parse_args(argv)
    times = uvloop.run(
        round_trips(args.port, args.target, seconds=args.seconds, interval=args.interval)
    )
    print(json.dumps(times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
