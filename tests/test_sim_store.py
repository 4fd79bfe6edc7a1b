"""The simulator's data: generated data looks real, is deterministic, and scales."""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime

from daw_popular.sim.faces import FACES
from daw_popular.sim.names import FIRST_NAMES, LAST_NAMES
from daw_popular.sim.routes import answer
from daw_popular.sim.store import Store, _unique_ids

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


def test_100k_users_build_fast_and_answer_in_microseconds() -> None:
    """About a million purchases: the build stays within seconds, lookups within microseconds."""
    started = time.perf_counter()
    store = Store.generate(5, users=100_000, products=2_000, max_purchases_per_user=20)
    built = time.perf_counter() - started
    assert len(store.purchases) > 900_000
    assert built < 12.0  # about 3.5 s on an idle machine; CI machines are shared
    name = store.users[50_000]["username"]
    pid = store.products[1_000]["id"]
    targets = [
        (b"/api/users/" + name.encode(), b""),
        (b"/api/purchases/by_user/" + name.encode(), b"limit=5"),
        (b"/api/purchases/by_product/%d" % pid, b"limit=1000"),
        (b"/api/products/%d" % pid, b""),
        (b"/api/users", b"limit=100&skip=99950"),
    ]
    for path, query in targets:
        answer(store, "GET", path, query)
        started = time.perf_counter()
        for _ in range(200):
            result = answer(store, "GET", path, query)
        each = (time.perf_counter() - started) / 200
        assert result.status == 200 and result.body != b"{}"
        assert each < 0.002, (path, each)
