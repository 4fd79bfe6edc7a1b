"""The simulator's data: generated data looks real, is deterministic, and scales."""

from __future__ import annotations

import gc
import random
import re
from datetime import UTC, datetime
from typing import cast

import orjson

from daw_popular.sim.cli import keep_out_of_collections
from daw_popular.sim.faces import FACES
from daw_popular.sim.names import FIRST_NAMES, LAST_NAMES
from daw_popular.sim.routes import answer
from daw_popular.sim.store import Item, Store, _unique_ids

NOW_MS = 1_795_000_000_355
USERNAME = re.compile(r"([A-Za-z]+)(?:(\d{1,2})|([._])([A-Za-z]+)(\d{1,2})?)")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_generated_data_has_the_real_shapes() -> None:
    store = Store.generate(7, users=300, products=200, max_purchases_per_user=10, now_ms=NOW_MS)
    assert [list(u) for u in store.users[:1]] == [["username", "email"]]
    assert [list(p) for p in store.products[:1]] == [["id", "face", "price", "size"]]
    assert [list(p) for p in store.purchases[:1]] == [["id", "username", "productId", "date"]]
    names = [u["username"] for u in store.users]
    assert len(set(names)) == 300
    for user in store.users:
        match = USERNAME.fullmatch(user["username"])
        assert match is not None, user
        assert match.group(1) in FIRST_NAMES or match.group(1) in {
            n.replace("'", "") for n in FIRST_NAMES
        }
        if match.group(4):
            assert match.group(4) in {n.replace("'", "") for n in LAST_NAMES}
        local, _, domain = user["email"].partition("@")
        assert local == user["username"]
        assert domain in {"gmail.com", "yahoo.com", "hotmail.com"}
    ids = [p["id"] for p in store.products]
    assert len(set(ids)) == len(ids) and all(1 <= i <= 999_999 for i in ids)
    for product in store.products:
        assert product["face"] in FACES
        assert 1 <= product["price"] <= 1233 and 12 <= product["size"] <= 39
    purchase_ids = [p["id"] for p in store.purchases]
    assert len(set(purchase_ids)) == len(purchase_ids)
    assert all(1 <= i <= 999_999 for i in purchase_ids)
    per_user = {n: 0 for n in names}
    for purchase in store.purchases:
        per_user[purchase["username"]] += 1
        assert purchase["productId"] in set(ids)
        assert ISO.fullmatch(purchase["date"])
        age_ms = NOW_MS - datetime.fromisoformat(purchase["date"]).timestamp() * 1000
        assert 1000 * 1000 <= round(age_ms) < 999_999 * 1000
        assert purchase["date"].endswith(".355Z")
    assert max(per_user.values()) <= 9 and min(per_user.values()) == 0
    # store order: all of one user's purchases, user by user
    order = [p["username"] for p in store.purchases]
    assert order == sorted(order, key=names.index)


def test_same_seed_same_data() -> None:
    a = Store.generate(42, now_ms=NOW_MS)
    b = Store.generate(42, now_ms=NOW_MS)
    c = Store.generate(43, now_ms=NOW_MS)
    assert (a.users, a.products, a.purchases) == (b.users, b.products, b.purchases)
    assert a.users != c.users
    later = Store.generate(42)
    assert later.users == a.users and later.products == a.products
    assert [p["id"] for p in later.purchases] == [p["id"] for p in a.purchases]
    assert datetime.fromisoformat(later.purchases[0]["date"]) < datetime.now(UTC)


def test_more_than_999999_items_widen_the_id_range() -> None:
    ids = _unique_ids(random.Random(1), 1_000_100)
    assert len(set(ids)) == 1_000_100 and max(ids) > 999_999
    assert max(_unique_ids(random.Random(1), 999_999)) == 999_999


class _Gone:
    """Stands in for a raw list once the indexes are built: len, iteration or indexing fail."""

    __slots__ = ()


def test_requests_are_answered_from_indexes_built_once() -> None:
    """A large store answers from its indexes, never by scanning the raw lists.

    The time per request is the benchmark's business (`make bench`); here the
    structure that keeps it independent of the store's size.
    """
    store = Store.generate(5, users=20_000, products=500, max_purchases_per_user=20)
    assert len(store.purchases) > 150_000
    name = store.users[10_000]["username"]
    pid = store.products[250]["id"]
    bought = [p for p in store.purchases if p["username"] == name]
    buyers = [p for p in store.purchases if p["productId"] == pid]
    assert bought and buyers
    raw = (store.users, store.products, store.purchases)
    store.users = store.products = store.purchases = cast(list[Item], _Gone())
    by_user = answer(store, "GET", b"/api/purchases/by_user/" + name.encode(), b"limit=100")
    by_product = answer(store, "GET", b"/api/purchases/by_product/%d" % pid, b"limit=100000")
    user = answer(store, "GET", b"/api/users/" + name.encode(), b"")
    product = answer(store, "GET", b"/api/products/%d" % pid, b"")
    users = answer(store, "GET", b"/api/users", b"limit=100&skip=19950")
    assert orjson.loads(by_user.body) == {"purchases": bought}
    assert orjson.loads(by_product.body) == {"purchases": buyers}
    assert orjson.loads(user.body) == {"user": raw[0][10_000]}
    assert orjson.loads(product.body) == {"product": raw[1][250]}
    assert orjson.loads(users.body) == {"users": raw[0][19_950:]}


def test_the_simulator_keeps_its_store_out_of_collections() -> None:
    # `daw-popular sim` freezes the store once built: no later collection rescans it.
    store = Store.generate(seed=3, users=50, products=20)
    gc.collect()
    assert any(obj is store.users for obj in gc.get_objects())
    frozen = gc.get_freeze_count()
    try:
        keep_out_of_collections()
        assert gc.get_freeze_count() > frozen
        assert not any(obj is store.users for obj in gc.get_objects())
    finally:
        gc.unfreeze()
