"""Tests for ETags and If-None-Match evaluation."""

from __future__ import annotations

import base64
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daw_popular.conditional import etag_for, none_match

ETAG = etag_for(b'[{"id":1}]')
OTHER = etag_for(b'[{"id":2}]')

# etagc (RFC 9110, 8.8.3): %x21 / %x23-7E / obs-text, i.e. anything but `"`, controls, space.
ETAGC = st.sampled_from([bytes([c]) for c in (0x21, *range(0x23, 0x7F), 0x80, 0xFF)])
OPAQUE = st.lists(ETAGC, max_size=6).map(lambda chars: b'"' + b"".join(chars) + b'"')
OWS = st.sampled_from([b"", b" ", b"\t", b"  "])


# etag_for


def test_etag_is_quoted_base64url_of_a_128_bit_digest() -> None:
    assert re.fullmatch(rb'"[A-Za-z0-9_-]{22}"', ETAG)
    assert len(base64.urlsafe_b64decode(ETAG[1:-1] + b"==")) == 16


def test_etag_depends_on_body_only() -> None:
    assert etag_for(b"[]") == etag_for(b"[]")
    assert etag_for(b"[]") != etag_for(b"[] ")
    assert etag_for(b"") != etag_for(b"\x00")


def test_etag_is_the_same_in_another_process() -> None:
    """Hash randomisation or per-process keys would break validators across restarts."""
    code = "from daw_popular.conditional import etag_for; print(etag_for(b'[{\"id\":1}]').decode())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().encode() == ETAG


def test_etag_is_stable_across_versions() -> None:
    """Pinned value: a change of algorithm would invalidate every client's cache."""
    assert etag_for(b"[]") == b'"frs8fCqHsaL4p-1ynssEDQ"'


@given(st.binary(), st.binary())
def test_etags_differ_for_different_bodies(a: bytes, b: bytes) -> None:
    assert (etag_for(a) == etag_for(b)) == (a == b)


# none_match


@pytest.mark.parametrize(
    "header",
    [
        ETAG,
        b"W/" + ETAG,
        b"*",
        b" * ",
        b"%s, %s" % (OTHER, ETAG),
        b"%s,%s" % (ETAG, OTHER),
        b"W/%s ,\tW/%s" % (OTHER, ETAG),
        b" %s " % ETAG,
        b", ,%s," % ETAG,
        b'"a,b", %s' % ETAG,
        b"garbage, %s" % ETAG,
        b'W/"unterminated, %s' % ETAG,
        b"%sjunk, %s" % (OTHER, ETAG),
    ],
)
def test_none_match_true(header: bytes) -> None:
    assert none_match(header, ETAG)


@pytest.mark.parametrize(
    "header",
    [
        b"",
        b" ",
        b",",
        OTHER,
        b"W/" + OTHER,
        b"%s, %s" % (OTHER, OTHER),
        ETAG[1:-1],
        ETAG[:-1],
        b"w/" + ETAG,
        b"W/ " + ETAG,
        ETAG + b"x",
        b"x" + ETAG,
        ETAG + b" " + ETAG,
        b'"' + ETAG,
        b"**",
        b"*, " + OTHER,
        b"\x00\xff",
    ],
)
def test_none_match_false(header: bytes) -> None:
    assert not none_match(header, ETAG)


def test_none_match_weak_comparison_on_our_side() -> None:
    """RFC 9110, 8.8.3.2: W/ on either tag does not prevent a weak match."""
    assert none_match(ETAG, b"W/" + ETAG)
    assert none_match(b"W/" + ETAG, b"W/" + ETAG)


def test_another_users_etag_never_matches() -> None:
    assert not none_match(etag_for(b'[{"recent":["b"]}]'), etag_for(b'[{"recent":["a"]}]'))


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A well-formed If-None-Match list and the opaque-tags it contains."""
    tags = draw(st.lists(OPAQUE, min_size=1, max_size=5))
    members = [(b"W/" if draw(st.booleans()) else b"") + tag for tag in tags]
    value = b"".join(
        (b"," if i else b"") + draw(OWS) + member + draw(OWS) for i, member in enumerate(members)
    )
    return value, tags


@given(well_formed(), OPAQUE, st.booleans())
def test_none_match_against_reference(
    case: tuple[bytes, list[bytes]], ours: bytes, weak: bool
) -> None:
    value, tags = case
    etag = b"W/" + ours if weak else ours
    assert none_match(value, etag) == (ours in tags)


@given(well_formed(), st.integers(0, 5))
def test_none_match_finds_a_listed_tag_anywhere(case: tuple[bytes, list[bytes]], pick: int) -> None:
    value, tags = case
    assert none_match(value, tags[pick % len(tags)])


@given(st.binary(max_size=80), st.sampled_from([ETAG, b"W/" + ETAG]))
def test_none_match_on_junk_never_crashes_or_invents_a_match(junk: bytes, etag: bytes) -> None:
    """A match needs our exact opaque-tag in the header (or a bare `*`)."""
    result = none_match(junk, etag)
    if result:
        assert ETAG in junk or junk.strip(b" \t") == b"*"


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_none_match_malformed_members_are_skipped(before: bytes, after: bytes) -> None:
    """Junk members around ours cannot hide it when commas separate them."""
    header = before.replace(b'"', b"") + b"," + ETAG + b"," + after
    assert none_match(header, ETAG)
