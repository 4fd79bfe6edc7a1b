"""Eager tasks on Python 3.11: a task's first step runs inside the call that starts it.

Python 3.12 has this built in (``eager_start``); here it is done by hand. An eager task
does its first piece of work (sends its request, creates its transport) before the call
that started it returns, not at the event loop's next turn. Under load a turn is long:
at ten concurrent cold answers each turn cost a cold answer 0.13 to 0.24 ms, and while
10,000 busy connections are served one turn can take a second (libuv polls up to 48
times per turn before it runs the ready callbacks).

How: the task is created first, so its own first step is already scheduled. `FirstStep`
then runs the coroutine up to its first wait, with the task as the current task (what
``asyncio.timeout`` and ``current_task()`` inside it expect) and in the task's context (a
context variable it sets stays its own), and hands the future it waits for back to the
task. The scheduled step then resumes the coroutine, which yields that future again, now
to the task (a pending asyncio future yields itself again once its
``_asyncio_future_blocking`` flag is cleared), and the task waits for it as usual; a
cancellation arriving before that step is thrown into the coroutine where it waits, as
any other. A coroutine that ends within its first step must not end before the task's
own step finds it: the wrapper around it (`start`'s `eagerly`, or SingleFlight's) then
waits one turn (`NEXT_TURN`) before it returns or raises. It waits after its `try`
statement, not inside an `except` or `finally` block: compiled by mypyc, a coroutine
suspended there let the exception escape the hand-run step instead of suspending, and
left it set as the one being handled meanwhile (tests/test_build.py checks each
compiled module).
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Coroutine, Generator
from typing import Any, Final, TypeVar

# Final names for imported functions: compiled, each is then a C static, where an
# imported name is looked up in the module's dict at every call (four per flight).
_ENTER_TASK: Final = _enter_task
_LEAVE_TASK: Final = _leave_task

T = TypeVar("T")


# `asyncio.current_task` is a Python function on 3.11: the dict it reads (the C module's,
# which `_enter_task` fills) is read directly where a Python keeps one (typeshed does not
# declare it).
_CURRENT_TASKS: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = getattr(
    asyncio.tasks, "_current_tasks", None
)


def _current_task(
    loop: asyncio.AbstractEventLoop,
    tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = _CURRENT_TASKS,
) -> asyncio.Task[Any] | None:
    if tasks is not None:
        return tasks.get(loop)
    return asyncio.current_task(loop)


class FirstStep:
    """Runs a task's first step by hand (see the module's text); `running` during it."""

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
        caller = _current_task(loop)
        if caller is not None:
            _LEAVE_TASK(loop, caller)
        _ENTER_TASK(loop, task)
        self.running = True
        try:
            waited = context.run(run.send, None)
        finally:
            self.running = False
            _LEAVE_TASK(loop, task)
            if caller is not None:
                _ENTER_TASK(loop, caller)
        if getattr(waited, "_asyncio_future_blocking", False):
            waited._asyncio_future_blocking = False


class _NextTurn:
    """`await NEXT_TURN` yields to the event loop once, as `asyncio.sleep(0)` does."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield


NEXT_TURN: Final = _NextTurn()


async def eagerly(first: FirstStep, coro: Coroutine[Any, Any, T]) -> T:
    """`coro`, as the coroutine of a task `start` made."""
    failure: BaseException | None = None
    try:
        try:
            result = await coro
        except BaseException as exc:
            failure = exc
        if first.running:  # coro ended within the first step: see the module's text
            await NEXT_TURN
        if failure is not None:
            raise failure
        return result
    finally:
        failure = None  # no cycle: the exception's traceback holds this frame


def start(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], *, name: str = "eager"
) -> asyncio.Task[T]:
    """A task running `coro` whose first step has run when this returns.

    The task is named as it is made (an unnamed task formats "Task-<n>" first), so a
    loop's task factory is not used.
    """
    first = FirstStep()
    run = eagerly(first, coro)
    context = contextvars.copy_context()
    task = asyncio.Task(run, loop=loop, name=name, context=context)
    first.take(loop, task, run, context)
    return task
