"""Tests for decoding request usernames and encoding upstream path segments."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from daw_popular.errors import ServiceError
from daw_popular.usernames import (
    MAX_USERNAME_BYTES,
    BadUsername,
    decode_segment,
    upstream_segment,
)

# Building Hypothesis' Unicode tables takes seconds on a fresh machine.
any_text = settings(suppress_health_check=[HealthCheck.too_slow])

CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]


def test_bad_username_is_a_400_service_error() -> None:
    error = BadUsername("Invalid username: x")
    assert isinstance(error, ServiceError)
    assert error.status == 400
    assert error.message == "Invalid username: x"


# decode_segment: what is accepted


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"Amiya.Hansen", "Amiya.Hansen"),
        (b"Jerod_Herman", "Jerod_Herman"),
        (b"%41miya.Hansen", "Amiya.Hansen"),
        (b"%41%6d%69ya", "Amiya"),
        (b"a%2Fb", "a/b"),
        (b"a%2fb", "a/b"),
        (b"..", ".."),
        (b"%2E%2E", ".."),
        (b"O'Hara", "O'Hara"),
        (b"with space", "with space"),
        (b"with%20space", "with space"),
        (b'"quoted"', '"quoted"'),
        (b"a+b", "a+b"),
        (b"%25", "%"),
        (b"%C3%A9", "é"),
        ("é".encode(), "é"),
        (b"%F0%9F%98%80", "😀"),
        (b"", ""),
        (b"x" * MAX_USERNAME_BYTES, "x" * MAX_USERNAME_BYTES),
        (b"%C3%A9" * (MAX_USERNAME_BYTES // 2), "é" * (MAX_USERNAME_BYTES // 2)),
    ],
)
def test_decode_accepts(raw: bytes, name: str) -> None:
    assert decode_segment(raw) == name


def test_decode_keeps_case_and_normal_form() -> None:
    """Upstream matching is exact, so two spellings stay two users."""
    assert decode_segment(b"AMIYA") != decode_segment(b"amiya")
    composed = decode_segment(b"%C3%A9")
    decomposed = decode_segment(b"e%CC%81")
    assert (composed, decomposed) == ("\u00e9", "e\u0301")


# decode_segment: what is rejected, and why


@pytest.mark.parametrize("raw", [b"%", b"%4", b"%zz", b"a%", b"a%g0", b"%%41", b"%4%41", b"%-1"])
def test_decode_rejects_bad_percent_encoding(raw: bytes) -> None:
    with pytest.raises(BadUsername, match=r"^Invalid username: bad percent-encoding"):
        decode_segment(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"%FF",
        b"%C3",
        b"%C3%28",
        b"%C0%AF",  # overlong `/`
        b"%E0%80%AF",  # overlong `/`, three bytes
        b"%ED%A0%80",  # surrogate U+D800
        b"%F4%90%80%80",  # above U+10FFFF
        b"\xff",
        b"\xc3",
        b"\xed\xa0\x80",
    ],
)
def test_decode_rejects_invalid_utf8(raw: bytes) -> None:
    with pytest.raises(BadUsername, match=r"^Invalid username: not valid UTF-8$"):
        decode_segment(raw)


@pytest.mark.parametrize("control", CONTROLS)
def test_decode_rejects_control_characters(control: str) -> None:
    encoded = "".join(f"%{b:02X}" for b in control.encode())
    for raw in (f"a{encoded}b".encode(), f"a{control}b".encode()):
        with pytest.raises(BadUsername, match=r"^Invalid username: contains a control character$"):
            decode_segment(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"x" * (MAX_USERNAME_BYTES + 1),
        b"%78" * (MAX_USERNAME_BYTES + 1),
        b"%C3%A9" * (MAX_USERNAME_BYTES // 2) + b"x",
        "é".encode() * (MAX_USERNAME_BYTES // 2) + b"x",
    ],
)
def test_decode_rejects_over_256_bytes(raw: bytes) -> None:
    with pytest.raises(BadUsername, match=r"^Invalid username: longer than 256 bytes$"):
        decode_segment(raw)


@any_text
@given(st.text(max_size=80))
def test_decode_of_percent_encoded_text(name: str) -> None:
    """Any fully percent-encoded name decodes to itself or is rejected for a stated reason."""
    raw = "".join(f"%{b:02x}" for b in name.encode()).encode()
    if len(name.encode()) > MAX_USERNAME_BYTES or re.search(r"[\x00-\x1f\x7f-\x9f]", name):
        with pytest.raises(BadUsername):
            decode_segment(raw)
    else:
        assert decode_segment(raw) == name


@given(st.binary(max_size=64))
@example(b"%")
@example(b"\x80")
def test_decode_of_arbitrary_bytes_is_a_name_or_bad_username(raw: bytes) -> None:
    """Never any exception other than BadUsername, and never a control character."""
    try:
        name = decode_segment(raw)
    except BadUsername as error:
        assert error.message.startswith("Invalid username: ")
    else:
        assert not re.search(r"[\x00-\x1f\x7f-\x9f]", name)
        assert len(name.encode()) <= MAX_USERNAME_BYTES


# upstream_segment


@pytest.mark.parametrize(
    ("name", "segment"),
    [
        ("Amiya.Hansen", "Amiya.Hansen"),
        ("Jerod_Herman", "Jerod_Herman"),
        ("O'Hara", "O'Hara"),
        ("a-b~c", "a-b~c"),
        ("!$&'()*+,;=:@", "!$&'()*+,;=:@"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...", "..."),
        ("../admin", "..%2Fadmin"),
        ("a/b", "a%2Fb"),
        ("a?b#c", "a%3Fb%23c"),
        ("100%", "100%25"),
        ("with space", "with%20space"),
        ("a\r\nHost: x", "a%0D%0AHost:%20x"),
        ("\x00", "%00"),
        ('"<>\\^`{|}[]', "%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D"),
        ("é", "%C3%A9"),
        ("😀", "%F0%9F%98%80"),
        ("", ""),
    ],
)
def test_upstream_segment(name: str, segment: str) -> None:
    assert upstream_segment(name) == segment


@any_text
@given(st.text())
@example(".")
@example("..")
@example("%2E")
def test_upstream_segment_is_one_safe_segment(name: str) -> None:
    segment = upstream_segment(name)
    assert all(0x21 <= ord(c) <= 0x7E for c in segment)
    assert not set(segment) & set("/?#")
    assert re.fullmatch(r"(?:[^%]|%[0-9A-F]{2})*", segment)
    assert segment not in (".", "..")
    assert unquote(segment, errors="strict") == name


@any_text
@given(st.text(max_size=80))
def test_upstream_segment_round_trips_through_decode(name: str) -> None:
    """What we would accept from a client survives the trip to the upstream unchanged."""
    try:
        accepted = decode_segment(name.encode())
    except BadUsername:
        return
    assert decode_segment(upstream_segment(accepted).encode()) == accepted
