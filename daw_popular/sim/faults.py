"""Fault specifications for the simulator: what goes wrong, on which route, how often.

A spec string is `ROUTE:KIND[=VALUE[~JITTER]][@PROBABILITY]`, for example
`by_product:reset@0.3`, `*:latency=50~10`, `users:status=503`, `*:huge=20000000`.
ROUTE is a route name (`users`, `user`, `products`, `product`, `by_user`,
`by_product`, `other`) or `*`. Latency faults add up; of the other kinds, the first
that fires decides the answer. The dice come from one seeded RNG when a seed is given.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .routes import ROUTES

LATENCY = "latency"  # VALUE ms, +-JITTER ms, before the answer
STATUS = "status"  # answer VALUE (default 503) instead
HANG = "hang"  # accept, never answer (VALUE s, 0: until the simulator stops)
RESET = "reset"  # send half the response, then a TCP reset
TRICKLE = "trickle"  # send the body one byte at a time, VALUE ms apart (default 1)
TRUNCATE = "truncate"  # announce the full length, send half the body, close
INVALID_JSON = "invalid_json"  # 200 with a body that does not parse
WRONG_SHAPE = "wrong_shape"  # 200 with valid JSON of the wrong structure
WRONG_TYPE = "wrong_type"  # 200 with the right body under Content-Type: text/html
HUGE = "huge"  # 200 with a valid JSON body of VALUE bytes (default 16 MiB)
KINDS = (
    LATENCY,
    STATUS,
    HANG,
    RESET,
    TRICKLE,
    TRUNCATE,
    INVALID_JSON,
    WRONG_SHAPE,
    WRONG_TYPE,
    HUGE,
)

_DEFAULT_VALUE = {STATUS: 503.0, TRICKLE: 1.0, HUGE: float(16 << 20)}


class FaultSpecError(ValueError):
    """A fault description that cannot be understood."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One kind of failure on one route (or `*`), firing with `probability`."""

    route: str
    kind: str
    value: float = 0.0
    jitter: float = 0.0
    probability: float = 1.0

    def __post_init__(self) -> None:
        if self.route != "*" and self.route not in ROUTES:
            raise FaultSpecError(f"unknown route {self.route!r}; one of {', '.join(ROUTES)}, *")
        if self.kind not in KINDS:
            raise FaultSpecError(f"unknown fault {self.kind!r}; one of {', '.join(KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise FaultSpecError(f"probability {self.probability} is not within 0..1")
        if self.value < 0 or self.jitter < 0:
            raise FaultSpecError("fault values must not be negative")
        if self.kind == STATUS and not 100 <= self.value <= 599 and self.value:
            raise FaultSpecError(f"status {self.value:g} is not an HTTP status")

    @property
    def amount(self) -> float:
        """The value, or the kind's default when none was given."""
        return self.value or _DEFAULT_VALUE.get(self.kind, 0.0)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """From `ROUTE:KIND[=VALUE[~JITTER]][@PROBABILITY]`."""
        route, colon, rest = spec.strip().partition(":")
        if not colon:
            raise FaultSpecError(f"fault {spec!r} is not ROUTE:KIND[=VALUE][@PROBABILITY]")
        rest, _, probability = rest.partition("@")
        kind, _, amount = rest.partition("=")
        value, _, jitter = amount.partition("~")
        try:
            return cls(
                route,
                kind,
                float(value or 0),
                float(jitter or 0),
                float(probability) if probability else 1.0,
            )
        except ValueError as exc:
            raise FaultSpecError(f"fault {spec!r}: {exc}") from exc

    @classmethod
    def from_json(cls, obj: str | Mapping[str, Any]) -> Fault:
        """From a spec string or an object with this class's field names."""
        if isinstance(obj, str):
            return cls.parse(obj)
        try:
            return cls(**obj)
        except TypeError as exc:
            raise FaultSpecError(f"fault {obj!r}: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultPlan:
    """The faults in force and the dice for them; swapped whole, read per request."""

    __slots__ = ("_rng", "faults", "seed")

    def __init__(self, faults: Iterable[Fault] = (), seed: int | None = None) -> None:
        self.faults = tuple(faults)
        self.seed = seed
        self._rng = random.Random(seed)

    def roll(self, route: str) -> tuple[float, Fault | None]:
        """Seconds of added latency and the answer-changing fault, if any, for one call."""
        delay = 0.0
        chosen: Fault | None = None
        rng = self._rng
        for fault in self.faults:
            if fault.route != route and fault.route != "*":
                continue
            if fault.probability < 1.0 and rng.random() >= fault.probability:
                continue
            if fault.kind == LATENCY:
                jitter = fault.jitter
                spread = rng.uniform(-jitter, jitter) if jitter else 0.0
                delay += max(0.0, fault.value + spread) / 1000.0
            elif chosen is None:
                chosen = fault
        return delay, chosen

    def to_json(self) -> dict[str, Any]:
        return {"faults": [f.to_json() for f in self.faults], "seed": self.seed}
