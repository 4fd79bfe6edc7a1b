"""A circuit breaker for one upstream: fail fast while it is down, probe to recover.

Theory of operation. The state is data, moved by one transition per event:

    CLOSED    --N consecutive failures-->  OPEN
    OPEN      --reset_timeout elapsed-->   HALF_OPEN  (the next caller is the probe)
    HALF_OPEN --probe succeeds-->          CLOSED
    HALF_OPEN --probe fails-->             OPEN

While OPEN, and while a probe is in flight, `before_call` raises `CircuitOpen` so no
upstream call is made. Usage, around each upstream call:

    ticket = breaker.before_call()
    try:
        answer = await call()
    except UpstreamError:
        breaker.record_failure(ticket)
        raise
    except BaseException:
        breaker.release(ticket)   # cancelled: no verdict about the upstream
        raise
    breaker.record_success(ticket)

(`GuardedUpstream.get_json` is that pattern). The ticket is the breaker's
epoch when the call was admitted; every transition starts a new epoch, so a verdict
from an older epoch is ignored. That matters because calls overlap:

    1. calls A and B are admitted while CLOSED;
    2. A's failure is the N-th in a row: OPEN;
    3. B, slow, succeeds now. Without epochs it would close the breaker that A's
       streak just opened, and the next caller would hammer a failing upstream.

Nothing here awaits or locks: the event loop runs one callback at a time.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .errors import CircuitOpen


class State(enum.IntEnum):
    """Where the breaker is; `OPEN` and a busy `HALF_OPEN` fail fast."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


# Hot paths read the members through these names: a member read through its class
# goes through EnumType.__getattr__ on Python 3.11, six times the cost of a global.
_CLOSED: Final = State.CLOSED
_OPEN: Final = State.OPEN
_HALF_OPEN: Final = State.HALF_OPEN


@dataclass(frozen=True, slots=True)
class BreakerStatistics:
    """A snapshot of one breaker, for metrics and the status page."""

    name: str
    state: State
    consecutive_failures: int
    times_opened: int
    rejected: int
    probe_in_flight: bool
    retry_after: float


class CircuitBreaker:
    """Closed, open or half-open around calls to one upstream."""

    __slots__ = (
        "_clock",
        "_consecutive_failures",
        "_epoch",
        "_opened_at",
        "_probe_started",
        "_rejected",
        "_state",
        "_times_opened",
        "failure_threshold",
        "name",
        "reset_timeout",
    )

    def __init__(
        self,
        name: str = "upstream",
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout < 0:
            raise ValueError("reset_timeout must not be negative")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._state = _CLOSED
        self._epoch = 0
        self._consecutive_failures = 0
        self._opened_at = 0.0
        # None: no probe admitted in this HALF_OPEN epoch yet.
        self._probe_started: float | None = None
        self._times_opened = 0
        self._rejected = 0

    @property
    def state(self) -> State:
        """The state now; an OPEN breaker whose interval has passed reads HALF_OPEN."""
        if self._state is _OPEN and self._clock() >= self._opened_at + self.reset_timeout:
            return _HALF_OPEN
        return self._state

    def before_call(self) -> int:
        """Admit one call and return its ticket, or raise `CircuitOpen` without calling."""
        if self._state is _CLOSED:
            return self._epoch
        now = self._clock()
        if self._state is _OPEN:
            if now < self._opened_at + self.reset_timeout:
                self._rejected += 1
                raise CircuitOpen(self._message(), self._opened_at + self.reset_timeout - now)
            self._move(_HALF_OPEN)
        # A probe whose verdict never came (its task died without `release`) must not
        # keep the breaker shut forever: after one more interval, another probe goes.
        if self._probe_started is not None and now < self._probe_started + self.reset_timeout:
            self._rejected += 1
            raise CircuitOpen(self._message(), self._probe_started + self.reset_timeout - now)
        self._probe_started = now
        return self._epoch

    def record_success(self, ticket: int) -> None:
        """The admitted call got a usable answer."""
        if ticket != self._epoch:
            return
        if self._state is _HALF_OPEN:
            self._move(_CLOSED)
        else:
            self._consecutive_failures = 0

    def record_failure(self, ticket: int) -> None:
        """The admitted call failed in a way that says the upstream is unwell."""
        if ticket != self._epoch:
            return
        self._consecutive_failures += 1
        if self._state is _HALF_OPEN or (self._consecutive_failures >= self.failure_threshold):
            self._move(_OPEN)

    def release(self, ticket: int) -> None:
        """The admitted call ended without a verdict (cancelled): free the probe slot."""
        if ticket == self._epoch and self._state is _HALF_OPEN:
            self._probe_started = None

    def statistics(self) -> BreakerStatistics:
        """Counters and state as of now."""
        state = self.state
        retry_after = 0.0
        if state is _OPEN:
            retry_after = self._opened_at + self.reset_timeout - self._clock()
        return BreakerStatistics(
            name=self.name,
            state=state,
            consecutive_failures=self._consecutive_failures,
            times_opened=self._times_opened,
            rejected=self._rejected,
            probe_in_flight=self._state is _HALF_OPEN and self._probe_started is not None,
            retry_after=retry_after,
        )

    def _move(self, state: State) -> None:
        self._state = state
        self._epoch += 1
        self._probe_started = None
        if state is _OPEN:
            self._opened_at = self._clock()
            self._times_opened += 1
        elif state is _CLOSED:
            self._consecutive_failures = 0

    def _message(self) -> str:
        return (
            f"Upstream {self.name!r} is failing; not calling it for now "
            f"(circuit opened after {self.failure_threshold} consecutive failures)"
        )
