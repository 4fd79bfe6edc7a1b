"""The popular-purchases aggregation: pure functions from upstream data to the answer.

Theory of operation. An answer is built from four upstream reads: the user's first
five stored purchases (`product_ids`), then, for each distinct product, the product
object and the purchases of that product (`buyers_newest_first`). The buyer list of a
product does not depend on who asks, so it is computed once per fetch and cached;
only `recent` and `compose` run per requester. Nothing here does I/O or keeps state:
the inputs are the JSON objects as the upstream sent them, after its shape was checked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from .errors import UpstreamBadResponse

# `by_user?limit=5` answers the first five stored purchases; slicing here keeps the
# rule true even if an upstream ignores the limit.
RECENT_PURCHASES: Final = 5

# The JSON objects as orjson decodes them. Dicts rather than any mapping: compiled,
# reading a field of one is then a native dict lookup, not a method call.
Purchase = dict[str, Any]
Product = dict[str, Any]

# Compiled, a C static rather than an attribute lookup on the module at each answer.
_DUMPS: Final = orjson.dumps
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def product_ids(purchases: Iterable[Purchase]) -> list[int]:
    """Distinct `productId`s of the user's first five purchases, first appearance first."""
    seen: dict[int, None] = {}
    for index, purchase in enumerate(purchases):
        if index == RECENT_PURCHASES:
            break
        seen[purchase["productId"]] = None
    return list(seen)


def instant(date: object) -> int:
    """Microseconds since the epoch of an ISO-8601 date; no offset means UTC.

    Purchases compare as instants, not as strings, so `...01Z`, `...01.000Z` and
    `...02+00:00:01` order correctly whatever the upstream's formatting.
    """
    return (_aware(date) - _EPOCH) // _MICROSECOND


# Bound once: compiled, `datetime.fromisoformat` is looked up on the class at every call.
_fromisoformat: Final = datetime.fromisoformat


def _aware(date: object) -> datetime:
    """The date as an aware datetime (UTC when it names no offset).

    Takes whatever the upstream sent: only a string can be a date.
    """
    try:
        if not isinstance(date, str):
            raise TypeError(f"a date is a string, not {type(date).__name__}")
        parsed = _fromisoformat(date)
    except (TypeError, ValueError) as exc:
        raise UpstreamBadResponse(f"Upstream sent a purchase with a bad date: {date!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# Looked up once: compiled, `sys.intern` reads the module's attribute at every call.
_intern: Final = sys.intern


def buyers_newest_first(purchases_of_product: Iterable[Purchase]) -> tuple[str, ...]:
    """Distinct buyers of one product, by their newest purchase, newest first.

    Equal instants order by username so the result never depends on store order.
    """
    # Aware datetimes compare as instants, as `instant` does, without its arithmetic.
    newest: dict[str, datetime] = {}
    for purchase in purchases_of_product:
        username: str = purchase["username"]
        when = _aware(purchase["date"])
        known = newest.get(username)
        if known is None or when > known:
            newest[username] = when
    # By username, then (a stable sort) newest first: equal instants stay by username.
    ordered = sorted(newest)
    ordered.sort(key=newest.__getitem__, reverse=True)
    # Interned: a buyer of several cached products is then held once, not once per list.
    return tuple([_intern(username) for username in ordered])


# Up to this many buyers a compiled loop is cheaper than the scans and slices below
# (four C calls whatever the length: 2.6k instructions for five buyers, against 0.8k).
_LOOP_UP_TO: Final = 32


def recent(buyers: tuple[str, ...], requester: str) -> list[str]:
    """The other buyers: `buyers` without the requester (exact match)."""
    if len(buyers) <= _LOOP_UP_TO:
        return [username for username in buyers if username != requester]
    # The requester bought the product, so is almost always here, once: C-level scans
    # and slices instead of a loop over what can be thousands of names.
    if requester not in buyers:
        return list(buyers)
    at = buyers.index(requester)
    rest = [*buyers[:at], *buyers[at + 1 :]]
    if requester in rest:  # only if `buyers` was not distinct
        return [username for username in rest if username != requester]
    return rest


def compose(
    requester: str,
    product_order: Iterable[int],
    products: dict[int, Product | None],
    buyers: dict[int, tuple[str, ...]],
) -> list[dict[str, Any]]:
    """The answer's entries: each existing product plus `recent`, most other buyers first.

    Products the upstream no longer knows (`{}` / None) are left out. Ties keep
    `product_order`, since `sorted` is stable.
    """
    entries: list[dict[str, Any]] = []
    for product_id in product_order:
        product = products.get(product_id)
        if not product:
            continue
        entry = dict(product)
        entry["recent"] = recent(buyers[product_id], requester)
        entries.append(entry)
    return sorted(entries, key=lambda entry: -len(entry["recent"]))


def render(entries: list[dict[str, Any]]) -> bytes:
    """Compact UTF-8 JSON; faces stay readable instead of `\\u` escapes."""
    return _DUMPS(entries)
