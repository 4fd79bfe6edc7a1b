"""Upstream calls made safe: circuit breaker, budgeted retries with full jitter, deadlines.

Every upstream GET is idempotent, so a failed one may be retried, but only for
failures a second try can cure (no connection, a timeout, a 5xx) and only while
the retry budget and the call's deadline allow: upstream calls stay at most
calls x (1 + retries) however the upstream misbehaves.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any, Final, Protocol

from .breaker import CircuitBreaker
from .errors import ServiceError, UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from .metrics import UpstreamCounters
from .retry import RetryBudget, retry_after_failure
from .upstream import UpstreamResponse, json_body

# A Final name: compiled, a C static rather than an attribute lookup on the module at
# each of the two calls per upstream call.
_PERF_COUNTER: Final = time.perf_counter


class UpstreamServerError(UpstreamBadResponse):
    """A 5xx answer: the upstream knows it failed, so a retry may succeed."""


_UPSTREAM_FAILURES = (UpstreamUnavailable, UpstreamTimeout, UpstreamBadResponse)
_RETRY_ON = (UpstreamUnavailable, UpstreamTimeout, UpstreamServerError)


class Client(Protocol):
    """What `GuardedUpstream` asks of its client: `UpstreamClient.get`."""

    async def get(
        self,
        target: str,
        *,
        timeout: float,  # noqa: ASYNC109 (the pooled client's own signature)
        retry_reused: bool,
    ) -> UpstreamResponse: ...


class GuardedUpstream:
    """`get_json(target)` through the breaker, with retries inside a time budget, counted."""

    def __init__(
        self,
        client: Client,
        *,
        breaker: CircuitBreaker,
        budget: RetryBudget,
        retries: int = 1,
        read_timeout: float = 1.0,
        deadline: float = 2.0,
    ) -> None:
        if read_timeout <= 0 or deadline <= 0:
            raise ValueError(
                f"read_timeout and deadline must be positive, not {read_timeout} and {deadline}"
            )
        self._client = client
        self._breaker = breaker
        self._budget = budget
        self._retries = retries
        self._read_timeout = read_timeout
        self._deadline = deadline
        self.counters = UpstreamCounters()

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def budget(self) -> RetryBudget:
        return self._budget

    async def get_json(self, target: str) -> Any:
        # Counted here rather than by a wrapping coroutine: one layer less per call.
        counters = self.counters
        counters.calls += 1
        started = _PERF_COUNTER()
        breaker = self._breaker
        try:
            ticket = breaker.before_call()  # CircuitOpen: no call at all
            # The breaker's verdicts are given here, not by its `guard()` context
            # manager: that one costs 4% of a cold answer's instructions (callgrind).
            try:
                # The first attempt is made here, not in a coroutine of its own, and the
                # retries' clock is read only when it failed: a successful call costs no
                # frame but this one (two frames were 2% of a cold answer's
                # instructions) and no `get_running_loop()`, which checks for a fork
                # with a `getpid` system call on Python 3.11.
                self._budget.deposit()
                failure: Exception | None = None
                try:
                    answer = await self._client.get(
                        target,
                        timeout=min(self._read_timeout, self._deadline),
                        retry_reused=False,
                    )
                    value = _checked(target, answer)
                except _RETRY_ON as exc:
                    failure = exc
                if failure is not None:
                    # Never awaited inside an `except` block: compiled by mypyc, a
                    # coroutine suspended there leaves its exception as the one being
                    # handled for all the other code the loop runs meanwhile (it becomes
                    # their exceptions' `__context__`).
                    value = await self._retry(target, failure, started)
            except _UPSTREAM_FAILURES:
                breaker.record_failure(ticket)
                raise
            except BaseException:
                # `Overloaded` (our own queue is full) and a cancellation end the call
                # without a verdict on the upstream.
                breaker.release(ticket)
                raise
            breaker.record_success(ticket)
            return value
        except ServiceError as exc:
            counters.failed(exc)
            raise
        finally:
            counters.latency.observe(_PERF_COUNTER() - started)

    async def _retry(self, target: str, failure: Exception, started: float) -> Any:
        """The retries after a first attempt that failed with `failure`, within the
        deadline counted from `started` (a `time.perf_counter()`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline - (time.perf_counter() - started)
        return await retry_after_failure(
            partial(self._attempt, loop, target, deadline),
            failure,
            retries=self._retries,
            budget=self._budget,
            deadline=deadline,
            retry_on=_RETRY_ON,
        )

    async def _attempt(self, loop: asyncio.AbstractEventLoop, target: str, deadline: float) -> Any:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise UpstreamTimeout(f"upstream GET {target}: no time left in the deadline")
        # The pool's own retry of a reused connection would be a call outside the
        # budget: here it is one of the `retries`, like any other.
        answer = await self._client.get(
            target, timeout=min(self._read_timeout, remaining), retry_reused=False
        )
        return _checked(target, answer)


def _checked(target: str, answer: UpstreamResponse) -> Any:
    """The JSON of an answer; a 5xx is `UpstreamServerError`, which may be retried."""
    if answer.status >= 500:
        raise UpstreamServerError(f"upstream GET {target}: answered {answer.status}")
    return json_body(target, answer)
