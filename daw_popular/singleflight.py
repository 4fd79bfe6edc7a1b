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

A task starts eagerly: ``start`` runs its first step at once, as the task (as Python
3.12's ``eager_start`` does), so a fetch sends its request before ``start`` returns,
not one event-loop turn later. Under load a turn is long: at 10 concurrent cold
answers, each turn a cold answer waited for cost it 0.13 to 0.24 ms.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Callable, Coroutine, Generator, Hashable
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
        first = _FirstStep()
        run = self._run(key, fn, args, first)
        context = contextvars.copy_context()
        task = loop.create_task(run, context=context)
        self._tasks[key] = task
        if eager:
            first.take(loop, task, run, context)
        return task

    def statistics(self) -> FlightStatistics:
        """A snapshot of the counters, for metrics."""
        return FlightStatistics(calls=self.calls, deduped=self.deduped, in_flight=self.in_flight)

    async def _run(
        self,
        key: K,
        fn: Callable[[*Ts], Coroutine[Any, Any, V]],
        args: tuple[*Ts],
        first: _FirstStep,
    ) -> V:
        # Calls fn inside the task, so even an exception raised before fn's first await
        # becomes the shared outcome rather than escaping into whichever caller came first.
        try:
            try:
                return await fn(*args)
            finally:
                if first.running:
                    # fn ended without waiting once, during the first step `start` ran:
                    # the task's own first step, already scheduled, must find this
                    # coroutine unfinished, so it ends there, one turn later.
                    await _NEXT_TURN
        except BaseException:
            # Every waiter may have been cancelled (or there were none, for a background
            # start): the outcome is retrieved as the task ends, so that asyncio does not
            # log "Task exception was never retrieved" for a failure handled by design.
            # Only a failure needs it: a done callback on every task cost 1.9% of a cold
            # answer's instructions. (During the first step, `take` made it current.)
            _retrieve_when_done(asyncio.current_task())
            raise
        finally:
            # The key is unfiled here, as the task ends and before anyone can see it done:
            # while it runs, no `start` replaces it (it is not done), so the entry is ours.
            # A call right after completion therefore always starts a new fetch, as in
            # groupcache. (A done callback would unfile it one event-loop turn later, and
            # would have to check that it is not removing a newer task.)
            self._tasks.pop(key, None)


class _FirstStep:
    """A task's first step, run by `SingleFlight.start` rather than by the event loop.

    The task is created first, so its first step is already scheduled; `take` runs the
    coroutine up to its first wait, with the task as the current task (what
    `asyncio.timeout` and `current_task()` inside the fetch expect) and in the task's
    context (a context variable the fetch sets stays its own), then hands the
    future it waits for back to the task. The scheduled step then resumes the
    coroutine, which yields that future again, now to the task (a pending asyncio
    future yields itself again once its `_asyncio_future_blocking` flag is cleared),
    and the task waits for it as usual; a cancellation arriving before that step is
    thrown into the coroutine where it waits, as any other.
    """

    __slots__ = ("running",)

    def __init__(self) -> None:
        self.running = False

    def take(
        self,
        loop: asyncio.AbstractEventLoop,
        task: asyncio.Task[Any],
        run: Coroutine[Any, Any, Any],
        context: contextvars.Context,
    ) -> None:
        caller = asyncio.current_task(loop)
        if caller is not None:
            _leave_task(loop, caller)
        _enter_task(loop, task)
        self.running = True
        try:
            waited = context.run(run.send, None)
        finally:
            self.running = False
            _leave_task(loop, task)
            if caller is not None:
                _enter_task(loop, caller)
        if getattr(waited, "_asyncio_future_blocking", False):
            waited._asyncio_future_blocking = False


class _NextTurn:
    """`await _NEXT_TURN` yields to the event loop once, as `asyncio.sleep(0)` does."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield


_NEXT_TURN = _NextTurn()


def _retrieve_when_done(task: asyncio.Task[Any] | None) -> None:
    # Not inline in `_run`: a local there would keep the task alive from the traceback.
    if task is not None:
        task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
