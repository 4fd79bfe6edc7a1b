"""Property tests of the server core: pipelined streams split at random byte positions."""

from __future__ import annotations

from corpus.hostile import CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_requests import GLUED, Recorder
from test_server import FakeTransport, parse_responses

from daw_popular.server import HttpProtocol, HttpServer

# Cases whose refusal depends on seeing one chunk whole (documented in server.py).
SPLIT_SENSITIVE = {"version-rtsp"}
HOSTILE = [(name, raw, status) for name, raw, status in CASES if name not in SPLIT_SENSITIVE]

names = st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=8)


def valid(name: str) -> bytes:
    return b"GET /hello/%s HTTP/1.1\r\nHost: t\r\n\r\n" % name.encode()


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[bytes], list[str], int | None]:
    """Valid requests, maybe one hostile request, more valid ones; split into chunks."""
    before = draw(st.lists(names, max_size=6))
    hostile = draw(st.none() | st.sampled_from(HOSTILE))
    # Something must follow a hostile request: an HTTP/0.9 line alone could still be
    # the start of a request, and only the request deadline ends it (tested elsewhere).
    after = draw(st.lists(names, min_size=0 if hostile is None else 1, max_size=3))
    data = b"".join(valid(n) for n in before)
    if hostile is not None:
        data += hostile[1]
    data += b"".join(valid(n) for n in after)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    expected = before if hostile is not None else before + after
    return [c for c in chunks if c], expected, None if hostile is None else hostile[2]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_split_pipelines_keep_the_invariants(
    case: tuple[list[bytes], list[str], int | None],
) -> None:
    """One answer per complete request, in order; a refusal is last and closes."""
    chunks, expected, refusal = case
    recorder = Recorder()
    protocol = HttpProtocol(HttpServer(recorder))
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    for chunk in chunks:
        protocol.data_received(chunk)
    got = parse_responses(bytes(transport.written))
    bodies = [b for s, _, b in got if s == 200]
    assert bodies == [b"hello " + n.encode() for n in expected]
    # The handler only ever saw the valid requests, in order.
    assert [name for _, name in recorder.handled] == expected
    if refusal is None:
        assert len(got) == len(expected) and not transport.closed
    else:
        assert [s for s, _, _ in got] == [200] * len(expected) + [refusal]
        assert got[-1][1]["connection"] == "close" and transport.closed
        assert all("connection" not in h for _, h, _ in got[:-1])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_arbitrary_bytes_never_give_more_than_one_answer_per_request(
    noise: bytes, cuts: list[int]
) -> None:
    """Whatever the bytes: no exception escapes, any refusal is final and closes."""
    data = noise + GLUED
    recorder = Recorder()
    protocol = HttpProtocol(HttpServer(recorder))
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    points = sorted(c for c in cuts if c <= len(data))
    for a, b in zip([0, *points], [*points, len(data)], strict=True):
        protocol.data_received(data[a:b])
    got = parse_responses(bytes(transport.written))
    statuses = [s for s, _, _ in got]
    assert 500 not in statuses
    for index, (status, headers, _) in enumerate(got):
        if status >= 400 and status != 404:
            assert index == len(got) - 1 and headers["connection"] == "close"
            assert transport.closed
    assert len(recorder.dispatched) == len([s for s in statuses if s in (200, 404, 405)])
