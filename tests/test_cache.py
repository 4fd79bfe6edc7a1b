"""Tests for the byte-bounded segmented-LRU cache."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from daw_popular.cache import ENTRY_OVERHEAD, Cache, Entry


def entry(size: int, value: object = None) -> Entry[object]:
    return Entry(value, size, 0.0, 10.0, 10.0, 20.0, 0.1)


def filled(max_bytes: int, keys: str, size: int, *, hot: bool) -> Cache[str, object]:
    cache: Cache[str, object] = Cache(max_bytes)
    for key in keys:
        cache.put(key, entry(size, key))
        if hot:
            assert cache.get(key) is not None
    return cache


@pytest.mark.parametrize("count", [3_000, 22_000])
def test_entry_overhead_covers_the_measured_cost(count: int) -> None:
    """ENTRY_OVERHEAD is at least what an entry really costs beyond its key and value."""
    cache: Cache[str, bytes] = Cache(10**12)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        payload = 0
        for i in range(count):
            key = f"user.name{i:07d}"
            value = b"x" * (i % 200 + 1)
            payload += len(key) + len(value)
            now = i + 0.5
            cache.put(key, Entry(value, 1, now, now + 30.0, 30.0, 270.0, i / 1e3))
        for i in range(0, count, 2):
            cache.get(f"user.name{i:07d}")
        per_entry = (tracemalloc.get_traced_memory()[0] - before - payload) / count
    finally:
        tracemalloc.stop()
    assert 0.6 * ENTRY_OVERHEAD < per_entry <= ENTRY_OVERHEAD


@pytest.mark.parametrize(("max_bytes", "share"), [(0, 0.2), (-1, 0.2), (100, 0.0), (100, 1.0)])
def test_rejects_nonsense_limits(max_bytes: int, share: float) -> None:
    with pytest.raises(ValueError):
        Cache(max_bytes, probation_share=share)


def test_hot_set_survives_a_flood_of_one_shot_keys() -> None:
    """Keys used twice sit in protected, which a stream of new keys never reaches."""
    cache: Cache[str, object] = Cache(100_000)
    hot = [f"hot{i}" for i in range(60)]  # 60 KB of a 80 KB protected segment
    for key in hot:
        assert cache.get(key) is None
        cache.put(key, entry(1_000))
        assert cache.get(key) is not None
    for i in range(5_000):
        key = f"flood{i}"
        assert cache.get(key) is None
        cache.put(key, entry(1_000))
        assert cache.bytes_used <= cache.max_bytes
    assert all(cache.peek(key) is not None for key in hot)
    stats = cache.statistics()
    assert stats.evictions == 5_000 - 40  # the flood evicted only itself
    assert stats.bytes == 100_000 and stats.entries == 100


def test_protected_overflow_demotes_the_lru_to_probations_mru_end() -> None:
    cache = filled(100, "abcdefgh", 10, hot=True)  # protected a..h: 80 of 80 bytes
    assert cache.statistics().protected_bytes == 80
    cache.get("a")  # protected order now b..h, a
    cache.put("z", entry(10))
    cache.put("i", entry(10))  # probation: z, i (100 bytes in all)
    cache.get("i")  # promoted: protected overflows by 10, so b (its LRU) is demoted
    assert cache.statistics().protected_bytes == 80
    cache.put("y", entry(10))  # probation z, b, y: z is older than the demoted b
    assert cache.peek("z") is None
    assert cache.peek("b") is not None
    assert cache.peek("a") is not None
    assert cache.statistics().evictions == 1


def test_a_demoted_entry_can_be_promoted_again() -> None:
    cache = filled(100, "abcdefgh", 10, hot=True)
    cache.put("i", entry(10))
    cache.get("i")  # demotes a
    assert cache.get("a") is not None  # its second chance: promoted again, b demoted
    cache.put("y", entry(10))
    cache.put("x", entry(10))  # over by 10: b (probation's LRU) goes, a stays
    assert cache.peek("b") is None
    assert cache.peek("a") is not None


def test_refreshing_a_hot_key_keeps_it_protected() -> None:
    """A put of a new value for a protected key (a refresh) must not expose it to floods."""
    cache = filled(100, "ab", 10, hot=True)
    refreshed = entry(12, "new")
    cache.put("a", refreshed)
    assert cache.statistics().protected_bytes == 22
    for i in range(100):
        cache.put(f"flood{i}", entry(10))
    assert cache.peek("a") is refreshed


def test_entry_bigger_than_the_protected_share_is_not_promoted() -> None:
    """Promoting it would demote the whole hot set for the sake of one value."""
    cache = filled(100, "a", 10, hot=True)
    cache.put("big", entry(85))
    assert cache.get("big") is not None
    assert cache.statistics().protected_bytes == 10


def test_entry_larger_than_the_cap_is_refused_and_drops_the_old_value() -> None:
    cache = filled(100, "ab", 10, hot=False)
    assert cache.put("a", entry(101)) is False
    assert cache.peek("a") is None
    assert cache.bytes_used == 10 and len(cache) == 1


def test_entry_of_the_whole_cap_evicts_everything_else() -> None:
    """Any entry within the cap is stored, even if protected must give way."""
    cache = filled(100, "abcdefgh", 10, hot=True)
    assert cache.put("whole", entry(100)) is True
    assert cache.peek("whole") is not None
    assert len(cache) == 1 and cache.statistics().evictions == 8


def test_peek_neither_counts_nor_promotes() -> None:
    cache = filled(100, "a", 10, hot=False)
    assert cache.peek("a") is not None
    assert cache.peek("b") is None
    stats = cache.statistics()
    assert (stats.hits, stats.misses, stats.protected_bytes) == (0, 0, 0)


class CacheMachine(RuleBasedStateMachine):
    """Random get/put/pop sequences against a model of what may be in the cache."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: Cache[int, object] = Cache(1)
        self.protected_max = 0
        self.last: dict[int, Entry[object]] = {}  # the newest entry put per key
        self.hits = self.misses = self.evictions = 0

    @initialize(max_bytes=st.integers(1, 200), share=st.sampled_from([0.1, 0.2, 0.5, 0.9]))
    def start(self, max_bytes: int, share: float) -> None:
        self.cache = Cache(max_bytes, probation_share=share)
        self.protected_max = int(max_bytes * (1 - share))

    def stored(self) -> dict[int, Entry[object]]:
        return {k: e for k in self.last if (e := self.cache.peek(k)) is not None}

    def count_evictions(self, before: set[int], removed: int | None) -> None:
        self.evictions += len(before - set(self.stored()) - {removed})

    @rule(key=st.integers(0, 15), size=st.integers(0, 220))
    def put(self, key: int, size: int) -> None:
        before = set(self.stored())
        new = entry(size)
        stored = self.cache.put(key, new)
        self.last[key] = new
        assert stored == (size <= self.cache.max_bytes)
        assert self.cache.peek(key) is (new if stored else None)
        self.count_evictions(before, key)

    @rule(key=st.integers(0, 15))
    def get(self, key: int) -> None:
        expected = self.cache.peek(key)
        got = self.cache.get(key)
        assert got is expected
        assert got is None or got is self.last[key]
        if got is None:
            self.misses += 1
        else:
            self.hits += 1

    @precondition(lambda self: bool(self.last))
    @rule(data=st.data())
    def pop(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.last)))
        before = set(self.stored())
        expected = self.cache.peek(key)
        assert self.cache.pop(key) is expected
        assert self.cache.peek(key) is None
        self.count_evictions(before, key)

    @invariant()
    def byte_bound_holds(self) -> None:
        stored = self.stored()
        stats = self.cache.statistics()
        assert stats.bytes == self.cache.bytes_used == sum(e.size for e in stored.values())
        assert stats.bytes <= stats.max_bytes
        assert stats.protected_bytes <= self.protected_max
        assert stats.entries == len(self.cache) == len(stored)
        assert all(e is self.last[k] for k, e in stored.items())
        assert (stats.hits, stats.misses, stats.evictions) == (
            self.hits,
            self.misses,
            self.evictions,
        )


CacheMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
test_cache_state_machine = CacheMachine.TestCase
