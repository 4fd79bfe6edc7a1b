"""Conditional GET: strong ETags from body bytes and `If-None-Match` evaluation.

The ETag depends on the body bytes alone, so it is the same in every process and
after every restart, and a cache in front of several instances sees one validator
per representation. Headers that are not part of the body never change it.
"""

from __future__ import annotations

import binascii
import hashlib
from typing import Final

# 128 bits: collisions between two bodies of one user are out of reach, and the tag
# stays short (24 characters of base64url).
_DIGEST_SIZE: Final = 16
# Compiled, C statics rather than attribute lookups on the modules at each answer.
_BLAKE2B: Final = hashlib.blake2b
_B2A_BASE64: Final = binascii.b2a_base64
# base64url, as `base64.urlsafe_b64encode` spells it; called directly, binascii saves the
# two interpreted calls of that wrapper on every answer composed.
_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
_WEAK: Final = b"W/"
_OWS: Final = b" \t"


def etag_for(body: bytes) -> bytes:
    """A strong entity-tag for `body`, quoted: `"<base64url of blake2b-128>"`."""
    digest = _BLAKE2B(body, digest_size=_DIGEST_SIZE).digest()
    encoded = _B2A_BASE64(digest, newline=False).translate(_URLSAFE)
    return b'"%s"' % encoded.rstrip(b"=")


def none_match(if_none_match: bytes, etag: bytes) -> bool:
    """True when `If-None-Match` says the client's copy is current: answer 304.

    RFC 9110, 13.1.2: `*` matches any current representation; otherwise a weak
    comparison (8.8.3.2) against each listed entity-tag. Malformed members are
    skipped, never fatal: a broken header must cost a full answer, not a 500.
    """
    if if_none_match == etag:
        return True
    opaque = etag[2:] if etag.startswith(_WEAK) else etag
    if opaque not in if_none_match:
        return if_none_match.strip(_OWS) == b"*"
    return opaque in _entity_tags(if_none_match)


def _entity_tags(value: bytes) -> list[bytes]:
    """The opaque-tags (quotes included) of the well-formed members of a list."""
    tags: list[bytes] = []
    end = len(value)
    pos = 0
    while pos < end:
        # RFC 9110, 5.6.1: empty list elements and whitespace around commas are allowed.
        while pos < end and value[pos] in b", \t":
            pos += 1
        if pos == end:
            break
        start = pos + 2 if value.startswith(_WEAK, pos) else pos
        close = value.find(b'"', start + 1) if value.startswith(b'"', start) else -1
        if close >= 0:
            after = close + 1
            while after < end and value[after] in _OWS:
                after += 1
            if after == end or value[after] == 0x2C:
                tags.append(value[start : close + 1])
                pos = after + 1
                continue
        comma = value.find(b",", pos)
        if comma < 0:
            break
        pos = comma + 1
    return tags
