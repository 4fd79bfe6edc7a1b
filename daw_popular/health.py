"""Liveness and readiness answers: `/healthz` (the process answers), `/readyz` (worth traffic).

Readiness follows the breakers: while the upstream breaker is open this worker
would only fail fast or serve stale data, so a balancer should prefer others;
half-open counts as ready, since only traffic can carry the probe that closes it.
Redis is reported but never makes a worker unready: it is an optimisation shared
by every replica, so failing readiness on it would take them all out of the
balancer at once while each still answers from its in-process cache.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import orjson

from . import responses
from .breaker import CircuitBreaker, State
from .server import Request

if TYPE_CHECKING:
    from .shared import SharedCache


def healthz(request: Request, _: str) -> bytes:
    """200 while the process answers; the body names the worker (its pid)."""
    return responses.text(200, f"ok pid={os.getpid()}", head_only=request.method == "HEAD")


class Readiness:
    """`GET /readyz`: 200, or 503 with a short JSON reason."""

    __slots__ = ("_shared", "_upstream")

    def __init__(self, upstream: CircuitBreaker, shared: SharedCache | None = None) -> None:
        self._upstream = upstream
        self._shared = shared

    def reasons(self) -> list[str]:
        """Why this worker should not get traffic now; empty when ready."""
        reasons = []
        if self._upstream.state is State.OPEN:
            reasons.append("upstream circuit breaker open")
        return reasons

    def __call__(self, request: Request, _: str) -> bytes:
        reasons = self.reasons()
        doc: dict[str, object] = {
            "ready": not reasons,
            "upstream": self._upstream.state.name.lower(),
        }
        if self._shared is not None:
            doc["redis"] = self._shared.state
        if reasons:
            doc["reasons"] = reasons
        return responses.response(
            503 if reasons else 200,
            orjson.dumps(doc),
            content_type=responses.JSON,
            headers=[(b"Cache-Control", b"no-store")],
            head_only=request.method == "HEAD",
        )
