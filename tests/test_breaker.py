"""Tests for the upstream circuit breaker, on a hand-driven clock."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daw_popular.breaker import BreakerStatistics, CircuitBreaker, State
from daw_popular.errors import CircuitOpen, Overloaded, UpstreamError, UpstreamTimeout
from daw_popular.resilience import GuardedUpstream
from daw_popular.retry import RetryBudget
from daw_popular.upstream import UpstreamResponse


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(threshold: int = 3, reset: float = 5.0) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(
        "daw", failure_threshold=threshold, reset_timeout=reset, clock=clock
    ), clock


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record_failure(breaker.before_call())


def open_breaker(breaker: CircuitBreaker) -> None:
    fail(breaker, breaker.failure_threshold)
    assert breaker.state is State.OPEN


def test_starts_closed_and_admits() -> None:
    breaker, _ = make()
    assert breaker.state is State.CLOSED
    breaker.record_success(breaker.before_call())
    assert breaker.state is State.CLOSED


def test_opens_after_n_consecutive_failures() -> None:
    breaker, _ = make(threshold=3)
    fail(breaker, 2)
    assert breaker.state is State.CLOSED
    fail(breaker)
    assert breaker.state is State.OPEN


def test_a_success_resets_the_streak() -> None:
    breaker, _ = make(threshold=3)
    fail(breaker, 2)
    breaker.record_success(breaker.before_call())
    fail(breaker, 2)
    assert breaker.state is State.CLOSED


def test_open_fails_fast_with_retry_after() -> None:
    breaker, clock = make(reset=5.0)
    open_breaker(breaker)
    clock.now += 2.0
    with pytest.raises(CircuitOpen) as info:
        breaker.before_call()
    assert info.value.retry_after == pytest.approx(3.0)
    assert info.value.status == 503
    assert "daw" in info.value.message
    assert isinstance(info.value, UpstreamError)


def test_half_opens_after_the_interval_and_lets_exactly_one_probe_through() -> None:
    breaker, clock = make(reset=5.0)
    open_breaker(breaker)
    clock.now += 4.999
    assert breaker.state is State.OPEN
    clock.now += 0.001
    assert breaker.state is State.HALF_OPEN
    probe = breaker.before_call()
    for _ in range(3):
        with pytest.raises(CircuitOpen):
            breaker.before_call()
    assert breaker.statistics().probe_in_flight
    breaker.record_success(probe)
    assert breaker.state is State.CLOSED
    breaker.before_call()


def test_probe_failure_reopens_for_a_full_interval() -> None:
    breaker, clock = make(reset=5.0)
    open_breaker(breaker)
    clock.now += 5.0
    probe = breaker.before_call()
    clock.now += 1.0
    breaker.record_failure(probe)
    assert breaker.state is State.OPEN
    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 0.1
    breaker.before_call()
    assert breaker.statistics().times_opened == 2


def test_closing_forgets_the_failures() -> None:
    """After recovery it takes a full new streak to open again."""
    breaker, clock = make(threshold=3)
    open_breaker(breaker)
    clock.now += 5.0
    breaker.record_success(breaker.before_call())
    fail(breaker, 2)
    assert breaker.state is State.CLOSED


def test_late_success_from_before_opening_does_not_close() -> None:
    """A slow call admitted while closed says nothing about the upstream now."""
    breaker, _ = make(threshold=2)
    slow = breaker.before_call()
    open_breaker(breaker)
    breaker.record_success(slow)
    assert breaker.state is State.OPEN


def test_late_success_during_a_probe_is_not_the_probes_verdict() -> None:
    """Only the probe may close a half-open breaker; the probe's failure still reopens it."""
    breaker, clock = make(threshold=2)
    slow = breaker.before_call()
    open_breaker(breaker)
    clock.now += 5.0
    probe = breaker.before_call()
    breaker.record_success(slow)
    assert breaker.statistics().probe_in_flight
    breaker.record_failure(probe)
    assert breaker.state is State.OPEN


def test_late_failure_does_not_reopen_a_recovered_breaker() -> None:
    breaker, clock = make(threshold=2)
    slow = breaker.before_call()
    open_breaker(breaker)
    clock.now += 5.0
    breaker.record_success(breaker.before_call())
    breaker.record_failure(slow)
    breaker.record_failure(slow)
    assert breaker.state is State.CLOSED
    assert breaker.statistics().consecutive_failures == 0


def test_released_probe_lets_the_next_caller_probe() -> None:
    """A cancelled probe is no verdict; the breaker must not wait on it."""
    breaker, clock = make()
    open_breaker(breaker)
    clock.now += 5.0
    probe = breaker.before_call()
    breaker.release(probe)
    assert breaker.state is State.HALF_OPEN
    breaker.record_success(breaker.before_call())
    assert breaker.state is State.CLOSED


def test_a_lost_probe_is_replaced_after_an_interval() -> None:
    """A probe that never reports must not keep the breaker shut forever."""
    breaker, clock = make(reset=5.0)
    open_breaker(breaker)
    clock.now += 5.0
    breaker.before_call()
    clock.now += 4.0
    with pytest.raises(CircuitOpen) as info:
        breaker.before_call()
    assert info.value.retry_after == pytest.approx(1.0)
    clock.now += 1.0
    second = breaker.before_call()
    breaker.record_success(second)
    assert breaker.state is State.CLOSED


def test_release_outside_half_open_changes_nothing() -> None:
    breaker, _ = make(threshold=2)
    fail(breaker)
    breaker.release(breaker.before_call())
    assert breaker.statistics().consecutive_failures == 1


def test_statistics_snapshot() -> None:
    breaker, clock = make(threshold=2, reset=5.0)
    assert breaker.statistics() == BreakerStatistics(
        name="daw",
        state=State.CLOSED,
        consecutive_failures=0,
        times_opened=0,
        rejected=0,
        probe_in_flight=False,
        retry_after=0.0,
    )
    open_breaker(breaker)
    clock.now += 1.0
    for _ in range(2):
        with pytest.raises(CircuitOpen):
            breaker.before_call()
    stats = breaker.statistics()
    assert (stats.state, stats.times_opened, stats.rejected) == (State.OPEN, 1, 2)
    assert stats.consecutive_failures == 2
    assert stats.retry_after == pytest.approx(4.0)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker(reset_timeout=-1.0)


def test_default_clock_is_monotonic_time() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=0.0)
    fail(breaker)
    assert breaker.state is State.HALF_OPEN


# GuardedUpstream gives the breaker its verdicts


class ScriptedClient:
    """An upstream client whose `get` does what a test says: answer, raise, or hang."""

    def __init__(self) -> None:
        self.outcome: UpstreamResponse | BaseException | None = None  # None: hang

    async def get(
        self,
        target: str,
        *,
        timeout: float,  # noqa: ASYNC109 (the client's own signature)
        retry_reused: bool,
    ) -> UpstreamResponse:
        if self.outcome is None:
            await asyncio.sleep(3600)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        assert self.outcome is not None
        return self.outcome


def guarded(breaker: CircuitBreaker) -> tuple[GuardedUpstream, ScriptedClient]:
    client = ScriptedClient()
    upstream = GuardedUpstream(
        client,
        breaker=breaker,
        budget=RetryBudget(min_retries_per_sec=0.0, percent_can_retry=0.0),
        retries=0,
    )
    return upstream, client


OK = UpstreamResponse(200, b"{}", b"application/json")


async def test_upstream_failures_count_against_the_breaker() -> None:
    breaker, _ = make(threshold=2)
    upstream, client = guarded(breaker)
    client.outcome = UpstreamTimeout("slow")
    for _ in range(2):
        with pytest.raises(UpstreamTimeout):
            await upstream.get_json("/api/products/1")
    assert breaker.state is State.OPEN
    client.outcome = OK
    with pytest.raises(CircuitOpen):
        await upstream.get_json("/api/products/1")


async def test_a_successful_probe_closes_a_half_open_breaker() -> None:
    breaker, clock = make()
    open_breaker(breaker)
    clock.now += 5.0
    upstream, client = guarded(breaker)
    client.outcome = OK
    assert await upstream.get_json("/api/products/1") == {}
    assert breaker.state is State.CLOSED


async def test_errors_of_our_own_are_no_verdict() -> None:
    """A bug or a full queue of our own must not count against the upstream."""
    breaker, clock = make(threshold=1)
    open_breaker(breaker)
    clock.now += 5.0
    upstream, client = guarded(breaker)
    for error in (KeyError("ours"), Overloaded("queue full")):
        client.outcome = error
        with pytest.raises(type(error)):
            await upstream.get_json("/api/products/1")
        assert breaker.state is State.HALF_OPEN
        assert not breaker.statistics().probe_in_flight


async def test_a_cancelled_probe_releases_its_slot() -> None:
    breaker, clock = make(threshold=1)
    open_breaker(breaker)
    clock.now += 5.0
    upstream, _ = guarded(breaker)
    task = asyncio.create_task(upstream.get_json("/api/products/1"))
    await asyncio.sleep(0)
    assert breaker.statistics().probe_in_flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not breaker.statistics().probe_in_flight
    breaker.before_call()


# the state machine against a model


@given(st.lists(st.sampled_from(["call-ok", "call-fail", "tick", "long-tick"]), max_size=60))
def test_against_a_model(steps: list[str]) -> None:
    """Sequential calls: only the first call after the interval goes through; others fail fast."""
    threshold, reset = 3, 5.0
    breaker, clock = make(threshold=threshold, reset=reset)
    streak, opened_at, is_open = 0, 0.0, False
    for step in steps:
        if step == "tick":
            clock.now += 1.0
            continue
        if step == "long-tick":
            clock.now += reset
            continue
        if is_open and clock.now < opened_at + reset:
            with pytest.raises(CircuitOpen):
                breaker.before_call()
            continue
        ticket = breaker.before_call()
        if step == "call-ok":
            breaker.record_success(ticket)
            streak, is_open = 0, False
        else:
            breaker.record_failure(ticket)
            streak += 1
            if is_open or streak >= threshold:
                is_open, opened_at = True, clock.now
        assert (breaker.state is State.OPEN) == is_open
