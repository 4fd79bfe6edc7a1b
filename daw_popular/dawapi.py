"""The DAW data API as typed calls: the quirks of the real program handled in one place.

Single objects come wrapped (`{"user": ...}`) and unknown ones as `200 {}`; lists
default to ten items, so "all buyers" pages with an explicit `limit` and `skip`
until a short page. Every answer's shape is checked here: a wrong shape is an
upstream error (502), never "no purchases" or "unknown user".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from . import popular
from .errors import UpstreamBadResponse
from .usernames import upstream_segment

GetJson = Callable[[str], Awaitable[Any]]

# The service shows a user's five recent purchases (the upstream's store order).
RECENT_PURCHASES: Final = 5


class DawApi:
    """Typed calls over a `get_json(target)` function (the pooled client, with retries)."""

    def __init__(self, get_json: GetJson, *, page_size: int = 1000) -> None:
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self._get_json = get_json
        self._page_size = page_size

    async def user_exists(self, username: str) -> bool:
        target = f"/api/users/{upstream_segment(username)}"
        answer = await self._get_json(target)
        if answer == {}:
            return False
        user = _field(answer, "user", dict, target)
        if not isinstance(user.get("username"), str):
            raise _bad_shape(target, "user without a username")
        return True

    async def recent_product_ids(self, username: str) -> tuple[int, ...]:
        """Distinct product ids of the user's five recent purchases, first appearance first."""
        target = f"/api/purchases/by_user/{upstream_segment(username)}?limit={RECENT_PURCHASES}"
        purchases = _purchases(await self._get_json(target), target)
        return tuple(popular.product_ids(purchases))

    async def product(self, product_id: int) -> dict[str, Any] | None:
        """The product object as the upstream gave it, or None when it answers `{}`."""
        target = f"/api/products/{product_id}"
        answer = await self._get_json(target)
        if answer == {}:
            return None
        product: dict[str, Any] = _field(answer, "product", dict, target)
        if not isinstance(product.get("id"), int):
            raise _bad_shape(target, "product without an integer id")
        return product

    async def buyers(self, product_id: int) -> tuple[str, ...]:
        """Every buyer of a product, distinct, newest purchase first (all pages)."""
        size = self._page_size
        everything: list[dict[str, Any]] = []
        skip = 0
        while True:
            target = f"/api/purchases/by_product/{product_id}?limit={size}&skip={skip}"
            page = _purchases(await self._get_json(target), target)
            everything += page
            if len(page) < size:
                return popular.buyers_newest_first(everything)
            skip += size


def _field(answer: Any, name: str, kind: type, target: str) -> Any:
    if not isinstance(answer, dict) or not isinstance(answer.get(name), kind):
        raise _bad_shape(target, f"expected {{{name!r}: {kind.__name__}}}")
    return answer[name]


def _purchases(answer: Any, target: str) -> list[dict[str, Any]]:
    purchases: list[Any] = _field(answer, "purchases", list, target)
    for purchase in purchases:
        if not (
            isinstance(purchase, dict)
            and isinstance(purchase.get("username"), str)
            and isinstance(purchase.get("productId"), int)
            and isinstance(purchase.get("date"), str)
        ):
            raise _bad_shape(target, "purchase without username, productId or date")
    return purchases


def _bad_shape(target: str, detail: str) -> UpstreamBadResponse:
    return UpstreamBadResponse(f"upstream GET {target}: unexpected answer ({detail})")
