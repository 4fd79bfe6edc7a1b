"""The JavaScript and Node.js semantics the real upstream's answers depend on.

The real program reads `req.url` with Node's legacy `url.parse` (fast path for plain
paths; fragment split and auto-escaping when `#` or `@` appear), decodes the query with
`querystring.parse`, reads numbers with `parseInt(x, 10)` and cuts lists with
`Array.prototype.slice`. Each is reproduced here from Node 20's sources, so the
simulator answers odd requests the way the real program does, not the way Python would.
"""

from __future__ import annotations

import math
import re
from urllib.parse import unquote

NAN = math.nan

# ECMAScript StrWhiteSpaceChar: WhiteSpace and LineTerminator, which parseInt skips.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
_JS_SPACE += "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_PARSE_INT = re.compile(r"[" + _JS_SPACE + r"]*([+-]?)([0-9]*)")

# url.parse's fast path: a path and an optional query, no whitespace.
_SIMPLE_PATH = re.compile(r"^(//?(?!/)[^?\s]*)(\?[^\s]*)?$")
# `//user@host...` makes url.parse read a host; the real program then throws and exits.
_HOST_FORM = re.compile(r"^//[^@/]+@[^@/]+")
# url.parse's autoEscapeStr, applied on its slow path.
_AUTO_ESCAPE = str.maketrans(
    {
        "\t": "%09",
        "\n": "%0A",
        "\r": "%0D",
        " ": "%20",
        '"': "%22",
        "'": "%27",
        "<": "%3C",
        ">": "%3E",
        "\\": "%5C",
        "^": "%5E",
        "`": "%60",
        "{": "%7B",
        "|": "%7C",
        "}": "%7D",
    }
)
# querystring.parse reads at most this many `&`-separated pairs (its maxKeys default).
MAX_PAIRS = 1000


class Crash(Exception):
    """The real program would throw here and exit (a URL `url.parse` reads as a host)."""


def parse_int(text: str | None) -> float:
    """`parseInt(text, 10)`: leading whitespace, a sign, the longest run of digits.

    NaN when there are no digits; `undefined` (None) is the string "undefined".
    Huge values round to the nearest double, as in JavaScript, or become infinite.
    """
    if text is None:
        return NAN
    match = _PARSE_INT.match(text)
    assert match is not None  # the pattern matches the empty string
    sign, digits = match.groups()
    if not digits:
        return NAN
    value = float(digits)
    return -value if sign == "-" else value


def or_default(value: float, default: float) -> float:
    """`value || default` for a number: 0, -0 and NaN are falsy."""
    return default if value == 0 or value != value else value


def slice_bounds(length: int, start: float, end: float) -> tuple[int, int]:
    """The index range `Array.prototype.slice(start, end)` copies from an array."""
    return _relative(length, start), _relative(length, end)


def _relative(length: int, index: float) -> int:
    if index != index:
        return 0
    if index < 0:
        return 0 if index == -math.inf else max(length + int(index), 0)
    return length if index == math.inf else min(int(index), length)


def split_url(target: str) -> tuple[str, str | None]:
    """`url.parse(target)`: the pathname and the query string (None when absent).

    Raises `Crash` for targets the real program dies on.
    """
    if "\\" in target or "#" in target or "@" in target:
        rest, has_hash, has_at = _backslashes(target)
    else:  # the common case, without the copies
        rest, has_hash, has_at = target, False, False
    if not has_hash and not has_at:
        simple = _SIMPLE_PATH.match(rest)
        if simple is not None:
            search = simple.group(2)
            return simple.group(1), (search[1:] if search else None)
    if _HOST_FORM.match(rest):
        raise Crash(target)
    rest = rest.translate(_AUTO_ESCAPE)
    hash_at = rest.find("#")
    if hash_at >= 0:
        rest = rest[:hash_at]
    mark = rest.find("?")
    if mark >= 0:
        return rest[:mark] or "/", rest[mark + 1 :]
    return rest or "/", None


def _backslashes(target: str) -> tuple[str, bool, bool]:
    """Backslashes before the query become slashes (as browsers do); note `#` and `@`."""
    marks = [i for i in (target.find("?"), target.find("#")) if i >= 0]
    split = min(marks) if marks else len(target)
    head = target[:split]
    if "\\" in head:
        head = head.replace("\\", "/")
    return head + target[split:], "#" in target, "@" in head


def parse_query(query: str | None) -> dict[str, str]:
    """`querystring.parse(query)`, keeping the first value of a repeated key.

    `parseInt` of a repeated key's array reads its string form `"a,b"`, which gives
    the same number as the first value, so the first value stands for the array.
    """
    found: dict[str, str] = {}
    if not query:
        return found
    for pair in query.split("&", MAX_PAIRS)[:MAX_PAIRS]:
        if not pair:
            continue
        key, _, value = pair.partition("=")
        key = _unescape(key)
        if key not in found:
            found[key] = _unescape(value)
    return found


def _unescape(text: str) -> str:
    """`+` is a space; valid `%XX` are decoded, invalid ones kept; bad UTF-8 is U+FFFD."""
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    return unquote(text, errors="replace")
