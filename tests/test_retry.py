"""Tests for full-jitter backoff, the retry budget and the bounded retry loop."""

from __future__ import annotations

import asyncio
import random

import pytest
import uvloop
from hypothesis import given
from hypothesis import strategies as st

from daw_popular.errors import DeadlineExceeded, UpstreamTimeout, UpstreamUnavailable
from daw_popular.retry import BudgetStatistics, RetryBudget, call_with_retries, full_jitter


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Highest(random.Random):
    """Always draws the top of the range, to read the backoff ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


# full_jitter


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (50, 1.0)]
)
def test_full_jitter_ceiling_doubles_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert full_jitter(attempt, 0.1, 1.0, Highest()) == pytest.approx(ceiling)


@given(
    st.integers(0, 10_000),
    st.floats(0, 10, allow_nan=False),
    st.floats(0, 60, allow_nan=False),
    st.integers(0, 2**32),
)
def test_full_jitter_is_within_zero_and_the_ceiling(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    delay = full_jitter(attempt, base, cap, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(attempt, 64))
    assert delay <= cap


def test_full_jitter_spreads_over_the_whole_range() -> None:
    """Full jitter, not 'equal jitter': small delays are as likely as large ones."""
    rng = random.Random(7)
    delays = [full_jitter(3, 0.1, 10.0, rng) for _ in range(2000)]
    assert min(delays) < 0.05
    assert max(delays) > 0.75
    assert 0.35 < sum(delays) / len(delays) < 0.45


def test_full_jitter_refuses_negative_input() -> None:
    with pytest.raises(ValueError, match="negative"):
        full_jitter(-1, 0.1, 1.0, random.Random())


# RetryBudget


def test_budget_reserve_allows_min_retries_per_second_without_traffic() -> None:
    clock = Clock()
    budget = RetryBudget(ttl=10.0, min_retries_per_sec=1.0, percent_can_retry=0.2, clock=clock)
    assert budget.balance() == 10
    assert all(budget.try_withdraw() for _ in range(10))
    assert not budget.try_withdraw()
    clock.now += 10.0
    assert budget.try_withdraw()


def test_budget_ratio_bounds_retries_by_requests() -> None:
    clock = Clock()
    budget = RetryBudget(min_retries_per_sec=0.0, percent_can_retry=0.2, clock=clock)
    assert not budget.try_withdraw()
    for _ in range(100):
        budget.deposit()
    assert budget.balance() == 20
    assert sum(budget.try_withdraw() for _ in range(50)) == 20


def test_budget_deposits_expire_after_ttl() -> None:
    """Yesterday's traffic must not fund today's retry storm."""
    clock = Clock()
    budget = RetryBudget(ttl=10.0, min_retries_per_sec=0.0, percent_can_retry=0.5, clock=clock)
    for _ in range(10):
        budget.deposit()
    clock.now += 5.0
    assert budget.balance() == 5
    clock.now += 5.0
    assert budget.balance() == 0
    assert not budget.try_withdraw()


def test_budget_zero_ratio_and_zero_floor_never_retries() -> None:
    budget = RetryBudget(min_retries_per_sec=0.0, percent_can_retry=0.0, clock=Clock())
    for _ in range(1000):
        budget.deposit()
    assert not budget.try_withdraw()


def test_budget_statistics() -> None:
    budget = RetryBudget(min_retries_per_sec=0.0, percent_can_retry=0.5, clock=Clock())
    for _ in range(4):
        budget.deposit()
    results = [budget.try_withdraw() for _ in range(3)]
    assert results == [True, True, False]
    assert budget.statistics() == BudgetStatistics(balance=0, deposits=4, withdrawals=2, refused=1)


def test_budget_refuses_bad_configuration() -> None:
    with pytest.raises(ValueError, match="ttl"):
        RetryBudget(ttl=0.0)
    with pytest.raises(ValueError, match="negative"):
        RetryBudget(percent_can_retry=-0.1)


@given(
    st.lists(st.sampled_from(["deposit", "withdraw", "withdraw", "tick"]), max_size=300),
    st.sampled_from([0.1, 0.2, 0.5, 1.0]),
    st.integers(0, 3),
)
def test_budget_bound_over_the_last_ttl(ops: list[str], ratio: float, floor: int) -> None:
    """Retries within the last ttl <= floor * ttl + ratio * requests within the last ttl."""
    ttl = 10
    clock = Clock()
    budget = RetryBudget(
        ttl=ttl, min_retries_per_sec=floor, percent_can_retry=ratio, slots=ttl, clock=clock
    )
    second = 0
    deposits: list[int] = []
    withdrawals: list[int] = []
    for op in ops:
        if op == "tick":
            clock.now += 1.0
            second += 1
        elif op == "deposit":
            budget.deposit()
            deposits.append(second)
        elif budget.try_withdraw():
            withdrawals.append(second)
            recent_withdrawals = sum(second - ttl < when for when in withdrawals)
            recent_deposits = sum(second - ttl < when for when in deposits)
            assert recent_withdrawals <= floor * ttl + ratio * recent_deposits + 1e-9
    # and the budget is not stingier than that: with no time passing it is spent exactly
    while budget.try_withdraw():
        withdrawals.append(second)
    recent_withdrawals = sum(second - ttl < when for when in withdrawals)
    recent_deposits = sum(second - ttl < when for when in deposits)
    assert recent_withdrawals + 1 > floor * ttl + ratio * recent_deposits - 1e-9


@given(st.lists(st.booleans(), max_size=200), st.sampled_from([0.1, 0.2, 0.5]))
def test_budget_without_time_passing(ops: list[bool], ratio: float) -> None:
    """Without expiry the bound is exact: retries <= floor * ttl + ratio * requests."""
    budget = RetryBudget(ttl=10.0, min_retries_per_sec=1.0, percent_can_retry=ratio, clock=Clock())
    deposits = withdrawals = 0
    for is_deposit in ops:
        if is_deposit:
            budget.deposit()
            deposits += 1
        elif budget.try_withdraw():
            withdrawals += 1
        assert withdrawals <= 10 + int(ratio * deposits + 1e-9)


# call_with_retries


def ample_budget() -> RetryBudget:
    return RetryBudget(min_retries_per_sec=1000.0)


class Flaky:
    """An upstream call that fails a given number of times, then answers."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or UpstreamUnavailable("connection reset")
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "answer"


def deadline_in(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_success_needs_one_call() -> None:
    fn = Flaky(0)
    result = await call_with_retries(
        fn, retries=3, budget=ample_budget(), deadline=deadline_in(5), retry_on=(Exception,)
    )
    assert (result, fn.calls) == ("answer", 1)


async def test_retries_until_success() -> None:
    fn = Flaky(2)
    result = await call_with_retries(
        fn,
        retries=3,
        budget=ample_budget(),
        deadline=deadline_in(5),
        retry_on=(UpstreamUnavailable,),
        base=0.001,
    )
    assert (result, fn.calls) == ("answer", 3)


async def test_never_more_than_one_plus_retries_calls() -> None:
    fn = Flaky(100)
    with pytest.raises(UpstreamUnavailable):
        await call_with_retries(
            fn,
            retries=2,
            budget=ample_budget(),
            deadline=deadline_in(5),
            retry_on=(UpstreamUnavailable,),
            base=0.001,
        )
    assert fn.calls == 3


async def test_other_errors_are_not_retried() -> None:
    fn = Flaky(1, UpstreamTimeout("slow"))
    with pytest.raises(UpstreamTimeout):
        await call_with_retries(
            fn,
            retries=3,
            budget=ample_budget(),
            deadline=deadline_in(5),
            retry_on=(UpstreamUnavailable,),
        )
    assert fn.calls == 1


async def test_an_empty_budget_stops_retries() -> None:
    budget = RetryBudget(min_retries_per_sec=0.0, percent_can_retry=0.5)
    first, second = Flaky(100), Flaky(100)
    for fn in (first, second):
        with pytest.raises(UpstreamUnavailable):
            await call_with_retries(
                fn,
                retries=5,
                budget=budget,
                deadline=deadline_in(5),
                retry_on=(UpstreamUnavailable,),
                base=0.0,
            )
    # two requests at ratio 0.5 fund exactly one retry between them
    assert first.calls + second.calls == 3


async def test_past_deadline_makes_no_call() -> None:
    fn = Flaky(0)
    with pytest.raises(DeadlineExceeded):
        await call_with_retries(
            fn, retries=3, budget=ample_budget(), deadline=deadline_in(0), retry_on=(Exception,)
        )
    assert fn.calls == 0


async def test_no_backoff_sleeps_past_the_deadline() -> None:
    """With 0.5 s left and a backoff of 1 s, the failure comes back at once (sleeping
    until the deadline instead would take the 0.5 s)."""
    fn = Flaky(100)
    start = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamUnavailable):
        await call_with_retries(
            fn,
            retries=3,
            budget=ample_budget(),
            deadline=deadline_in(0.5),
            retry_on=(UpstreamUnavailable,),
            base=1.0,
            cap=1.0,
            rng=Highest(),
        )
    assert fn.calls == 1
    assert asyncio.get_running_loop().time() - start < 0.25


async def test_cancellation_is_never_retried() -> None:
    fn = Flaky(1, asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await call_with_retries(
            fn,
            retries=3,
            budget=ample_budget(),
            deadline=deadline_in(5),
            retry_on=(BaseException,),
        )
    assert fn.calls == 1


async def test_backoff_grows_with_full_jitter() -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    await call_with_retries(
        Flaky(3),
        retries=3,
        budget=ample_budget(),
        deadline=deadline_in(5),
        retry_on=(UpstreamUnavailable,),
        base=0.1,
        cap=0.3,
        rng=Highest(),
        sleep=sleep,
    )
    assert slept == pytest.approx([0.1, 0.2, 0.3])


UVLOOP_TICK = 0.001


@given(
    retries=st.integers(0, 6),
    failures=st.integers(0, 10),
    seconds_left=st.floats(0.001, 2.0),
    floor=st.integers(0, 2),
    seed=st.integers(0, 2**32),
)
def test_bounds_hold_for_any_schedule(
    retries: int, failures: int, seconds_left: float, floor: int, seed: int
) -> None:
    """Calls <= 1 + retries, retries <= budget, and every sleep ends before the deadline."""
    clock = Clock()
    budget = RetryBudget(min_retries_per_sec=floor / 10, percent_can_retry=0.2, clock=clock)
    allowed = budget.balance() + 1
    sleeps: list[tuple[float, float]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds_left

        async def sleep(delay: float) -> None:
            sleeps.append((loop.time() + delay, deadline))

        fn = Flaky(failures)
        try:
            await call_with_retries(
                fn,
                retries=retries,
                budget=budget,
                deadline=deadline,
                retry_on=(UpstreamUnavailable,),
                base=0.1,
                cap=1.0,
                rng=random.Random(seed),
                sleep=sleep,
            )
        except DeadlineExceeded:
            assert fn.calls == 0
        except UpstreamUnavailable:
            assert fn.calls <= failures
        else:
            assert fn.calls == failures + 1
        assert fn.calls <= 1 + retries
        assert fn.calls - 1 <= allowed
        assert len(sleeps) == max(0, fn.calls - 1)  # no call at all: no sleep either

    uvloop.run(scenario())
    # The fake sleep reads the clock again after `call_with_retries` did; uvloop's
    # clock ticks in whole milliseconds, so that second reading may be one tick on.
    for ends, deadline in sleeps:
        assert ends < deadline + UVLOOP_TICK
