"""Upstream calls made safe: circuit breaker, budgeted retries with full jitter, deadlines.

Every upstream GET is idempotent, so a failed one may be retried, but only for
failures a second try can cure (no connection, a timeout, a 5xx) and only while
the retry budget and the call's deadline allow: upstream calls stay at most
calls x (1 + retries) however the upstream misbehaves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .breaker import CircuitBreaker
from .errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from .retry import RetryBudget, call_with_retries
from .upstream import UpstreamClient, json_body


class UpstreamServerError(UpstreamBadResponse):
    """A 5xx answer: the upstream knows it failed, so a retry may succeed."""


_UPSTREAM_FAILURES = (UpstreamUnavailable, UpstreamTimeout, UpstreamBadResponse)


class GuardedUpstream:
    """`get_json(target)` through the breaker, with retries inside a time budget."""

    def __init__(
        self,
        client: UpstreamClient,
        *,
        breaker: CircuitBreaker,
        budget: RetryBudget,
        retries: int = 1,
        read_timeout: float = 1.0,
        deadline: float = 2.0,
    ) -> None:
        self._client = client
        self._breaker = breaker
        self._budget = budget
        self._retries = retries
        self._read_timeout = read_timeout
        self._deadline = deadline

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def budget(self) -> RetryBudget:
        return self._budget

    async def get_json(self, target: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline

        async def attempt() -> Any:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UpstreamTimeout(f"upstream GET {target}: no time left in the deadline")
            # The pool's own retry of a reused connection would be a call outside the
            # budget: here it is one of the `retries`, like any other.
            answer = await self._client.get(
                target, timeout=min(self._read_timeout, remaining), retry_reused=False
            )
            if answer.status >= 500:
                raise UpstreamServerError(f"upstream GET {target}: answered {answer.status}")
            return json_body(target, answer)

        # `Overloaded` is our own queue being full, not a verdict on the upstream.
        with self._breaker.guard(_UPSTREAM_FAILURES):
            return await call_with_retries(
                attempt,
                retries=self._retries,
                budget=self._budget,
                deadline=deadline,
                retry_on=(UpstreamUnavailable, UpstreamTimeout, UpstreamServerError),
            )
