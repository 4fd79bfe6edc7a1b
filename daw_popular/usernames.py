"""Usernames in paths: decoding ours strictly, encoding the upstream's safely.

The username is the exact decoded string: no case folding and no Unicode
normalisation, because the upstream matches names exactly (two spellings are two
users). Percent-encoding is decoded everywhere, unreserved characters included
(RFC 3986, 6.2.2.2), so `%41miya` and `Amiya` are one key.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

from .errors import BadParameter, BadUsername
from .routing import decode_param

# Faker usernames are under 40 bytes; 256 leaves room for any real name while keeping
# cache keys and upstream request lines small (an upstream head over 16 KiB gets 431).
MAX_USERNAME_BYTES: Final = 256

# Printable ASCII without `%`: the usual name needs no decoding and no further checks.
_PLAIN: Final = re.compile(rb"[\x20-\x24\x26-\x7e]{0,%d}" % MAX_USERNAME_BYTES).fullmatch
# C0, DEL and C1: none can be shown or logged safely, and no real name has them.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]").search

# Sent as they are: the upstream does not percent-decode its paths, so `Amiya.Hansen`
# and `O'Hara` only match unencoded. `quote` always keeps letters, digits and `-._~`.
_UPSTREAM_SAFE: Final = "!$&'()*+,;=:@"
_UPSTREAM_PLAIN: Final = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@]+").fullmatch
# RFC 3986, 5.2.4: a lone `.` or `..` segment could be resolved away by a proxy.
_DOT_SEGMENTS: Final = {".": "%2E", "..": "%2E%2E"}


def decode_segment(raw: bytes) -> str:
    """The username from the raw path segment after `/api/recent_purchases/`."""
    if _PLAIN(raw) is not None:
        return raw.decode("ascii")
    try:
        name = decode_param(raw)
    except BadParameter as exc:
        raise BadUsername(f"Invalid username: {exc}") from None
    if len(name.encode("utf-8")) > MAX_USERNAME_BYTES:
        raise BadUsername(f"Invalid username: longer than {MAX_USERNAME_BYTES} bytes")
    if _CONTROL(name) is not None:
        raise BadUsername("Invalid username: contains a control character")
    return name


def upstream_segment(name: str) -> str:
    """`name` as exactly one path segment of an upstream URL, in printable ASCII."""
    dots = _DOT_SEGMENTS.get(name)
    if dots is not None:
        return dots
    if _UPSTREAM_PLAIN(name) is not None:
        return name
    return quote(name, safe=_UPSTREAM_SAFE)
