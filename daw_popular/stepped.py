"""The coroutines whose first step is run by hand (`eager.FirstStep`): never compiled.

`eager.start` and `SingleFlight.start` run a new task's first step themselves (see
`eager`). A coroutine that ends within that step must not end before the task's own
scheduled step finds it: it waits one event-loop turn first (`NEXT_TURN`), suspended
inside a `finally` block with its result or its exception pending. Compiled by mypyc,
such a coroutine let the exception escape from the hand-run step instead of suspending
(mypyc's coroutines are not generators underneath), so this module stays interpreted
(setup.py) while the modules that start these coroutines are compiled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Hashable
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple

if TYPE_CHECKING:
    from .eager import FirstStep

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class _NextTurn:
    """`await NEXT_TURN` yields to the event loop once, as `asyncio.sleep(0)` does."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield


NEXT_TURN = _NextTurn()


async def eagerly(first: FirstStep, coro: Coroutine[Any, Any, T]) -> T:
    """`coro`, as the coroutine of a task `eager.start` made."""
    try:
        return await coro
    finally:
        if first.running:
            await NEXT_TURN


async def flight(
    tasks: dict[K, asyncio.Task[T]],
    key: K,
    fn: Callable[[*Ts], Coroutine[Any, Any, T]],
    args: tuple[*Ts],
    first: FirstStep,
) -> T:
    """`fn(*args)`, as the coroutine of the single-flight task filed under `key` in `tasks`.

    Calls fn inside the task, so even an exception raised before fn's first await
    becomes the shared outcome rather than escaping into whichever caller came first.
    """
    try:
        try:
            return await fn(*args)
        finally:
            if first.running:
                # fn ended without waiting once, during the first step `start` ran:
                # the task's own first step, already scheduled, must find this
                # coroutine unfinished, so it ends there, one turn later.
                await NEXT_TURN
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
        tasks.pop(key, None)


def _retrieve_when_done(task: asyncio.Task[Any] | None) -> None:
    # Not inline in `flight`: a local there would keep the task alive from the traceback.
    if task is not None:
        task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
