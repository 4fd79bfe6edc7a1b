"""The real upstream's request-to-answer logic, without I/O: method, raw target in, answer out.

Routing follows the real program's router (`http-hash`): the pathname is split on
`/`, empty segments are skipped, so `/api//users/` is the user list, and a parameter is
the raw segment (never percent-decoded). A matched route answers only GET; any other
method gets `405` with the router's plain message and no `Allow` header. Everything
else is `404 Resource Not Found` without a `Content-Type`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .nodejs import Crash, or_default, parse_int, parse_query, slice_bounds, split_url
from .store import Store

# Route names, also the keys of the simulator's per-route counters.
USERS = "users"
USER = "user"
PRODUCTS = "products"
PRODUCT = "product"
BY_USER = "by_user"
BY_PRODUCT = "by_product"
OTHER = "other"
ROUTES = (USERS, USER, PRODUCTS, PRODUCT, BY_USER, BY_PRODUCT, OTHER)

JSON = b"application/json"
DEFAULT_LIMIT = 10.0

# Node's HTTP parser refuses request targets with bytes outside the visible ASCII range.
_INVALID_TARGET = re.compile(rb"[^\x21-\x7e]")


# Not frozen: one is made per request, and a frozen dataclass pays an
# `object.__setattr__` per field. Nothing changes an answer once made.
@dataclass(slots=True)
class Answer:
    """What the real program would send: status, body, `Content-Type` (None: none).

    `crash` marks a request the real program dies on: no answer, the connection drops.
    `close` asks for the connection to be closed after the answer.
    """

    route: str
    status: int
    body: bytes
    content_type: bytes | None = None
    crash: bool = False
    close: bool = False


NOT_FOUND = Answer(OTHER, 404, b"Resource Not Found")
BAD_TARGET = Answer(OTHER, 400, b"", close=True)
CRASH = Answer(OTHER, 0, b"", crash=True)
_NOT_ALLOWED = b"405 Method Not Allowed"
_EMPTY = b"{}"


def _not_allowed(route: str) -> Answer:
    return Answer(route, 405, _NOT_ALLOWED)


_NOT_ALLOWED_BY_ROUTE = {route: _not_allowed(route) for route in ROUTES}


def answer(store: Store, method: str, path: bytes, query: bytes) -> Answer:
    """Answer one request; `path` and `query` are the raw bytes around the first `?`."""
    if _INVALID_TARGET.search(path) or _INVALID_TARGET.search(query):
        return BAD_TARGET
    target = (path + b"?" + query if query else path).decode("ascii")
    try:
        pathname, search = split_url(target)
    except Crash:
        return CRASH
    segments = [s for s in pathname.split("/") if s]
    route, param = _match(segments)
    if route is OTHER:
        return NOT_FOUND
    if method != "GET":
        return _NOT_ALLOWED_BY_ROUTE[route]
    if route is USER:
        return Answer(USER, 200, store.user_bodies.get(param, _EMPTY), JSON)
    if route is PRODUCT:
        body = store.product_bodies.get(parse_int(param), _EMPTY)
        return Answer(PRODUCT, 200, body, JSON)
    if route is USERS:
        items = store.user_items
    elif route is PRODUCTS:
        items = store.product_items
    elif route is BY_USER:
        items = store.by_user.get(param, [])
    else:
        items = store.by_product.get(parse_int(param), [])
    return Answer(route, 200, _list_body(_LIST_KEYS[route], items, search), JSON)


_LIST_KEYS = {
    USERS: b'{"users":[',
    PRODUCTS: b'{"products":[',
    BY_USER: b'{"purchases":[',
    BY_PRODUCT: b'{"purchases":[',
}


def _match(segments: list[str]) -> tuple[str, str]:
    """The route for a path's non-empty segments, and its parameter ("" when none)."""
    count = len(segments)
    if count < 2 or count > 4 or segments[0] != "api":
        return OTHER, ""
    second = segments[1]
    if second == "users":
        return (USERS, "") if count == 2 else (USER, segments[2]) if count == 3 else (OTHER, "")
    if second == "products":
        if count == 2:
            return PRODUCTS, ""
        return (PRODUCT, segments[2]) if count == 3 else (OTHER, "")
    if second == "purchases" and count == 4:
        if segments[2] == "by_user":
            return BY_USER, segments[3]
        if segments[2] == "by_product":
            return BY_PRODUCT, segments[3]
    return OTHER, ""


def _list_body(prefix: bytes, items: list[bytes], search: str | None) -> bytes:
    """`{key: items.slice(skip, limit + skip)}` with the real program's parsing of both."""
    query = parse_query(search)
    limit = or_default(parse_int(query.get("limit")), DEFAULT_LIMIT)
    skip = or_default(parse_int(query.get("skip")), 0.0)
    start, end = slice_bounds(len(items), skip, limit + skip)
    return b"%b%b]}" % (prefix, b",".join(items[start:end]))
