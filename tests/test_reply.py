"""Pre-built replies: the body is held once, the 304 head only when asked for."""

from __future__ import annotations

import time
import tracemalloc

from daw_popular import responses
from daw_popular.reply import Reply
from daw_popular.server import Request

BODY = b'[{"id":1,"recent":["a"]}]' * 4000  # 100 KB: large beside any header


def _request(method: str = "GET", if_none_match: bytes | None = None) -> Request:
    return Request(method, b"/x", b"", [(b"Host", b"h")], "1.1", True, if_none_match)


def test_a_rendered_reply_holds_its_body_once() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        reply = Reply.ok(bytes(bytearray(BODY)), cache_control=b"public", born=time.monotonic())
        wire = reply.answer(_request())
        del wire
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1.2 * len(BODY)
    assert reply.body == BODY


def test_answers_full_head_and_not_modified_from_the_same_bytes() -> None:
    reply = Reply.ok(BODY, cache_control=b"public", born=time.monotonic())
    full = reply.answer(_request())
    head = reply.answer(_request("HEAD"))
    assert full == head + BODY and head.endswith(b"\r\n\r\n")
    assert reply.etag is not None
    not_modified = reply.answer(_request(if_none_match=reply.etag))
    assert not_modified.startswith(b"HTTP/1.1 304 ") and reply.etag in not_modified
    assert b"Content-Length" not in not_modified and not not_modified.endswith(BODY)
    assert reply.answer(_request()) is full


def test_the_wire_is_the_head_the_response_builder_gives_then_the_body() -> None:
    """`Reply` formats its head itself, for speed: the bytes must stay what
    `responses.head` builds from the same headers."""
    born = time.monotonic() - 100.5  # Age 100, far from a second's edge
    replies = [
        Reply.ok(BODY, cache_control=b"public, max-age=15", born=born),
        Reply.not_found("User with username of 'x' was not found", cache_control=b"no", born=born),
    ]
    for reply in replies:
        wire = reply.answer(_request())
        expected = responses.head(
            reply.status,
            reply._headers(),
            content_length=len(reply.body),
            content_type=reply.content_type,
        )
        assert wire == expected + reply.body
