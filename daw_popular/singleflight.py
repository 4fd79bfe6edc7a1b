"""Request coalescing: at most one in-flight call per key, its outcome shared by every caller.

Theory of operation (after groupcache's singleflight package)
-------------------------------------------------------------
The first caller for a key starts ``fn(*args)`` in a task of its own and files a `Call`
for it in a dict, which is also the strong reference that keeps the task alive until it
is done. Every caller, the first one included, gets that `Call` and waits for it without
awaiting its task directly (a listener, ``Loader.landing``, or ``asyncio.shield``): a
caller that goes away (client disconnected, deadline hit) stops waiting but never
cancels the fetch, so the others still get its result, or its exception, the same
object for all. The call unfiles its key itself as it ends, so a call after completion
starts a new fetch: nothing is cached here, that is the cache's job.

A call's outcome is known, and its listeners are called, the moment ``fn`` returns or
raises, inside the task's last step: not one event-loop turn later, as a done callback
of the task would be. Under load every turn waits behind the work of everything that
became ready first (a cold answer is made of a chain of such endings: an upstream call's
flight, the composition waiting for it, the request waiting for the composition).

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
from functools import partial
from typing import Any, Final, Generic, TypeVar, TypeVarTuple

from .eager import NEXT_TURN, FirstStep

# Every flight's task has this name. Left unnamed, a task formats "Task-<n>" as it is
# made: 0.5% of a cold answer's instructions. (So the task is made here rather than by
# `loop.create_task`, which names it only after; a loop's task factory is not used.)
TASK_NAME: Final = "daw-popular single-flight"

# Final names for the module functions called per flight: compiled, each is then a C
# static, where `asyncio.get_running_loop` is an attribute lookup on the module at every
# call.
_GET_RUNNING_LOOP: Final = asyncio.get_running_loop
_COPY_CONTEXT: Final = contextvars.copy_context
_TASK: Final = asyncio.Task

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True, slots=True)
class FlightStatistics:
    """A snapshot of a SingleFlight's counters."""

    calls: int
    deduped: int
    in_flight: int


class Call(Generic[V]):
    """One call of a `SingleFlight`: the task running it, and its outcome once it ended.

    Read like an asyncio future (`done`, `result`, `exception`, `cancelled`), but done as
    ``fn`` ends, inside the task's last step; the task itself is done a moment later.
    Listeners are called then, synchronously, in the order they were added.
    """

    __slots__ = ("_failure", "_listeners", "_result", "done", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[V]  # set by `SingleFlight.start`, which makes it
        self._listeners: list[Callable[[Call[V]], object]] | None = None
        self._result: V | None = None
        self._failure: BaseException | None = None
        self.done = False  # an attribute, not a method: read per wait, compiled a field load

    def __repr__(self) -> str:
        if not self.done:
            return "<Call in flight>"
        if self._failure is not None:
            return f"<Call failed: {self._failure!r}>"
        return f"<Call: {self._result!r}>"

    def result(self) -> V:
        """The value ``fn`` returned; its exception raised; InvalidStateError before it ended."""
        if not self.done:
            raise asyncio.InvalidStateError("the call has not ended")
        if self._failure is not None:
            raise self._failure
        return self._result  # type: ignore[return-value]  # V itself may be None

    def exception(self) -> BaseException | None:
        """What ``fn`` raised (None if it returned); CancelledError raised if it was cancelled."""
        if not self.done:
            raise asyncio.InvalidStateError("the call has not ended")
        if isinstance(self._failure, asyncio.CancelledError):
            raise self._failure
        return self._failure

    def cancelled(self) -> bool:
        return self.done and isinstance(self._failure, asyncio.CancelledError)

    def add_listener(self, listener: Callable[[Call[V]], object]) -> None:
        """Call `listener(self)` as the call ends; at the loop's next turn if it has ended.

        Never synchronously from here: a caller may add its listener before it is ready
        for the outcome (as with a future's done callback).
        """
        if self.done:
            self.task.get_loop().call_soon(listener, self)
        elif self._listeners is None:
            self._listeners = [listener]
        else:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Call[V]], object]) -> None:
        """Forget `listener` (every time it was added); nothing if it was not there."""
        if self._listeners is not None:
            self._listeners = [f for f in self._listeners if f != listener] or None

    def end(self, result: V | None, failure: BaseException | None) -> None:
        """Record the outcome and call the listeners; only the call's own flight does this.

        A listener that raises is reported to the loop's exception handler, as a done
        callback's failure is: it stops neither the flight nor the other listeners.
        """
        self._result = result
        self._failure = failure
        self.done = True
        listeners, self._listeners = self._listeners, None
        if listeners is None:
            return
        for listener in listeners:
            try:
                listener(self)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.task.get_loop().call_exception_handler(
                    {"message": f"Exception in a listener of {self!r}", "exception": exc}
                )


class SingleFlight(Generic[K, V]):
    """One in-flight call per key; callers share it and cannot cancel it."""

    __slots__ = ("_calls", "calls", "deduped")

    def __init__(self) -> None:
        self._calls: dict[K, Call[V]] = {}
        self.calls = 0  # start() calls
        self.deduped = 0  # of those, the ones that joined a running call

    def __contains__(self, key: K) -> bool:
        """True while a call for `key` is running (joining it would not start one)."""
        call = self._calls.get(key)
        return call is not None and not call.task.done()

    @property
    def in_flight(self) -> int:
        # A lazy call cancelled before its first step never ran, so it could not unfile
        # itself: not counted (and replaced by the next `start`).
        return sum(1 for call in self._calls.values() if not call.task.done())

    def start(
        self,
        key: K,
        fn: Callable[[*Ts], Coroutine[Any, Any, V]],
        *args: *Ts,
        eager: bool = True,
    ) -> Call[V]:
        """The running call for `key`, or a new one running `fn(*args)`; never a second one.

        A new call's task has run its first step when this returns (see the module's
        text): it has not ended yet, but its fetch may already be waiting for an answer. With
        `eager=False` it starts at the loop's next turn instead, for a background
        refresh that nobody waits for: the caller that started it goes on first.
        (Arguments rather than a `functools.partial`: one is made per upstream call,
        and it costs more than the rest of this method.)
        """
        self.calls += 1
        running = self._calls.get(key)
        if running is not None and not running.task.done():
            self.deduped += 1
            return running
        loop = _GET_RUNNING_LOOP()
        call: Call[V] = Call()
        first = FirstStep()
        run = _flight(self._calls, key, fn, args, first, call)
        context = _COPY_CONTEXT()
        call.task = _TASK(run, loop=loop, name=TASK_NAME, context=context)
        self._calls[key] = call
        if eager:
            first.take(loop, call.task, run, context)
        else:
            # Cancelled before its first step, its coroutine never runs to end the call.
            call.task.add_done_callback(partial(_never_ran, self._calls, key, call))
        return call

    def statistics(self) -> FlightStatistics:
        """A snapshot of the counters, for metrics."""
        return FlightStatistics(calls=self.calls, deduped=self.deduped, in_flight=self.in_flight)


async def _flight(
    calls: dict[K, Call[V]],
    key: K,
    fn: Callable[[*Ts], Coroutine[Any, Any, V]],
    args: tuple[*Ts],
    first: FirstStep,
    call: Call[V],
) -> V:
    """`fn(*args)`, as the coroutine of `call`'s task, `call` being filed under `key`.

    Calls fn inside the task, so even an exception raised before fn's first await
    becomes the shared outcome rather than escaping into whichever caller came first.
    """
    result: V | None = None
    failure: BaseException | None = None
    try:
        try:
            result = await fn(*args)
        except BaseException as exc:
            failure = exc
        if first.running:
            # fn ended without waiting once, during the first step `start` ran: the
            # task's own first step, already scheduled, must find this coroutine
            # unfinished, so it ends there, one turn later (see `eager`). Until then the
            # call stays in flight, for callers in this turn to join (an open breaker
            # fails a burst of them once).
            await NEXT_TURN
    finally:
        # The key is unfiled before anyone learns the outcome: while the call runs, no
        # `start` replaces it, so the entry is ours, and a listener that starts this key
        # again starts a new fetch, as in groupcache. (In a `finally` block: a
        # cancellation during that one turn still ends the call, with fn's outcome.)
        _unfile(calls, key, call)
        call.end(result, failure)
    if failure is None:
        return result  # type: ignore[return-value]  # fn's own value, None only if V allows it
    # Every waiter may have been cancelled (or there were none, for a background start):
    # the outcome is retrieved as the task ends, so that asyncio does not log "Task
    # exception was never retrieved" for a failure handled by design. Only a failure
    # needs it: a done callback on every task cost 1.9% of a cold answer's instructions.
    _retrieve_when_done(asyncio.current_task())
    try:
        raise failure
    finally:
        failure = None  # no cycle: the exception's traceback holds this frame


def _unfile(calls: dict[K, Call[V]], key: K, call: Call[V]) -> None:
    if calls.get(key) is call:
        del calls[key]


def _never_ran(calls: dict[K, Call[V]], key: K, call: Call[V], _task: asyncio.Task[V]) -> None:
    """A lazy call's task is done: if its coroutine never ran to end the call, the task
    was cancelled before its first step, and so is the call."""
    if call.done:
        return
    _unfile(calls, key, call)
    call.end(None, asyncio.CancelledError())


def _retrieve_when_done(task: asyncio.Task[Any] | None) -> None:
    # Not inline in `_flight`: a local there would keep the task alive from the traceback.
    if task is not None:
        task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
