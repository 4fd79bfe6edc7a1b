"""How fast a core runs plain Python right now: a fixed piece of work, timed.

These machines are shared and a core's speed moves, without any steal showing in
/proc/stat: on 2026-11-28 the same loop took 0.87 s on one core and 1.62 s on the
other a minute apart, and the cold p50 at c=10 of the sixth session's final build went
from 5.9 ms (that session) to 11.3 ms. A result alone cannot tell a slow machine from
a slow build, so every load point records how long this probe took on the server's core
just before it ran, and the summary says when that moved during a run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

# About 10 ms on a quiet core of these machines.
ROUNDS = 20_000
REPEAT = 5


@dataclass(slots=True)
class _Record:
    key: tuple[str, int]
    value: int


def work(rounds: int = ROUNDS) -> int:
    """What the interpreter does most on a cold answer: calls, small objects, dict lookups."""
    table: dict[tuple[str, int], _Record] = {}
    total = 0
    for i in range(rounds):
        key = ("product", i & 1023)
        table[key] = _Record(key, i)
        total += table[key].value & 7
    return total


def probe(cpu: int | None = None, *, rounds: int = ROUNDS, repeat: int = REPEAT) -> float:
    """Milliseconds the work takes on `cpu` (this process moves there meanwhile), best of
    `repeat`: an interruption lengthens one try, a slower core every one."""
    home = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            work(rounds)
            best = min(best, time.perf_counter() - started)
    finally:
        if cpu is not None:
            os.sched_setaffinity(0, home)
    return best * 1e3


def spread(probes: list[float]) -> float:
    """How much slower the slowest probe was than the fastest (0.25 = 25%); 0 for fewer than two."""
    if len(probes) < 2 or min(probes) <= 0:
        return 0.0
    return max(probes) / min(probes) - 1.0
