"""Eager tasks: the first step runs inside `start`, as the task, in the task's context."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from daw_popular import eager

TRACE: contextvars.ContextVar[str] = contextvars.ContextVar("TRACE", default="caller's")


async def test_the_first_step_runs_before_start_returns_as_the_task() -> None:
    steps: list[str] = []
    seen: list[asyncio.Task[object] | None] = []
    gate = asyncio.get_running_loop().create_future()

    async def work() -> str:
        steps.append("first")
        seen.append(asyncio.current_task())
        TRACE.set("the task's")
        await gate
        steps.append("second")
        return TRACE.get()

    caller = asyncio.current_task()
    task = eager.start(asyncio.get_running_loop(), work())
    assert steps == ["first"] and seen == [task]
    assert asyncio.current_task() is caller, "the caller is current again"
    assert TRACE.get() == "caller's", "what the first step set stays the task's"
    gate.set_result(None)
    assert await task == "the task's" and steps == ["first", "second"]


async def test_a_coroutine_that_never_waits_ends_at_the_next_turn() -> None:
    async def at_once() -> int:
        return 7

    task = eager.start(asyncio.get_running_loop(), at_once())
    assert not task.done()
    assert await task == 7


async def test_a_task_is_named_as_it_is_made() -> None:
    async def idle() -> None:
        return None

    loop = asyncio.get_running_loop()
    assert eager.start(loop, idle()).get_name() == "eager"
    named = eager.start(loop, idle(), name="connection set-up")
    assert named.get_name() == "connection set-up"
    await named


async def test_a_failure_in_the_first_step_is_the_task_s() -> None:
    async def broken() -> None:
        raise LookupError("no such thing")

    task = eager.start(asyncio.get_running_loop(), broken())
    with pytest.raises(LookupError, match="no such thing"):
        await task


async def test_a_cancellation_before_the_scheduled_step_reaches_the_wait() -> None:
    reached: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            reached.append("cancelled where it waited")
            raise

    task = eager.start(asyncio.get_running_loop(), waits())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reached == ["cancelled where it waited"]


def test_a_start_from_a_loop_callback_with_no_current_task() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[asyncio.Task[str]] = loop.create_future()

        async def work() -> str:
            await asyncio.sleep(0)
            return "from a callback"

        loop.call_soon(lambda: done.set_result(eager.start(loop, work())))
        task = await done
        return [await task]

    assert asyncio.run(main()) == ["from a callback"]


async def test_the_current_task_is_read_as_asyncio_reads_it() -> None:
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None
    assert eager._current_task(loop) is current
    assert eager._current_task(loop, None) is current  # a Python without the dict
    other = asyncio.new_event_loop()
    try:
        assert eager._current_task(other) is None
    finally:
        other.close()
