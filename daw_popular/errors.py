"""The service's exception tree, grouped by cause; each maps to one HTTP status.

Errors are raised where they happen, with a message a person can act on, and
mapped to a response once, in the service's error handler.

This module stays interpreted (setup.py): `BadUsername` has two bases, which mypyc
does not compile faithfully (compiled, its own `status` lost to its first base's).
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base: something this service could not do. `status` is the HTTP answer."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UpstreamError(ServiceError):
    """The upstream data API gave no usable answer (502 Bad Gateway)."""

    status = 502


class UpstreamUnavailable(UpstreamError):
    """Could not connect, or the connection broke before a full answer arrived."""


class UpstreamBadResponse(UpstreamError):
    """An answer arrived but is unusable: error status, bad JSON, wrong shape, too big."""


class UpstreamTimeout(UpstreamError):
    """No answer in time (504 Gateway Timeout)."""

    status = 504


class DeadlineExceeded(UpstreamTimeout):
    """The whole request's time budget ran out before the answer was complete."""


class CircuitOpen(UpstreamError):
    """The upstream failed repeatedly; calls fail fast until a probe succeeds (503)."""

    status = 503

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(UpstreamError):
    """Too many upstream calls are already waiting (503)."""

    status = 503

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadParameter(Exception):
    """A path parameter that cannot be decoded; the router answers it with 400."""


class BadUsername(ServiceError, BadParameter):
    """The username in the request path cannot be a name (400 Bad Request).

    A `BadParameter`, so the router answers it as any undecodable path parameter.
    """

    status = 400
