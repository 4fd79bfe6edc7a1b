"""Tests for request coalescing."""

from __future__ import annotations

import asyncio
import contextvars
import gc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from daw_popular.errors import UpstreamUnavailable
from daw_popular.singleflight import TASK_NAME, FlightStatistics, SingleFlight


class Gated:
    """A fetch function that counts its calls and waits for its gate to open."""

    def __init__(self, result: object = "value", error: BaseException | None = None) -> None:
        self.gate = asyncio.Event()
        self.calls = 0
        self.finished = 0
        self.result = result
        self.error = error

    async def __call__(self) -> object:
        self.calls += 1
        await self.gate.wait()
        self.finished += 1
        if self.error is not None:
            raise self.error
        return self.result


async def settle() -> None:
    """Let every task that is ready run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


async def do(
    flights: SingleFlight[str, object], key: str, fn: Callable[[], Awaitable[object]]
) -> object:
    """A caller as the loader is one: it joins the call and waits without cancelling it."""
    return await asyncio.shield(flights.start(key, fn).task)


def callers(
    flights: SingleFlight[str, object], fn: Callable[[], Awaitable[object]], n: int
) -> list[asyncio.Task[object]]:
    return [asyncio.create_task(do(flights, "k", fn)) for _ in range(n)]


async def test_concurrent_callers_share_one_call() -> None:
    """N callers behind a gate cause exactly one call and get the same object."""
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated(result=object())
    tasks = callers(flights, fn, 50)
    await settle()
    assert fn.calls == 1
    assert flights.statistics() == FlightStatistics(calls=50, deduped=49, in_flight=1)
    assert "k" in flights
    fn.gate.set()
    results = await asyncio.gather(*tasks)
    assert all(r is fn.result for r in results)
    assert fn.calls == 1
    assert flights.in_flight == 0 and "k" not in flights


async def test_a_flight_s_task_carries_its_name() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated(result=object())
    task = flights.start("k", fn).task
    assert task.get_name() == TASK_NAME
    fn.gate.set()
    assert await asyncio.shield(task) is fn.result


async def test_failure_is_shared_by_every_caller() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated(error=UpstreamUnavailable("connection refused"))
    tasks = callers(flights, fn, 10)
    await settle()
    fn.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is fn.error for r in results)
    assert fn.calls == 1


async def test_exception_before_the_first_await_is_shared_too() -> None:
    """fn runs inside the task, so even a synchronous raise reaches every caller alike."""
    flights: SingleFlight[str, object] = SingleFlight()
    error = ValueError("bad key")
    calls = 0

    def fn() -> Awaitable[object]:
        nonlocal calls
        calls += 1
        raise error

    results = await asyncio.gather(*callers(flights, fn, 3), return_exceptions=True)
    assert results == [error] * 3 and calls == 1


async def test_cancelled_waiters_never_cancel_the_fetch() -> None:
    """Cancelling the first caller and another waiter leaves the fetch running for the rest."""
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    tasks = callers(flights, fn, 5)
    await settle()
    tasks[0].cancel()
    tasks[3].cancel()
    await settle()
    assert tasks[0].cancelled() and tasks[3].cancelled()
    assert "k" in flights
    fn.gate.set()
    results = await asyncio.gather(tasks[1], tasks[2], tasks[4])
    assert list(results) == ["value"] * 3
    assert fn.calls == 1 and fn.finished == 1


async def test_fetch_completes_when_every_waiter_is_gone() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    tasks = callers(flights, fn, 3)
    await settle()
    for task in tasks:
        task.cancel()
    await settle()
    fn.gate.set()
    await settle()
    assert fn.finished == 1 and flights.in_flight == 0


async def test_a_call_after_completion_fetches_again() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    fn.gate.set()
    assert await do(flights, "k", fn) == "value"
    assert await do(flights, "k", fn) == "value"
    assert fn.calls == 2
    assert flights.statistics() == FlightStatistics(calls=2, deduped=0, in_flight=0)


async def test_keys_are_independent() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    one = asyncio.create_task(do(flights, "a", fn))
    two = asyncio.create_task(do(flights, "b", fn))
    await settle()
    assert fn.calls == 2 and flights.in_flight == 2
    fn.gate.set()
    assert list(await asyncio.gather(one, two)) == ["value", "value"]


async def test_start_never_starts_a_second_task() -> None:
    """A background start and a later do() share the one task."""
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    task = flights.start("k", fn).task
    assert flights.start("k", fn).task is task
    waiter = asyncio.create_task(do(flights, "k", fn))
    await settle()
    fn.gate.set()
    assert await waiter == "value" and await task == "value"
    assert fn.calls == 1 and flights.deduped == 2


async def test_a_task_unfiles_its_key_as_it_ends() -> None:
    """A caller that runs right after a task's end, before its done callbacks, starts a
    new task, and nothing of the old one unfiles the new one."""
    flights: SingleFlight[str, object] = SingleFlight()
    first, second = Gated(), Gated()
    old = flights.start("k", first).task
    await settle()
    first.gate.set()
    await asyncio.sleep(0)  # `old` resumes and returns; its done callbacks are queued after us
    assert old.done()
    assert flights.in_flight == 0 and "k" not in flights
    new = flights.start("k", second).task
    assert new is not old
    await settle()  # the old task's done callbacks run now
    assert flights.start("k", Gated()).task is new
    assert second.calls == 1 and flights.in_flight == 1
    second.gate.set()
    assert await new == "value"
    assert flights.in_flight == 0


async def test_start_passes_its_arguments() -> None:
    flights: SingleFlight[str, object] = SingleFlight()

    async def join(*parts: str) -> str:
        return "-".join(parts)

    assert await flights.start("k", join, "a", "b").task == "a-b"
    assert await flights.start("k", join).task == ""


async def test_a_task_cancelled_before_its_scheduled_step_cancels_its_fetch() -> None:
    """The fetch began in `start`; a cancellation before the task's own first step is
    thrown into the fetch where it waits, so its cleanup runs and its key is freed."""
    flights: SingleFlight[str, object] = SingleFlight()
    gate = asyncio.Event()
    seen: list[str] = []

    async def fetch() -> object:
        seen.append("sent")
        try:
            await gate.wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "value"

    task = flights.start("k", fetch).task
    assert seen == ["sent"]
    task.cancel()
    await settle()
    assert task.cancelled() and seen == ["sent", "cancelled"]
    assert flights.in_flight == 0 and "k" not in flights
    gate.set()
    assert await flights.start("k", fetch).task == "value"


async def test_start_runs_the_first_step_at_once_as_the_new_task() -> None:
    """`start` returns with the fetch waiting on its first await (its request sent),
    having run as the new task; the caller is the current task again afterwards."""
    flights: SingleFlight[str, object] = SingleFlight()
    seen: list[asyncio.Task[Any] | None] = []
    gate = asyncio.get_running_loop().create_future()

    async def fetch() -> object:
        seen.append(asyncio.current_task())
        value = await gate
        seen.append(asyncio.current_task())
        return value

    caller = asyncio.current_task()
    task = flights.start("k", fetch).task
    assert seen == [task] and asyncio.current_task() is caller
    assert not task.done() and "k" in flights
    gate.set_result("value")
    assert await task == "value"
    assert seen == [task, task]


TRACE: contextvars.ContextVar[str] = contextvars.ContextVar("TRACE", default="caller's")


async def test_the_first_step_runs_in_the_new_task_s_context() -> None:
    """A context variable the fetch sets before its first wait is the fetch's own: the
    caller never sees it, the fetch's later steps do."""
    flights: SingleFlight[str, object] = SingleFlight()
    gate = asyncio.get_running_loop().create_future()

    async def fetch() -> object:
        TRACE.set("the fetch's")
        await gate
        return TRACE.get()

    task = flights.start("k", fetch).task
    assert TRACE.get() == "caller's"
    gate.set_result(None)
    assert await task == "the fetch's"
    assert TRACE.get() == "caller's"


async def test_a_timeout_scope_in_the_first_step_belongs_to_the_new_task() -> None:
    """An `asyncio.timeout` entered in the first step cancels the fetch, not the caller."""
    flights: SingleFlight[str, object] = SingleFlight()

    async def slow() -> object:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)
        return "never"

    task = flights.start("k", slow).task
    with pytest.raises(TimeoutError):
        await asyncio.shield(task)
    assert asyncio.current_task() is not None and not asyncio.current_task().cancelling()


async def test_a_start_that_is_not_eager_runs_at_the_next_turn() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    seen: list[asyncio.Task[Any] | None] = []

    async def fetch() -> object:
        seen.append(asyncio.current_task())
        return "value"

    task = flights.start("k", fetch, eager=False).task
    assert seen == [] and "k" in flights and flights.start("k", fetch).task is task
    assert await task == "value"
    assert seen == [task] and "k" not in flights


async def test_a_lazy_start_cancelled_before_it_ran_is_not_in_flight() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    task = flights.start("k", fn, eager=False).task
    task.cancel()  # before its first step: its coroutine never runs
    await settle()
    assert task.cancelled() and fn.calls == 0
    assert flights.in_flight == 0 and "k" not in flights
    fn.gate.set()
    assert await flights.start("k", fn).task == "value"


async def test_a_future_done_before_the_scheduled_step_is_read_by_it() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    gate = asyncio.get_running_loop().create_future()

    async def fetch() -> object:
        return await gate

    task = flights.start("k", fetch).task
    gate.set_result("early")
    assert await task == "early"


@pytest.mark.parametrize("error", [None, UpstreamUnavailable("refused at once")])
async def test_a_fetch_that_never_waits_ends_its_task_one_turn_later(
    error: BaseException | None,
) -> None:
    """A fetch may end in its first step (a breaker that is open raises at once): its
    task is not done when `start` returns, and then ends with that outcome."""
    flights: SingleFlight[str, object] = SingleFlight()

    async def at_once() -> object:
        if error is not None:
            raise error
        return "value"

    task = flights.start("k", at_once).task
    assert not task.done() and "k" in flights
    if error is None:
        assert await asyncio.shield(task) == "value"
    else:
        with pytest.raises(UpstreamUnavailable):
            await asyncio.shield(task)
    assert flights.in_flight == 0 and "k" not in flights


async def test_start_from_a_loop_callback_outside_any_task() -> None:
    """The server starts flights from a protocol callback, where no task is current."""
    flights: SingleFlight[str, object] = SingleFlight()
    loop = asyncio.get_running_loop()
    started: asyncio.Future[asyncio.Task[object]] = loop.create_future()
    current: list[asyncio.Task[Any] | None] = []

    async def fetch() -> object:
        await asyncio.sleep(0)
        return "value"

    def callback() -> None:
        task = flights.start("k", fetch).task
        current.append(asyncio.current_task(loop))
        started.set_result(task)

    loop.call_soon(callback)
    task = await started
    assert current == [None]
    assert await task == "value"


@pytest.mark.parametrize("waits", [False, True], ids=["fails-at-once", "fails-after-waiting"])
@pytest.mark.parametrize("eager", [True, False], ids=["eager", "lazy"])
async def test_unretrieved_failure_of_a_background_start_is_not_logged(
    waits: bool, eager: bool
) -> None:
    """Nobody awaits a failed background start; asyncio must not call it unretrieved."""
    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    flights: SingleFlight[str, object] = SingleFlight()
    gate = asyncio.Event()
    if not waits:
        gate.set()

    async def fn() -> object:
        await gate.wait()
        # Raised afresh, held by nothing in the test: the task must be collectable.
        raise UpstreamUnavailable("reset")

    task = flights.start("k", fn, eager=eager).task
    await settle()
    gate.set()
    await settle()
    assert task.done() and flights.in_flight == 0
    del task
    gc.collect()
    await settle()
    assert reports == []


async def test_cancelled_task_cancels_its_waiters_only() -> None:
    """If the shared task itself is cancelled (shutdown), waiters see CancelledError."""
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    task = flights.start("k", fn).task
    waiter = asyncio.create_task(do(flights, "k", fn))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert flights.in_flight == 0


# Call: the outcome, and listeners called as fn ends


async def test_listeners_are_called_as_fn_ends_inside_the_task_s_last_step() -> None:
    """In the order they were added, with the outcome readable, the key already free,
    and the task not yet done: no event-loop turn between fn's end and theirs."""
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated(result="value")
    call = flights.start("k", fn)
    seen: list[tuple[str, object, bool, bool]] = []
    call.add_listener(lambda c: seen.append(("one", c.result(), "k" in flights, c.task.done())))
    call.add_listener(lambda c: seen.append(("two", c.result(), "k" in flights, c.task.done())))
    assert not call.done
    with pytest.raises(asyncio.InvalidStateError):
        call.result()
    fn.gate.set()
    await asyncio.sleep(0)  # fn resumes and ends
    assert seen == [("one", "value", False, False), ("two", "value", False, False)]
    assert call.done and call.task.done() and call.exception() is None


async def test_a_listener_added_after_the_end_is_called_at_the_next_turn() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    fn.gate.set()
    call = flights.start("k", fn)
    await asyncio.shield(call.task)
    seen: list[object] = []
    call.add_listener(lambda c: seen.append(c.result()))
    assert seen == []
    await asyncio.sleep(0)
    assert seen == ["value"]


async def test_a_failing_listener_is_reported_and_stops_nothing() -> None:
    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    call = flights.start("k", fn)
    seen: list[object] = []
    error = RuntimeError("a listener's bug")

    def broken(_call: object) -> None:
        raise error

    call.add_listener(broken)
    call.add_listener(lambda c: seen.append(c.result()))
    fn.gate.set()
    assert await asyncio.shield(call.task) == "value"
    assert seen == ["value"]
    assert [r["exception"] for r in reports] == [error]


async def test_a_removed_listener_is_not_called() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    call = flights.start("k", fn)
    seen: list[str] = []

    def one(_call: object) -> None:
        seen.append("one")

    call.add_listener(one)
    call.add_listener(lambda _c: seen.append("two"))
    call.add_listener(one)
    call.remove_listener(one)
    call.remove_listener(one)  # gone already: nothing happens
    fn.gate.set()
    await asyncio.shield(call.task)
    assert seen == ["two"]


async def test_a_failure_is_the_call_s_outcome_for_every_reader() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated(error=UpstreamUnavailable("reset"))
    call = flights.start("k", fn)
    fn.gate.set()
    with pytest.raises(UpstreamUnavailable):
        await asyncio.shield(call.task)
    assert call.exception() is fn.error and not call.cancelled()
    with pytest.raises(UpstreamUnavailable) as raised:
        call.result()
    assert raised.value is fn.error


async def test_a_cancelled_call_is_cancelled_for_its_listeners() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    call = flights.start("k", Gated())
    seen: list[bool] = []
    call.add_listener(lambda c: seen.append(c.cancelled()))
    call.task.cancel()
    await settle()
    assert seen == [True] and call.cancelled()
    with pytest.raises(asyncio.CancelledError):
        call.exception()
    with pytest.raises(asyncio.CancelledError):
        call.result()


async def test_a_lazy_call_cancelled_before_it_ran_ends_cancelled_for_its_listeners() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    fn = Gated()
    call = flights.start("k", fn, eager=False)
    seen: list[bool] = []
    call.add_listener(lambda c: seen.append(c.cancelled()))
    call.task.cancel()
    await settle()
    assert fn.calls == 0 and seen == [True] and call.done and "k" not in flights


@pytest.mark.parametrize("cancelled", [False, True], ids=["ends", "cancelled-in-that-turn"])
async def test_a_call_that_ends_in_its_first_step_ends_at_the_next_turn(cancelled: bool) -> None:
    """Until then it is in flight: callers in that turn join it (an open breaker fails a
    burst of them once), and no listener is called before `start` has returned. A
    cancellation in that turn still ends the call with fn's outcome."""
    flights: SingleFlight[str, object] = SingleFlight()
    runs = 0

    async def refused() -> object:
        nonlocal runs
        runs += 1
        raise UpstreamUnavailable("breaker open")

    call = flights.start("k", refused)
    assert not call.done and "k" in flights
    assert flights.start("k", refused) is call and runs == 1
    seen: list[BaseException | None] = []
    call.add_listener(lambda c: seen.append(c.exception()))
    if cancelled:
        call.task.cancel()
    await settle()
    assert call.done and call.task.done() and "k" not in flights
    assert len(seen) == 1 and isinstance(seen[0], UpstreamUnavailable)
    assert call.task.cancelled() is cancelled


async def test_a_listener_that_starts_the_key_again_starts_a_new_call() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    first, second = Gated(), Gated()
    call = flights.start("k", first)
    again: list[object] = []
    call.add_listener(lambda _c: again.append(flights.start("k", second)))
    first.gate.set()
    await asyncio.shield(call.task)
    (new,) = again
    assert new is not call and second.calls == 1 and "k" in flights
    second.gate.set()
    await settle()
    assert "k" not in flights
