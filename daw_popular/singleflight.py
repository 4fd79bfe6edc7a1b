"""Request coalescing: at most one in-flight call per key, its outcome shared by every caller.

Theory of operation (after groupcache's singleflight package)
-------------------------------------------------------------
The first caller for a key starts ``fn()`` in a task of its own and files it in a dict,
which is also the strong reference that keeps the task alive until it is done. Every
caller, the first one included, gets that task and must wait for it without awaiting
it directly (``asyncio.shield``, or ``Loader.landing`` for several at once): a caller
that goes away (client disconnected, deadline hit) stops waiting but never cancels the
fetch, so the others still get its result, or its exception, the same object for all.
When the task finishes its done callback removes the key, so a call after completion
starts a new fetch: nothing is cached here, that is the cache's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


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
        return len(self._tasks)

    def start(self, key: K, fn: Callable[[], Awaitable[V]]) -> asyncio.Task[V]:
        """The running task for `key`, or a new one running `fn()`; never a second one."""
        self.calls += 1
        task = self._tasks.get(key)
        # A done task still in the map is one whose removal is queued (see _finished).
        if task is not None and not task.done():
            self.deduped += 1
            return task
        task = asyncio.get_running_loop().create_task(_call(fn))
        self._tasks[key] = task
        task.add_done_callback(partial(self._finished, key))
        return task

    def statistics(self) -> FlightStatistics:
        """A snapshot of the counters, for metrics."""
        return FlightStatistics(calls=self.calls, deduped=self.deduped, in_flight=self.in_flight)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        # The race: a task finishing and its done callbacks running are two steps, the
        # callbacks are queued with call_soon. So this can happen:
        #   1. task A for key k returns; _finished(k, A) is queued, not yet run.
        #   2. caller X, already on the ready queue, runs first: A is done, so X starts
        #      task B and files k -> B (start treats a done task as absent, so a call
        #      after completion always fetches again, as in groupcache).
        #   3. _finished(k, A) runs. A blind `del self._tasks[k]` would drop B ...
        #   4. ... and caller Y would start task C while B still runs: two fetches for
        #      one key, and B, unreferenced, could be garbage-collected mid-flight.
        # Hence the identity check: a callback removes only its own task.
        if self._tasks.get(key) is task:
            del self._tasks[key]
        # Every waiter may have been cancelled (or there were none, for a background
        # start); retrieving the exception here stops asyncio from logging "Task
        # exception was never retrieved" for an outcome that was handled by design.
        if not task.cancelled():
            task.exception()


async def _call(fn: Callable[[], Awaitable[V]]) -> V:
    # Calls fn inside the task, so even an exception raised before fn's first await
    # becomes the shared outcome rather than escaping into whichever caller came first.
    return await fn()
