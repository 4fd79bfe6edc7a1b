"""Conformance of the simulator's pure answer logic with the real upstream, per shared fixture.

Expected answers are computed here from the fixture data alone; the odd cases
(`#`, `@`, backslashes, `1e3`, `0x10`) were observed on the real Node.js program.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daw_popular.sim import nodejs
from daw_popular.sim.routes import Answer, answer
from daw_popular.sim.store import Store

# shared/ lies beside the checkout, here and in CI.
FIXTURES = sorted(
    (Path(__file__).resolve().parents[2] / "shared" / "fixtures").glob("real-upstream-*.json")
)


def load(path: Path) -> tuple[Store, dict[str, Any]]:
    data = json.loads(path.read_text("utf-8"))
    return Store.from_fixture(path), data


@pytest.fixture(params=FIXTURES, ids=lambda p: p.stem)
def fixture(request: pytest.FixtureRequest) -> tuple[Store, dict[str, Any]]:
    return load(request.param)


def get(store: Store, target: str, method: str = "GET") -> Answer:
    path, _, query = target.encode().partition(b"?")
    return answer(store, method, path, query)


def body(store: Store, target: str) -> Any:
    result = get(store, target)
    assert result.status == 200
    assert result.content_type == b"application/json"
    return json.loads(result.body)


def test_fixtures_are_present() -> None:
    assert len(FIXTURES) == 3


def test_bodies_are_compact_utf8_in_field_order(fixture: tuple[Store, dict[str, Any]]) -> None:
    """Fields keep the dump's order and faces are raw UTF-8, as JSON.stringify writes them."""
    store, data = fixture
    raw = get(store, "/api/products?limit=100").body
    assert raw == b'{"products":[%b]}' % b",".join(
        json.dumps(p, ensure_ascii=False, separators=(",", ":")).encode() for p in data["products"]
    )
    first = get(store, "/api/purchases/by_user/" + data["purchases"][0]["username"]).body
    assert first.startswith(b'{"purchases":[{"id":')
    assert b'"username":' in first and first.index(b'"productId"') < first.index(b'"date"')


@pytest.mark.parametrize(
    ("query", "start", "stop"),
    [
        ("", 0, 10),
        ("?limit=0", 0, 10),
        ("?limit=abc", 0, 10),
        ("?limit=", 0, 10),
        ("?limit=-0", 0, 10),
        ("?limit=3", 0, 3),
        ("?limit=1e3", 0, 1),
        ("?limit=0x10", 0, 10),
        ("?limit=%32", 0, 2),
        ("?limit=+3", 0, 3),
        ("?limit=3abc", 0, 3),
        ("?limit=3&limit=7", 0, 3),
        ("?%6cimit=4", 0, 4),
        ("?limit=4&skip=2", 2, 6),
        ("?skip=abc&limit=2", 0, 2),
        ("?limit=-2", 0, -2),
        ("?limit=-2&skip=1", 1, -1),
        ("?skip=-3&limit=2", -3, -1),
        ("?limit=1000", 0, 1000),
        ("?limit=2#x", 0, 2),
        ("?limit=2.9", 0, 2),
        ("?skip=1000", 1000, 1010),
    ],
)
def test_list_routes_slice_like_javascript(
    fixture: tuple[Store, dict[str, Any]], query: str, start: int, stop: int
) -> None:
    """Every list route cuts `items.slice(skip, limit + skip)` with parseInt's reading."""
    store, data = fixture
    assert body(store, "/api/users" + query) == {"users": data["users"][start:stop]}
    assert body(store, "/api/products" + query) == {"products": data["products"][start:stop]}
    for user in data["users"]:
        name = user["username"]
        mine = [p for p in data["purchases"] if p["username"] == name]
        got = body(store, f"/api/purchases/by_user/{name}{query}")
        assert got == {"purchases": mine[start:stop]}
    for product in data["products"]:
        pid = product["id"]
        mine = [p for p in data["purchases"] if p["productId"] == pid]
        got = body(store, f"/api/purchases/by_product/{pid}{query}")
        assert got == {"purchases": mine[start:stop]}


def test_single_items_are_wrapped(fixture: tuple[Store, dict[str, Any]]) -> None:
    store, data = fixture
    for user in data["users"]:
        assert body(store, "/api/users/" + user["username"]) == {"user": user}
        assert body(store, "/api/users/" + user["username"] + "/") == {"user": user}
    for product in data["products"]:
        assert body(store, f"/api/products/{product['id']}") == {"product": product}


def test_unknown_ids_answer_empty_object(fixture: tuple[Store, dict[str, Any]]) -> None:
    store, data = fixture
    name = data["users"][0]["username"]
    for target in (
        "/api/users/nobody",
        "/api/users/" + name.lower(),
        "/api/users/%" + f"{ord(name[0]):02X}" + name[1:],
        "/api/users/" + name + "@x",
        "/api/users/__proto__",
        "/api/products/abc",
        "/api/products/0",
        "/api/products/0x10",
        "/api/products/constructor",
    ):
        assert get(store, target).body == b"{}", target
    assert body(store, "/api/purchases/by_user/nobody") == {"purchases": []}
    assert body(store, "/api/purchases/by_product/abc") == {"purchases": []}


def test_product_ids_are_read_with_parse_int(fixture: tuple[Store, dict[str, Any]]) -> None:
    store, data = fixture
    product = data["products"][0]
    pid = product["id"]
    for form in (f"{pid}", f"{pid}abc", f"+{pid}", f"000{pid}", f"{pid}.9", f"{pid}e5"):
        assert body(store, "/api/products/" + form) == {"product": product}, form
    bought = [p for p in data["purchases"] if p["productId"] == pid]
    assert body(store, f"/api/purchases/by_product/+{pid}x") == {"purchases": bought[:10]}


def test_odd_targets_as_the_real_program_reads_them(
    fixture: tuple[Store, dict[str, Any]],
) -> None:
    """Node's url.parse: fragments dropped, backslashes before `?` are slashes, `//` ok."""
    store, data = fixture
    user = data["users"][0]
    name = user["username"]
    assert body(store, f"/api/users/{name}#frag") == {"user": user}
    assert body(store, f"/api/users\\{name}") == {"user": user}
    assert body(store, f"///api//users//{name}//") == {"user": user}
    assert body(store, "/api/users/") == {"users": data["users"][:10]}
    assert get(store, "//x@y").crash


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/api",
        "/api/purchases",
        "/api/purchases/by_user/",
        "/api/purchases/by_user/a/b",
        "/api/purchase",
        "/API/users",
        "/api/users/a/b",
        "/api/products/1/2",
        "/nope?limit=2",
    ],
)
def test_other_paths_are_404_without_content_type(
    fixture: tuple[Store, dict[str, Any]], target: str
) -> None:
    store, _ = fixture
    for method in ("GET", "POST", "HEAD"):
        result = get(store, target, method)
        assert (result.status, result.body, result.content_type) == (
            404,
            b"Resource Not Found",
            None,
        )
        assert result.route == "other"


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_known_routes_answer_only_get(fixture: tuple[Store, dict[str, Any]], method: str) -> None:
    store, _ = fixture
    for target, route in (
        ("/api/users", "users"),
        ("/api/users/x", "user"),
        ("/api/products", "products"),
        ("/api/products/1", "product"),
        ("/api/purchases/by_user/x", "by_user"),
        ("/api/purchases/by_product/1", "by_product"),
    ):
        result = get(store, target, method)
        assert (result.status, result.body, result.content_type, result.route) == (
            405,
            b"405 Method Not Allowed",
            None,
            route,
        )


@pytest.mark.parametrize("byte", [0x00, 0x09, 0x20, 0x7F, 0x80, 0xC3, 0xFF])
def test_raw_bytes_outside_visible_ascii_are_refused(byte: int) -> None:
    store = Store.from_data({"users": [{"username": "a\u00e9", "email": "x"}]})
    for path, query in (
        (b"/api/users/a" + bytes([byte]), b""),
        (b"/api/users", b"x=" + bytes([byte])),
    ):
        result = answer(store, "GET", path, query)
        assert (result.status, result.close) == (400, True)


def test_first_of_duplicate_ids_wins() -> None:
    """`Array.find` returns the first match in store order."""
    store = Store.from_data(
        {
            "users": [{"username": "a", "email": "1"}, {"username": "a", "email": "2"}],
            "products": [{"id": 5, "face": "x", "price": 1, "size": 12}, {"id": 5, "face": "y"}],
        }
    )
    assert orjson.loads(get(store, "/api/users/a").body)["user"]["email"] == "1"
    assert orjson.loads(get(store, "/api/products/5").body)["product"]["face"] == "x"


def js_slice(n: int, start: float, end: float) -> range:
    """Array.prototype.slice per ECMA-262 (ToIntegerOrInfinity, then clamp)."""

    def rel(x: float) -> int:
        if math.isnan(x) or x == -math.inf:
            return 0
        if x == math.inf:
            return n
        return max(n + int(x), 0) if x < 0 else min(int(x), n)

    return range(rel(start), max(rel(start), rel(end)))


@given(
    limit=st.one_of(st.integers(-30, 30), st.integers(-(10**25), 10**25)),
    skip=st.one_of(st.integers(-30, 30), st.integers(-(10**25), 10**25)),
)
def test_any_integer_limit_and_skip(limit: int, skip: int) -> None:
    store = Store.from_data(
        {"users": [{"username": f"u{i}", "email": f"u{i}@x"} for i in range(25)]}
    )
    got = orjson.loads(get(store, f"/api/users?limit={limit}&skip={skip}").body)["users"]
    lim = float(limit) or 10.0
    sk = float(skip) or 0.0
    want = [f"u{i}" for i in js_slice(25, sk, lim + sk)]
    assert [u["username"] for u in got] == want


# nodejs.py: the JavaScript primitives on their own


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12.0),
        ("  \u00a0\ufeff-7x", -7.0),
        ("+5", 5.0),
        ("1e3", 1.0),
        ("0x10", 0.0),
        ("3.9", 3.0),
        ("\u0661", math.nan),
        ("", math.nan),
        ("-", math.nan),
        (None, math.nan),
        ("9" * 400, math.inf),
        ("9007199254740993", 9007199254740992.0),
    ],
)
def test_parse_int(text: str | None, value: float) -> None:
    got = nodejs.parse_int(text)
    assert got == value or (math.isnan(got) and math.isnan(value))


def test_parse_query_decodes_like_querystring() -> None:
    got = nodejs.parse_query("a=1+2&a=3&%6Bey=%41&bad=%ZZ%41&utf=%C3%A9&inv=%FF&=x&novalue&&b==c")
    assert got == {
        "a": "1 2",
        "key": "A",
        "bad": "%ZZA",
        "utf": "é",
        "inv": "\ufffd",
        "": "x",
        "novalue": "",
        "b": "=c",
    }


def test_parse_query_reads_at_most_1000_pairs() -> None:
    assert "limit" not in nodejs.parse_query("&" * 1000 + "limit=1")
    assert nodejs.parse_query("&" * 999 + "limit=1") == {"limit": "1"}


@pytest.mark.parametrize(
    ("target", "split"),
    [
        ("/a/b?c=d", ("/a/b", "c=d")),
        ("/a/b", ("/a/b", None)),
        ("/a/b#x?y", ("/a/b", None)),
        ("/a?b#c", ("/a", "b")),
        ("/a\\b?c\\d", ("/a/b", "c\\d")),
        ("/a|b", ("/a|b", None)),
        ("/a|b@c", ("/a%7Cb@c", None)),
        ("///a", ("///a", None)),
    ],
)
def test_split_url(target: str, split: tuple[str, str | None]) -> None:
    assert nodejs.split_url(target) == split


def test_split_url_crashes_on_host_forms() -> None:
    for target in ("//x@y", "/\\x@y"):
        with pytest.raises(nodejs.Crash):
            nodejs.split_url(target)
