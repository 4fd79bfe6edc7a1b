"""Request coalescing: at most one in-flight call per key, its outcome shared by every caller.

Theory of operation (after groupcache's singleflight package)
-------------------------------------------------------------
The first caller for a key starts ``fn(*args)`` in a task of its own and files it in a
dict, which is also the strong reference that keeps the task alive until it is done.
Every caller, the first one included, gets that task and must wait for it without
awaiting it directly (``asyncio.shield``, or ``Loader.landing`` for several at once): a
caller that goes away (client disconnected, deadline hit) stops waiting but never
cancels the fetch, so the others still get its result, or its exception, the same
object for all. The task unfiles its key itself as it ends, so a call after completion
starts a new fetch: nothing is cached here, that is the cache's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, TypeVarTuple

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True, slots=True)
class FlightStatistics:
    """A snapshot of a SingleFlight's counters."""

    calls: int
    deduped: int
    in_flight: int


class SingleFlight(Generic[K, V]):
    """One in-flight task per key; callers share it and cannot cancel it."""

    __slots__ = ("_tasks", "calls", "deduped")

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[V]] = {}
        self.calls = 0  # start() calls
        self.deduped = 0  # of those, the ones that joined a running task

    def __contains__(self, key: K) -> bool:
        """True while a call for `key` is running (joining it would not start one)."""
        task = self._tasks.get(key)
        return task is not None and not task.done()

    @property
    def in_flight(self) -> int:
        # A task cancelled before it ever ran could not unfile itself: not counted.
        return sum(1 for task in self._tasks.values() if not task.done())

    def start(self, key: K, fn: Callable[[*Ts], Awaitable[V]], *args: *Ts) -> asyncio.Task[V]:
        """The running task for `key`, or a new one running `fn(*args)`; never a second one.

        (Arguments rather than a `functools.partial`: one is made per upstream call,
        and it costs more than the rest of this method.)
        """
        self.calls += 1
        task = self._tasks.get(key)
        if task is not None and not task.done():
            self.deduped += 1
            return task
        task = asyncio.get_running_loop().create_task(self._run(key, fn, args))
        self._tasks[key] = task
        task.add_done_callback(_retrieve)
        return task

    def statistics(self) -> FlightStatistics:
        """A snapshot of the counters, for metrics."""
        return FlightStatistics(calls=self.calls, deduped=self.deduped, in_flight=self.in_flight)

    async def _run(self, key: K, fn: Callable[[*Ts], Awaitable[V]], args: tuple[*Ts]) -> V:
        # Calls fn inside the task, so even an exception raised before fn's first await
        # becomes the shared outcome rather than escaping into whichever caller came first.
        try:
            return await fn(*args)
        finally:
            # The key is unfiled here, as the task ends and before anyone can see it done:
            # while it runs, no `start` replaces it (it is not done), so the entry is ours.
            # A call right after completion therefore always starts a new fetch, as in
            # groupcache. (A done callback would unfile it one event-loop turn later, and
            # would have to check that it is not removing a newer task.)
            self._tasks.pop(key, None)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Every waiter may have been cancelled (or there were none, for a background start);
    # retrieving the exception stops asyncio from logging "Task exception was never
    # retrieved" for an outcome that was handled by design.
    if not task.cancelled():
        task.exception()
