"""In-process cache bounded by bytes, with segmented-LRU eviction that resists key floods.

Theory of operation
-------------------
Entries live in one of two LRU segments (SLRU: Karedla, Love and Wherry, 1994):

* probation: every new key lands at its MRU end; eviction takes its LRU end first.
* protected: a key that is hit while on probation (its second use: the put was the
  first) moves here. This segment holds at most ``1 - probation_share`` of the byte
  budget; its overflow is demoted to probation's MRU end, so a once-hot key gets one
  more round before it can be evicted.

A flood of one-shot keys (a scan, a client inventing usernames) only churns probation,
so the hot set in protected survives it, where a plain LRU would be flushed by it.

Sizes are the caller's: the cache never measures values, it trusts ``Entry.size``.
A caller should charge ``len(value bytes) + len(key) + ENTRY_OVERHEAD``. An entry
larger than the whole budget is refused; any other entry is always stored, evicting
others (probation first, protected only when probation holds nothing else).

Every operation is O(1): two ``OrderedDict`` and a few integer counters. No locks:
the cache lives on one event loop and no method awaits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Bytes an entry costs beyond len(value) + len(key), measured with tracemalloc on
# CPython 3.11 (x86-64) for str keys and bytes values: the Entry object (from the
# sources 80 plus five distinct floats, 5 x 24; compiled by mypyc 128, its floats
# inside), the headers of the key str (49) and the value bytes (33), and the
# OrderedDict's table slot and list node (70-120, with the table's load factor).
# Measured totals ran from 372 to 423 from the sources; this is the worst plus a margin.
# tests/test_cache.py re-measures it, so a new Python or a new Entry field cannot make
# it silently wrong.
ENTRY_OVERHEAD: Final = 448


class Entry(Generic[V]):
    """A cached value with its cost in bytes and its life times (all on one clock).

    The two serve-stale windows are kept as lengths, not end times: most entries
    share the same configured lengths, so they cost a reference, not a float each.
    A plain class rather than a dataclass, so that mypyc compiles it (setup.py): it then
    keeps its floats unboxed, 8 bytes each. Compiled code that hands a float to a class
    left in Python makes a new 24-byte float object for it: RSS per cached user was
    4,347 bytes that way, 3,397 with this class compiled.
    """

    __slots__ = (
        "error_window",
        "fetch_time",
        "fresh_until",
        "plain_until",
        "size",
        "stale_window",
        "stored_at",
        "value",
    )

    def __init__(
        self,
        value: V,
        size: int,
        stored_at: float,
        fresh_until: float,
        stale_window: float,
        error_window: float,
        fetch_time: float,
        plain_until: float = 0.0,
    ) -> None:
        self.value = value
        self.size = size
        self.stored_at = stored_at
        self.fresh_until = fresh_until
        # Past `fresh_until`: served at once while one refresh runs.
        self.stale_window = stale_window
        # Past `fresh_until`: served only when a fetch has just failed.
        self.error_window = error_window
        # How long the fetch took: XFetch's delta, to refresh slow keys earlier.
        self.fetch_time = fetch_time
        # Until then a hit is a plain fresh hit, too far from expiry for XFetch to fire
        # (set by the loader; 0.0 sends every hit through the loader's full check).
        self.plain_until = plain_until

    @property
    def stale_until(self) -> float:
        """End of the stale-while-revalidate window."""
        return self.fresh_until + self.stale_window

    @property
    def error_until(self) -> float:
        """End of the stale-if-error window."""
        return self.fresh_until + self.error_window


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    """A snapshot of a cache's counters."""

    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    protected_bytes: int
    max_bytes: int


class Cache(Generic[K, V]):
    """A byte-bounded segmented-LRU map from keys to `Entry` objects."""

    __slots__ = (
        "_evictions",
        "_hits",
        "_misses",
        "_probation",
        "_probation_bytes",
        "_protected",
        "_protected_bytes",
        "_protected_max",
        "max_bytes",
    )

    def __init__(self, max_bytes: int, *, probation_share: float = 0.2) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        if not 0.0 < probation_share < 1.0:
            raise ValueError(f"probation_share must be in (0, 1), not {probation_share}")
        self.max_bytes = max_bytes
        # 20% probation is Caffeine's and Ristretto's split: enough room for a new key to
        # earn its second hit, too little for a scan to reach the hot set.
        self._protected_max = int(max_bytes * (1.0 - probation_share))
        self._probation: OrderedDict[K, Entry[V]] = OrderedDict()
        self._protected: OrderedDict[K, Entry[V]] = OrderedDict()
        self._probation_bytes = 0
        self._protected_bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def __len__(self) -> int:
        return len(self._probation) + len(self._protected)

    @property
    def bytes_used(self) -> int:
        """The sum of the sizes of the entries kept."""
        return self._probation_bytes + self._protected_bytes

    def get(self, key: K) -> Entry[V] | None:
        """The entry for `key`, counted as a use (it may be promoted); None on a miss."""
        entry = self._protected.get(key)
        if entry is not None:
            self._protected.move_to_end(key)
            self._hits += 1
            return entry
        entry = self._probation.get(key)
        if entry is None:
            self._misses += 1
            return None
        self._hits += 1
        if entry.size > self._protected_max:
            # Promoting it would demote the whole hot set to make room for one value.
            self._probation.move_to_end(key)
            return entry
        del self._probation[key]
        self._probation_bytes -= entry.size
        self._protected[key] = entry
        self._protected_bytes += entry.size
        if self._protected_bytes > self._protected_max:
            self._demote()
        return entry

    def peek(self, key: K) -> Entry[V] | None:
        """The entry for `key` without counting a use or touching its recency."""
        entry = self._protected.get(key)
        return entry if entry is not None else self._probation.get(key)

    def put(self, key: K, entry: Entry[V]) -> bool:
        """Store `entry`; False (and any older entry for `key` dropped) if it exceeds the cap."""
        if entry.size > self.max_bytes:
            self.pop(key)
            return False
        old = self._protected.get(key)
        if old is not None:
            # A refresh of a hot key keeps it hot: moving it to probation on every
            # refresh would expose the hot set to floods.
            self._protected[key] = entry
            self._protected.move_to_end(key)
            self._protected_bytes += entry.size - old.size
            if self._protected_bytes > self._protected_max:
                self._demote()
        else:
            old = self._probation.pop(key, None)
            if old is not None:
                self._probation_bytes -= old.size
            self._probation[key] = entry
            self._probation_bytes += entry.size
        if self._probation_bytes + self._protected_bytes > self.max_bytes:
            self._evict(key)
        return True

    def pop(self, key: K) -> Entry[V] | None:
        """Remove and return the entry for `key` (None if absent); not an eviction."""
        entry = self._protected.pop(key, None)
        if entry is not None:
            self._protected_bytes -= entry.size
            return entry
        entry = self._probation.pop(key, None)
        if entry is not None:
            self._probation_bytes -= entry.size
        return entry

    def statistics(self) -> CacheStatistics:
        """A snapshot of the counters, for metrics."""
        return CacheStatistics(
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            entries=len(self),
            bytes=self.bytes_used,
            protected_bytes=self._protected_bytes,
            max_bytes=self.max_bytes,
        )

    # eviction

    def _demote(self) -> None:
        protected, probation = self._protected, self._probation
        while self._protected_bytes > self._protected_max:
            key, entry = protected.popitem(last=False)
            self._protected_bytes -= entry.size
            probation[key] = entry
            self._probation_bytes += entry.size

    def _evict(self, keep: K) -> None:
        # `keep` was just stored and fits the cap on its own, so something else can
        # always go. If it is on probation it sits at the MRU end (put inserts there and
        # demotion moves it there last), so popping the LRU end spares it while
        # probation holds anything else.
        probation, protected = self._probation, self._protected
        while self._probation_bytes + self._protected_bytes > self.max_bytes:
            if len(probation) > 1 or (probation and keep not in probation):
                _, entry = probation.popitem(last=False)
                self._probation_bytes -= entry.size
            else:
                _, entry = protected.popitem(last=False)
                self._protected_bytes -= entry.size
            self._evictions += 1
