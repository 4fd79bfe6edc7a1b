"""Retries of idempotent upstream GETs: full-jitter backoff, a retry budget, a deadline.

Three bounds hold together, so one incoming request never becomes an unbounded
number of upstream calls and a failing upstream is not hammered by retries:

- per call: at most `1 + retries` attempts;
- per request: no attempt starts, and no backoff sleeps, past the request's deadline;
- per process: retries may add at most `percent_can_retry` to the request rate, plus
  a small floor so a quiet service can still retry (Finagle's `RetryBudget`).

Backoff is AWS's "full jitter" (Architecture Blog, "Exponential Backoff And Jitter",
2015): spreading retries uniformly over [0, ceiling) de-synchronises the clients
that failed together, which equal or merely "jittered" delays do not.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from .errors import DeadlineExceeded

T = TypeVar("T")

# 2**64 times any sane base (>= 1 ns) exceeds any sane cap; clamping the exponent keeps
# `base * 2**attempt` a finite float for every attempt number.
_MAX_EXPONENT: Final = 64

# Finagle's scale: deposits and withdrawals are integers, so no float drift accrues.
_DEPOSIT: Final = 1000

_RNG: Final = random.Random()


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry)."""
    if attempt < 0 or base < 0 or cap < 0:
        raise ValueError("attempt, base and cap must not be negative")
    ceiling = min(cap, base * 2.0 ** min(attempt, _MAX_EXPONENT))
    return rng.uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class BudgetStatistics:
    """A snapshot of a retry budget."""

    balance: int
    deposits: int
    withdrawals: int
    refused: int


class RetryBudget:
    """A token bucket of retries, refilled by requests, with tokens that expire.

    Each request deposits one unit; each retry withdraws `1 / percent_can_retry`
    units, so retries stay below that fraction of requests. A reserve of
    `min_retries_per_sec * ttl` retries is always there, and withdrawals from it
    expire with the window, so an idle service still gets that many per second.
    Deposits expire after `ttl`, so a burst of past traffic cannot fund a later
    retry storm. The window is kept in `slots` buckets (as Finagle's WindowedAdder),
    so memory is fixed whatever the request rate.
    """

    __slots__ = (
        "_clock",
        "_current",
        "_deposit",
        "_deposits",
        "_refused",
        "_reserve",
        "_slot_width",
        "_slots",
        "_started",
        "_withdraw",
        "_withdrawals",
    )

    def __init__(
        self,
        *,
        ttl: float = 10.0,
        min_retries_per_sec: float = 10.0,
        percent_can_retry: float = 0.2,
        slots: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or slots < 1:
            raise ValueError("ttl must be positive and slots at least 1")
        if min_retries_per_sec < 0 or percent_can_retry < 0:
            raise ValueError("min_retries_per_sec and percent_can_retry must not be negative")
        # A ratio of 0 leaves only the reserve: requests deposit nothing.
        self._deposit = _DEPOSIT if percent_can_retry > 0 else 0
        self._withdraw = int(_DEPOSIT / percent_can_retry) if percent_can_retry > 0 else _DEPOSIT
        self._reserve = int(min_retries_per_sec * ttl) * self._withdraw
        self._slots = [0] * slots
        self._slot_width = ttl / slots
        self._clock = clock
        self._started = clock()
        self._current = 0
        self._deposits = 0
        self._withdrawals = 0
        self._refused = 0

    def deposit(self) -> None:
        """One request was made: it funds a fraction of a retry."""
        self._slots[self._advance()] += self._deposit
        self._deposits += 1

    def try_withdraw(self) -> bool:
        """Take one retry if the budget has it; False means do not retry."""
        slot = self._advance()
        if self._reserve + sum(self._slots) < self._withdraw:
            self._refused += 1
            return False
        self._slots[slot] -= self._withdraw
        self._withdrawals += 1
        return True

    def balance(self) -> int:
        """Retries available now."""
        self._advance()
        return max(0, (self._reserve + sum(self._slots)) // self._withdraw)

    def statistics(self) -> BudgetStatistics:
        """Counters since creation and the balance now."""
        return BudgetStatistics(
            balance=self.balance(),
            deposits=self._deposits,
            withdrawals=self._withdrawals,
            refused=self._refused,
        )

    def _advance(self) -> int:
        """Zero the slots that left the window since the last event; the current slot."""
        tick = int((self._clock() - self._started) / self._slot_width)
        passed = tick - self._current
        if passed > 0:
            count = len(self._slots)
            for step in range(1, min(passed, count) + 1):
                self._slots[(self._current + step) % count] = 0
            self._current = tick
        return self._current % len(self._slots)


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    retries: int,
    budget: RetryBudget,
    deadline: float,
    retry_on: tuple[type[BaseException], ...],
    base: float = 0.025,
    cap: float = 0.5,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`await fn()`, retrying failures of the types in `retry_on`.

    Only for idempotent calls. At most `1 + retries` calls; a retry happens only if
    the budget allows it and its backoff ends before `deadline` (event-loop time);
    otherwise the last failure is raised as it is. `fn` bounds its own attempt,
    normally by the same deadline. Cancellation is never retried. `rng` and `sleep`
    are for tests.
    """
    if asyncio.get_running_loop().time() >= deadline:
        raise DeadlineExceeded("The request ran out of time before calling the upstream")
    budget.deposit()
    try:
        return await fn()
    except retry_on as exc:
        failure = exc
    # Awaited outside the `except` block: see `resilience.GuardedUpstream.get_json`.
    return await retry_after_failure(
        fn,
        failure,
        retries=retries,
        budget=budget,
        deadline=deadline,
        retry_on=retry_on,
        base=base,
        cap=cap,
        rng=rng,
        sleep=sleep,
    )


async def retry_after_failure(
    fn: Callable[[], Awaitable[T]],
    failure: BaseException,
    *,
    retries: int,
    budget: RetryBudget,
    deadline: float,
    retry_on: tuple[type[BaseException], ...],
    base: float = 0.025,
    cap: float = 0.5,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """What `call_with_retries` does once the first call, deposited in `budget`, raised
    `failure` (one of `retry_on`): the retries, within the same bounds.

    A caller on a hot path can make its first attempt itself and come here only when
    it fails: one coroutine frame less per successful call.
    """
    loop = asyncio.get_running_loop()
    draw = _RNG if rng is None else rng
    attempt = 0
    while True:
        if isinstance(failure, asyncio.CancelledError) or attempt >= retries:
            raise failure
        delay = full_jitter(attempt, base, cap, draw)
        if loop.time() + delay >= deadline or not budget.try_withdraw():
            raise failure
        await sleep(delay)
        attempt += 1
        try:
            return await fn()
        except retry_on as exc:
            failure = exc
