"""A small router compiled at start-up: exact paths and one trailing path parameter.

Matching is a dict lookup for exact paths and a `startswith` per parameter route,
so a request costs no regular expression. A path that exists for other methods
answers 405 with `Allow` (RFC 9110, 15.5.6); anything else 404.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

from . import responses
from .errors import BadParameter
from .server import Request, Result

RouteHandler = Callable[[Request, str], Result]
Converter = Callable[[bytes], str]

_BAD_ESCAPE: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def decode_param(raw: bytes) -> str:
    """Percent-decode a path segment as UTF-8 (RFC 3986, 2.1); BadParameter if invalid."""
    if b"%" in raw:
        if _BAD_ESCAPE.search(raw) is not None:
            raise BadParameter("bad percent-encoding (use %XX with two hex digits)")
        raw = unquote_to_bytes(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadParameter("not valid UTF-8") from None


@dataclass(frozen=True, slots=True)
class Route:
    """`pattern` is an exact path, or a prefix ending in `{name}` for one segment."""

    pattern: str
    handler: RouteHandler
    methods: tuple[str, ...] = ("GET", "HEAD")
    converter: Converter = decode_param
    # The route's label in metrics; the pattern when empty.
    name: str = ""


class Router:
    """Dispatches a request to its route; is itself a server `Handler`.

    `counts`, when given, gets the router's own answers (404, 405, 400) counted by
    (route name, status), `"unmatched"` for paths no route knows; only those cold
    branches touch it.
    """

    def __init__(
        self, routes: Iterable[Route], *, counts: dict[tuple[str, int], int] | None = None
    ) -> None:
        self._counts = counts
        self._exact: dict[bytes, Route] = {}
        self._prefixed: list[tuple[bytes, Route]] = []
        for route in routes:
            if route.pattern.endswith("}"):
                prefix = route.pattern[: route.pattern.rindex("{")]
                self._prefixed.append((prefix.encode("ascii"), route))
            else:
                self._exact[route.pattern.encode("ascii")] = route
        # Longest prefix first, so `/a/b/{x}` wins over `/a/{x}`.
        self._prefixed.sort(key=lambda item: -len(item[0]))

    def __call__(self, request: Request) -> Result:
        exact = self._exact.get(request.path)
        if exact is not None:
            if request.method not in exact.methods:
                return self._refuse(exact, 405, method_not_allowed(request, exact.methods))
            return exact.handler(request, "")
        found = self._match_prefixed(request.path)
        if found is None:
            return self._refuse(None, 404, not_found(request))
        route, raw = found
        if request.method not in route.methods:
            return self._refuse(route, 405, method_not_allowed(request, route.methods))
        try:
            param = route.converter(raw)
        except BadParameter as exc:
            return self._refuse(route, 400, bad_request(request, str(exc)))
        return route.handler(request, param)

    def _refuse(self, route: Route | None, status: int, answer: bytes) -> bytes:
        counts = self._counts
        if counts is not None:
            key = ("unmatched" if route is None else route.name or route.pattern, status)
            counts[key] = counts.get(key, 0) + 1
        return answer

    def _match_prefixed(self, path: bytes) -> tuple[Route, bytes] | None:
        for prefix, route in self._prefixed:
            if path.startswith(prefix):
                raw = path[len(prefix) :]
                if raw and b"/" not in raw:
                    return route, raw
        return None


def _head_only(request: Request) -> bool:
    return request.method == "HEAD"


def not_found(request: Request) -> bytes:
    return responses.text(404, "Not Found", head_only=_head_only(request))


def bad_request(request: Request, message: str) -> bytes:
    return responses.text(400, f"Bad Request: {message}", head_only=_head_only(request))


def method_not_allowed(request: Request, methods: tuple[str, ...]) -> bytes:
    allow = ", ".join(methods).encode("ascii")
    return responses.text(
        405,
        "Method Not Allowed",
        headers=[(b"Allow", allow)],
        head_only=_head_only(request),
    )
