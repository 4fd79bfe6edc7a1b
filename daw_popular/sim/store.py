"""The simulator's data: users, products and purchases in store order, indexed once.

A store never changes after it is built. Every item is encoded to JSON once, at
build time, and every index holds those bytes, so answering a list route is a slice
and a `b",".join`, and a single-item route is one dict lookup of a finished body.

Generated data follows the real program's `setup-store.js`: usernames are the local
part of a faker e-mail, product and purchase ids are random integers in
[1, 999999], each user has `randint(0, max - 1)` purchases of random products, and
dates lie between 1,000 and 999,999 seconds before a reference instant with its
milliseconds (the real program uses `now`, so does `generate` unless given `now_ms`).
Unlike the real program, ids and usernames are unique, so lookups are unambiguous;
the range of ids widens when more than 999,999 items are asked for.
"""

from __future__ import annotations

import contextlib
import gc
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from .faces import FACES
from .names import FREE_EMAIL, user_name

Item = dict[str, Any]

ID_MAX = 999_999


class Store:
    """Immutable data set with pre-encoded answers; build with `from_fixture` or `generate`."""

    __slots__ = (
        "by_product",
        "by_user",
        "product_bodies",
        "product_items",
        "products",
        "purchases",
        "user_bodies",
        "user_items",
        "users",
    )

    def __init__(self, users: list[Item], products: list[Item], purchases: list[Item]) -> None:
        with _gc_paused():
            self._index(users, products, purchases)

    def _index(self, users: list[Item], products: list[Item], purchases: list[Item]) -> None:
        self.users = users
        self.products = products
        self.purchases = purchases
        self.user_items = [_encode(u) for u in users]
        self.product_items = [_encode(p) for p in products]
        # `Array.find` returns the first match, so a later duplicate never wins.
        self.user_bodies: dict[str, bytes] = {}
        for user, item in zip(reversed(users), reversed(self.user_items), strict=True):
            self.user_bodies[user["username"]] = b'{"user":%s}' % item
        self.product_bodies: dict[float, bytes] = {}
        for product, item in zip(reversed(products), reversed(self.product_items), strict=True):
            self.product_bodies[product["id"]] = b'{"product":%s}' % item
        by_user: dict[str, list[bytes]] = {}
        by_product: dict[float, list[bytes]] = {}
        for purchase in purchases:
            item = _encode(purchase)
            by_user.setdefault(purchase["username"], []).append(item)
            by_product.setdefault(purchase["productId"], []).append(item)
        self.by_user = by_user
        self.by_product = by_product

    @classmethod
    def from_data(cls, data: Mapping[str, Iterable[Item]]) -> Store:
        """From `{"users": [...], "products": [...], "purchases": [...]}`, order kept."""
        return cls(
            [dict(u) for u in data.get("users", ())],
            [dict(p) for p in data.get("products", ())],
            [dict(p) for p in data.get("purchases", ())],
        )

    @classmethod
    def from_fixture(cls, path: str | Path) -> Store:
        """Load a data dump such as `real-upstream-a.json`."""
        return cls.from_data(orjson.loads(Path(path).read_bytes()))

    @classmethod
    def generate(
        cls,
        seed: int,
        users: int = 10,
        products: int = 20,
        max_purchases_per_user: int = 10,
        *,
        now_ms: int | None = None,
    ) -> Store:
        """Random data shaped like the real program's; the same seed gives the same data.

        Dates count back from `now_ms` (milliseconds since the epoch), by default the
        current time, so only the dates differ between two runs with one seed.
        """
        if now_ms is None:
            now_ms = int(time.time() * 1000)
        with _gc_paused():
            data = _generate(seed, users, products, max_purchases_per_user, now_ms)
        return cls(*data)

    def statistics(self) -> dict[str, int]:
        """Sizes of the data set."""
        return {
            "users": len(self.users),
            "products": len(self.products),
            "purchases": len(self.purchases),
        }


def _encode(item: Item) -> bytes:
    """Compact UTF-8 JSON of one item, as a right-sized copy.

    orjson's own result keeps an over-allocated buffer from the system allocator;
    keeping a million of them took 10 s, copying them into small objects 0.3 s.
    """
    return b"%b" % orjson.dumps(item)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while a million acyclic dicts are built: each collection would scan
    everything built so far."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _generate(
    seed: int, users: int, products: int, max_purchases_per_user: int, now_ms: int
) -> tuple[list[Item], list[Item], list[Item]]:
    rng = random.Random(seed)
    rand = rng.random

    user_list: list[Item] = []
    names: set[str] = set()
    while len(user_list) < users:
        name = user_name(rng)
        if name in names:
            continue
        names.add(name)
        provider = FREE_EMAIL[int(rand() * len(FREE_EMAIL))]
        user_list.append({"username": name, "email": f"{name}@{provider}"})

    n_faces = len(FACES)
    product_list: list[Item] = [
        {
            "id": pid,
            "face": FACES[int(rand() * n_faces)],
            "price": 1 + int(rand() * 1233),
            "size": 12 + int(rand() * 28),
        }
        for pid in _unique_ids(rng, products)
    ]

    counts = [int(rand() * max_purchases_per_user) for _ in range(users)]
    total = sum(counts) if product_list else 0
    ids = iter(_unique_ids(rng, total))
    product_ids = [p["id"] for p in product_list]
    picks = rng.choices(product_ids, k=total)
    ages = rng.choices(range(1000, ID_MAX), k=total)
    dates = _iso_dates(now_ms, ages)
    purchase_list: list[Item] = []
    append = purchase_list.append
    at = 0
    for user, count in zip(user_list, counts, strict=True):
        if not product_list:
            break
        name = user["username"]
        for i in range(at, at + count):
            append({"id": next(ids), "username": name, "productId": picks[i], "date": dates[i]})
        at += count
    return user_list, product_list, purchase_list


def _unique_ids(rng: random.Random, count: int) -> list[int]:
    """`count` distinct random ids in [1, 999999], or a wider range when that is too small."""
    high = ID_MAX if count <= ID_MAX else 10 * count
    return rng.sample(range(1, high + 1), count)


def _iso_dates(now_ms: int, ages: list[int]) -> list[str]:
    """`moment().subtract(age, 'seconds').toISOString()` for each age.

    Built from a table of day prefixes and one of the 86,400 times of day, since
    formatting a million timestamps one by one took seconds.
    """
    now_s, millis = divmod(now_ms, 1000)
    first_day = (now_s - max(ages, default=0)) // 86400
    last_day = now_s // 86400
    days = [
        time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
        for day in range(first_day, last_day + 1)
    ]
    tail = f".{millis:03d}Z"
    clock = [
        f"{h:02d}:{m:02d}:{s:02d}{tail}" for h in range(24) for m in range(60) for s in range(60)
    ]
    out = []
    for age in ages:
        day, second = divmod(now_s - age, 86400)
        out.append(days[day - first_day] + clock[second])
    return out
