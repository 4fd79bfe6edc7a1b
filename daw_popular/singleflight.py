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

A task starts eagerly (see `eager`): ``start`` runs its first step at once, as the
task, so a fetch sends its request before ``start`` returns, not one event-loop turn
later. The task's own coroutine (`_flight`) is the wrapper `eager` requires, rather
than one more coroutine around it: one is made per upstream call.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, TypeVarTuple

from .eager import NEXT_TURN, FirstStep

# Every flight's task has this name. Left unnamed, a task formats "Task-<n>" as it is
# made: 0.5% of a cold answer's instructions. (So the task is made here rather than by
# `loop.create_task`, which names it only after; a loop's task factory is not used.)
TASK_NAME: Final = "daw-popular single-flight"

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
        # A task not started eagerly and cancelled before its first step never ran, so
        # it could not unfile itself: not counted (and replaced by the next `start`).
        return sum(1 for task in self._tasks.values() if not task.done())

    def start(
        self,
        key: K,
        fn: Callable[[*Ts], Coroutine[Any, Any, V]],
        *args: *Ts,
        eager: bool = True,
    ) -> asyncio.Task[V]:
        """The running task for `key`, or a new one running `fn(*args)`; never a second one.

        A new task has run its first step when this returns (see the module's text): it
        is never done yet, but its fetch may already be waiting for an answer. With
        `eager=False` it starts at the loop's next turn instead, for a background
        refresh that nobody waits for: the caller that started it goes on first.
        (Arguments rather than a `functools.partial`: one is made per upstream call,
        and it costs more than the rest of this method.)
        """
        self.calls += 1
        task = self._tasks.get(key)
        if task is not None and not task.done():
            self.deduped += 1
            return task
        loop = asyncio.get_running_loop()
        first = FirstStep()
        run = _flight(self._tasks, key, fn, args, first)
        context = contextvars.copy_context()
        task = asyncio.Task(run, loop=loop, name=TASK_NAME, context=context)
        self._tasks[key] = task
        if eager:
            first.take(loop, task, run, context)
        return task

    def statistics(self) -> FlightStatistics:
        """A snapshot of the counters, for metrics."""
        return FlightStatistics(calls=self.calls, deduped=self.deduped, in_flight=self.in_flight)


async def _flight(
    tasks: dict[K, asyncio.Task[V]],
    key: K,
    fn: Callable[[*Ts], Coroutine[Any, Any, V]],
    args: tuple[*Ts],
    first: FirstStep,
) -> V:
    """`fn(*args)`, as the coroutine of the single-flight task filed under `key` in `tasks`.

    Calls fn inside the task, so even an exception raised before fn's first await
    becomes the shared outcome rather than escaping into whichever caller came first.
    """
    failure: BaseException | None = None
    try:
        try:
            result = await fn(*args)
        except BaseException as exc:
            failure = exc
        if first.running:
            # fn ended without waiting once, during the first step `start` ran: the
            # task's own first step, already scheduled, must find this coroutine
            # unfinished, so it ends there, one turn later (see `eager`).
            await NEXT_TURN
        if failure is not None:
            # Every waiter may have been cancelled (or there were none, for a background
            # start): the outcome is retrieved as the task ends, so that asyncio does
            # not log "Task exception was never retrieved" for a failure handled by
            # design. Only a failure needs it: a done callback on every task cost 1.9%
            # of a cold answer's instructions.
            _retrieve_when_done(asyncio.current_task())
            raise failure
        return result
    finally:
        # The key is unfiled here, as the task ends and before anyone can see it done:
        # while it runs, no `start` replaces it (it is not done), so the entry is ours.
        # A call right after completion therefore always starts a new fetch, as in
        # groupcache. (A done callback would unfile it one event-loop turn later, and
        # would have to check that it is not removing a newer task.)
        tasks.pop(key, None)
        failure = None  # no cycle: the exception's traceback holds this frame


def _retrieve_when_done(task: asyncio.Task[Any] | None) -> None:
    # Not inline in `_flight`: a local there would keep the task alive from the traceback.
    if task is not None:
        task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
