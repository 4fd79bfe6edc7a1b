"""Tests for the popular-purchases aggregation, against brute-force references."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daw_popular.errors import UpstreamBadResponse
from daw_popular.popular import (
    buyers_newest_first,
    compose,
    instant,
    product_ids,
    recent,
    render,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
DATA_SETS = sorted(FIXTURES.glob("real-upstream-*.json"))

USERNAMES = st.sampled_from(["Amiya.Hansen", "amiya.hansen", "Teresa59", "Jerod_Herman", "é", ""])
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# Faces are multi-codepoint Unicode with combining marks and backslashes.
FACE_CHARS = 'ヾ(⌐■_■)ノ•̀.̫•́✧\\"é'
# A small pool of instants makes equal newest dates (ties) common.
INSTANTS = st.sampled_from(
    [
        datetime(2026, 11, 23, 15, 6, 1, 355000, tzinfo=UTC),
        datetime(2026, 11, 23, 15, 6, 1, tzinfo=UTC),
        datetime(2026, 11, 23, 15, 6, 2, tzinfo=UTC),
        datetime(2026, 11, 24, 0, 0, tzinfo=UTC),
    ]
) | st.datetimes(
    min_value=datetime(2000, 1, 2),
    max_value=datetime(2099, 12, 30),
    timezones=st.just(UTC),
)


@st.composite
def dated(draw: st.DrawFn) -> tuple[str, datetime]:
    """An ISO-8601 string in one of the spellings an upstream may use, and its instant."""
    moment: datetime = draw(INSTANTS)
    spec = draw(st.sampled_from(["seconds", "milliseconds", "microseconds"]))
    if spec == "seconds":
        moment = moment.replace(microsecond=0)
    elif spec == "milliseconds":
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    style = draw(st.sampled_from(["Z", "offset", "naive"]))
    if style == "Z":
        text = moment.isoformat(timespec=spec).replace("+00:00", "Z")
    elif style == "naive":
        text = moment.replace(tzinfo=None).isoformat(timespec=spec)
    else:
        text = moment.astimezone(draw(OFFSETS)).isoformat(timespec=spec)
    return text, moment


@st.composite
def purchases_of_a_product(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[datetime]]:
    """Purchases as the upstream sends them, with the true instant of each."""
    rows = draw(st.lists(st.tuples(USERNAMES, dated()), max_size=12))
    purchases = [
        {"id": n, "username": name, "productId": 7, "date": text}
        for n, (name, (text, _)) in enumerate(rows)
    ]
    return purchases, [moment for _, (_, moment) in rows]


def reference_buyers(purchases: list[dict[str, Any]], moments: list[datetime]) -> list[str]:
    """Brute force: repeatedly take the buyer whose newest purchase is latest."""
    remaining = {p["username"] for p in purchases}
    result: list[str] = []
    while remaining:

        def newest(name: str) -> datetime:
            return max(m for p, m in zip(purchases, moments, strict=True) if p["username"] == name)

        latest = max(newest(name) for name in remaining)
        pick = min(name for name in remaining if newest(name) == latest)
        result.append(pick)
        remaining.remove(pick)
    return result


def reference_compose(
    requester: str,
    order: list[int],
    products: dict[int, dict[str, Any] | None],
    buyers: dict[int, tuple[str, ...]],
) -> list[dict[str, Any]]:
    """Brute force: bucket by number of other buyers, largest bucket first."""
    kept = [pid for pid in order if products.get(pid)]
    others = {pid: [b for b in buyers[pid] if b != requester] for pid in kept}
    result: list[dict[str, Any]] = []
    for count in range(max((len(o) for o in others.values()), default=0), -1, -1):
        for pid in kept:
            if len(others[pid]) == count:
                result.append({**(products[pid] or {}), "recent": others[pid]})
    return result


# product_ids


def test_product_ids_distinct_in_first_appearance_order() -> None:
    purchases = [{"productId": p} for p in (5, 3, 5, 9, 3)]
    assert product_ids(purchases) == [5, 3, 9]


def test_product_ids_reads_only_the_first_five_purchases() -> None:
    """An upstream that ignores `limit=5` must not widen the answer."""
    purchases = [{"productId": p} for p in (1, 2, 3, 4, 5, 6, 7)]
    assert product_ids(purchases) == [1, 2, 3, 4, 5]


@given(st.lists(st.integers(1, 8)))
def test_product_ids_matches_reference(ids: list[int]) -> None:
    expected: list[int] = []
    for pid in ids[:5]:
        if pid not in expected:
            expected.append(pid)
    assert product_ids([{"productId": p} for p in ids]) == expected


# dates


@pytest.mark.parametrize(
    ("text", "same_as"),
    [
        ("2026-11-23T15:06:01Z", "2026-11-23T15:06:01.000Z"),
        ("2026-11-23T16:06:01.355+01:00", "2026-11-23T15:06:01.355Z"),
        ("2026-11-23T15:06:01.355", "2026-11-23T15:06:01.355Z"),
        ("2026-11-23T10:06:01.355-05:00", "2026-11-23T15:06:01.355Z"),
    ],
)
def test_instant_ignores_spelling(text: str, same_as: str) -> None:
    assert instant(text) == instant(same_as)


def test_instant_orders_across_offsets() -> None:
    """Later local time in an eastern offset can be an earlier instant."""
    assert instant("2026-11-23T16:00:00+02:00") < instant("2026-11-23T15:00:00Z")


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-13-01T00:00:00Z", None, 17])
def test_bad_date_is_an_upstream_error(bad: Any) -> None:
    with pytest.raises(UpstreamBadResponse, match="bad date"):
        instant(bad)


# buyers_newest_first


def test_buyers_newest_first_places_a_user_by_their_newest_purchase() -> None:
    purchases = [
        {"username": "a", "date": "2026-11-20T00:00:00.000Z"},
        {"username": "b", "date": "2026-11-21T00:00:00.000Z"},
        {"username": "a", "date": "2026-11-22T00:00:00.000Z"},
        {"username": "c", "date": "2026-11-21T00:00:00Z"},
    ]
    assert buyers_newest_first(purchases) == ("a", "b", "c")


def test_buyers_newest_first_of_nobody() -> None:
    assert buyers_newest_first([]) == ()


@given(purchases_of_a_product())
def test_buyers_newest_first_matches_reference(
    case: tuple[list[dict[str, Any]], list[datetime]],
) -> None:
    purchases, moments = case
    result = buyers_newest_first(purchases)
    assert len(set(result)) == len(result)
    assert list(result) == reference_buyers(purchases, moments)


@given(purchases_of_a_product(), st.randoms(use_true_random=False))
def test_buyers_newest_first_ignores_store_order(
    case: tuple[list[dict[str, Any]], list[datetime]], rnd: Any
) -> None:
    """The cached list must not depend on the order the upstream stores purchases."""
    purchases, _ = case
    shuffled = list(purchases)
    rnd.shuffle(shuffled)
    assert buyers_newest_first(shuffled) == buyers_newest_first(purchases)


# recent


def test_recent_excludes_only_the_exact_requester() -> None:
    buyers = ("Amiya.Hansen", "amiya.hansen", "Teresa59")
    assert recent(buyers, "Amiya.Hansen") == ["amiya.hansen", "Teresa59"]
    assert recent(buyers, "nobody") == list(buyers)


@given(st.lists(USERNAMES, unique=True).map(tuple), USERNAMES)
def test_recent_keeps_order_and_drops_requester(buyers: tuple[str, ...], requester: str) -> None:
    result = recent(buyers, requester)
    assert requester not in result
    assert result == [b for b in buyers if b != requester]


@given(
    st.lists(USERNAMES | st.text(max_size=3), min_size=0, max_size=80).map(tuple),
    USERNAMES,
)
def test_recent_is_the_same_for_long_and_repeating_buyer_lists(
    buyers: tuple[str, ...], requester: str
) -> None:
    """Short lists take a loop and long ones C-level scans: the same answer either way,
    even for a requester listed more than once."""
    assert recent(buyers, requester) == [b for b in buyers if b != requester]


# compose


def test_compose_example() -> None:
    products: dict[int, dict[str, Any] | None] = {
        1: {"id": 1, "face": "(._.)", "price": 10, "size": 12},
        2: {"id": 2, "face": "ヾ(⌐■_■)ノ", "price": 20, "size": 13},
        3: None,
        4: {},
        5: {"id": 5, "face": ":)", "price": 30, "size": 14},
    }
    buyers = {1: ("me",), 2: ("x", "me", "y"), 3: ("x", "y", "z"), 4: ("x",), 5: ("q", "me")}
    result = compose("me", [1, 2, 3, 4, 5], products, buyers)
    assert result == [
        {"id": 2, "face": "ヾ(⌐■_■)ノ", "price": 20, "size": 13, "recent": ["x", "y"]},
        {"id": 5, "face": ":)", "price": 30, "size": 14, "recent": ["q"]},
        {"id": 1, "face": "(._.)", "price": 10, "size": 12, "recent": []},
    ]
    assert [list(entry) for entry in result] == [["id", "face", "price", "size", "recent"]] * 3


def test_compose_user_without_purchases() -> None:
    assert compose("me", [], {}, {}) == []


def test_compose_does_not_change_the_upstream_objects() -> None:
    """Product objects are shared between requesters through the cache."""
    product = {"id": 1, "face": ":)", "price": 1, "size": 12}
    compose("me", [1], {1: product}, {1: ("x",)})
    assert product == {"id": 1, "face": ":)", "price": 1, "size": 12}


@st.composite
def compose_inputs(
    draw: st.DrawFn,
) -> tuple[str, list[int], dict[int, dict[str, Any] | None], dict[int, tuple[str, ...]]]:
    order = draw(st.lists(st.integers(1, 30), unique=True, max_size=5))
    products: dict[int, dict[str, Any] | None] = {}
    buyers: dict[int, tuple[str, ...]] = {}
    for pid in order:
        kind = draw(st.sampled_from(["product", "product", "none", "empty", "missing"]))
        if kind == "product":
            products[pid] = {
                "id": pid,
                "face": draw(st.text(FACE_CHARS, max_size=4)),
                "price": 1,
                "size": 12,
            }
        elif kind == "none":
            products[pid] = None
        elif kind == "empty":
            products[pid] = {}
        if kind == "product" or draw(st.booleans()):
            buyers[pid] = tuple(draw(st.lists(USERNAMES, unique=True)))
    return draw(USERNAMES), order, products, buyers


@given(compose_inputs())
def test_compose_properties(
    case: tuple[str, list[int], dict[int, dict[str, Any] | None], dict[int, tuple[str, ...]]],
) -> None:
    requester, order, products, buyers = case
    result = compose(requester, order, products, buyers)
    assert result == reference_compose(requester, order, products, buyers)
    # omitted products: exactly the non-empty ones survive
    assert sorted(e["id"] for e in result) == sorted(p for p in order if products.get(p))
    # order: most other buyers first; stable: ties in product_order
    for earlier, later in itertools.pairwise(result):
        assert len(earlier["recent"]) >= len(later["recent"])
        if len(earlier["recent"]) == len(later["recent"]):
            assert order.index(earlier["id"]) < order.index(later["id"])
    for entry in result:
        assert requester not in entry["recent"]
        assert len(set(entry["recent"])) == len(entry["recent"])


# render


def test_render_is_compact_utf8_without_escapes() -> None:
    entries = [{"id": 1, "face": "ヾ(⌐■_■)ノ\\", "price": 1, "size": 12, "recent": ["a"]}]
    body = render(entries)
    assert body == (
        '[{"id":1,"face":"ヾ(⌐■_■)ノ\\\\","price":1,"size":12,"recent":["a"]}]'.encode()
    )
    assert orjson.loads(body) == entries


def test_render_empty() -> None:
    assert render([]) == b"[]"


# the real upstream's data


def brute_force_answer(data: dict[str, Any], username: str) -> list[dict[str, Any]]:
    """The endpoint's answer computed directly from a full dump, without the module."""
    mine = [p for p in data["purchases"] if p["username"] == username][:5]
    entries: list[tuple[int, dict[str, Any]]] = []
    seen: list[int] = []
    for purchase in mine:
        pid = purchase["productId"]
        if pid in seen:
            continue
        seen.append(pid)
        product = next((p for p in data["products"] if p["id"] == pid), None)
        if product is None:
            continue
        newest: dict[str, datetime] = {}
        for p in data["purchases"]:
            if p["productId"] == pid:
                when = datetime.strptime(p["date"], "%Y-%m-%dT%H:%M:%S.%f%z")
                newest[p["username"]] = max(when, newest.get(p["username"], when))
        others = sorted(
            (name for name in newest if name != username),
            key=lambda name: (-newest[name].timestamp(), name),
        )
        entries.append((len(seen), {**product, "recent": others}))
    entries.sort(key=lambda item: (-len(item[1]["recent"]), item[0]))
    return [entry for _, entry in entries]


def answer(data: dict[str, Any], username: str) -> bytes:
    """The module's functions wired as the endpoint wires them."""
    mine = [p for p in data["purchases"] if p["username"] == username][:5]
    order = product_ids(mine)
    by_id = {p["id"]: p for p in reversed(data["products"])}
    products = {pid: by_id.get(pid) for pid in order}
    buyers = {
        pid: buyers_newest_first(p for p in data["purchases"] if p["productId"] == pid)
        for pid in order
    }
    return render(compose(username, order, products, buyers))


def test_real_data_sets_are_present() -> None:
    """The comparison below must not pass by finding no data."""
    assert [path.name for path in DATA_SETS] == [
        "real-upstream-a.json",
        "real-upstream-b.json",
        "real-upstream-c.json",
    ]


@pytest.mark.parametrize("path", DATA_SETS, ids=lambda path: path.stem)
def test_every_user_of_the_real_data_sets(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    for user in data["users"]:
        name = user["username"]
        body = answer(data, name)
        expected = brute_force_answer(data, name)
        assert orjson.loads(body) == expected, name
        assert body == orjson.dumps(expected)
    assert answer(data, "no such user") == b"[]"
