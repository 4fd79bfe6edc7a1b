"""The Redis tier of the cache: values shared by every instance, one upstream fetch per key.

Theory of operation
-------------------
The in-process cache stays in front. Its `Loader` calls `SharedCache.load(key, fetch)`
only on a miss or a refresh, inside a fetch that is already single-flight per key in
this process, so Redis sees at most one look-up per key per instance at a time.

``load`` runs one Lua script, *claim*: the stored value if there is one, else an
attempt to take the key's lease (``SET lease token NX PX lease``). Then:

=====================  ==========================================================
claim answered         what this instance does
=====================  ==========================================================
a value                decode it; fresh only for what is left of its TTL
the lease              fetch upstream, store the value with its TTL and drop the
                       lease in one script (*store*); an error is never stored,
                       the lease is dropped (*release*, compare-and-delete)
"someone holds it"     poll *claim* every few ms: a value appears (a coalesced
                       wait), or the lease is freed and taken, or `lease_wait`
                       passes and this instance fetches itself **without storing**
                       (nginx's ``proxy_cache_lock_timeout`` does the same)
=====================  ==========================================================

Redis is an optimisation, never a dependency: every call has a short timeout, and a
failure, a timeout or an open breaker makes ``load`` call ``fetch`` directly, as if
there were no Redis. Failures feed a `CircuitBreaker`, so a dead Redis costs one
timeout per call only until it opens; a half-open probe lets sharing resume.

Entries are ``orjson([fetched_at, ttl, swr, sie, size]) + b"\\n" + payload`` under
``daw:v1:{kind:ident}``, the ident percent-encoded (so no separator, glob or
hash-tag character of a username reaches the key) and in braces, so a value and
its lease share a Redis Cluster slot. ``fetched_at`` is wall-clock time: a reader
on any machine keeps the value fresh for the rest of its TTL, no longer. An
answer's ``born`` (its Age) travels as wall-clock time too.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .breaker import BreakerStatistics, CircuitBreaker
from .breaker import State as BreakerState
from .errors import CircuitOpen
from .loader import Freshness
from .reply import Reply

T = TypeVar("T")

Fetch = Callable[[], Awaitable[tuple[Any, Freshness]]]
State = Literal["up", "down", "probing"]

NAMESPACE: Final = b"daw:v1:"
LEASE_SUFFIX: Final = b":lease"

# A local Redis answers in well under a millisecond; 5 ms between polls costs a
# waiter at most that much over the holder's store, at 200 polls/s per waiting key.
POLL_INTERVAL: Final = 0.005

# KEYS: value, lease. ARGV: token, lease ms. {1, value} | {2} (lease taken) | {0} (held).
_CLAIM: Final = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {0}
"""
# KEYS: value, lease. ARGV: entry, ttl ms, token ("" when no lease is held).
_STORE: Final = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
# KEYS: lease. ARGV: token. Only the holder may drop a lease: an expired lease may
# already belong to another instance.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_CLAIMED_VALUE: Final = 1
_CLAIMED_LEASE: Final = 2

# What a sick Redis raises: redis-py's errors, socket errors, our own timeout.
_FAILURES: Final = (RedisError, OSError, TimeoutError)
# What a corrupt or foreign entry raises while decoding (JSONDecodeError is a ValueError).
_UNREADABLE: Final = (ValueError, TypeError, KeyError, IndexError, AttributeError)


def data_key(kind: str, ident: str | int) -> bytes:
    """The Redis key of one value: `daw:v1:{kind:percent-encoded ident}`."""
    safe = quote(str(ident), safe="", errors="surrogatepass")
    return b"%s{%s:%s}" % (NAMESPACE, kind.encode("ascii"), safe.encode("ascii"))


# encoding


@dataclass(frozen=True, slots=True)
class Codec:
    """How one kind of value becomes bytes and back; `load` raises on a foreign shape."""

    dump: Callable[[Any], bytes]
    load: Callable[[bytes], Any]


def encode_entry(payload: bytes, freshness: Freshness, fetched_at: float) -> bytes:
    """An entry: the value's life times (fetched at `fetched_at`, wall clock) and payload."""
    head = orjson.dumps(
        [
            fetched_at,
            freshness.ttl,
            freshness.stale_while_revalidate,
            freshness.stale_if_error,
            freshness.size,
        ]
    )
    return head + b"\n" + payload


def decode_entry(raw: bytes, now: float) -> tuple[bytes, Freshness] | None:
    """Payload and freshness as of `now` (wall clock); None once the TTL is spent."""
    head, _, payload = raw.partition(b"\n")
    fetched_at, ttl, swr, sie, size = orjson.loads(head)
    # A writer whose clock runs ahead would otherwise lend the value extra life.
    remaining = ttl - max(0.0, now - fetched_at)
    if remaining <= 0.0:
        return None
    return payload, Freshness(
        ttl=remaining,
        stale_while_revalidate=swr,
        stale_if_error=sie,
        size=size,
        age=ttl - remaining,
    )


def _load_bool(data: bytes) -> bool:
    value = orjson.loads(data)
    if type(value) is not bool:
        raise TypeError("not a boolean")
    return value


def _load_ids(data: bytes) -> tuple[int, ...]:
    value = tuple(orjson.loads(data))
    if not all(type(item) is int for item in value):
        raise TypeError("not a list of integers")
    return value


def _load_names(data: bytes) -> tuple[str, ...]:
    value = tuple(orjson.loads(data))
    if not all(type(item) is str for item in value):
        raise TypeError("not a list of strings")
    return value


def _load_product(data: bytes) -> dict[str, Any] | None:
    value = orjson.loads(data)
    if value is not None and type(value) is not dict:
        raise TypeError("not an object")
    return value


def _dump_reply(reply: Reply) -> bytes:
    born = time.time() - (time.monotonic() - reply.born)
    etag = None if reply.etag is None else reply.etag.decode("latin-1")
    head = [
        reply.status,
        reply.content_type.decode("latin-1"),
        reply.cache_control.decode("latin-1"),
        etag,
        born,
    ]
    return orjson.dumps(head) + b"\n" + reply.body


def _load_reply(data: bytes) -> Reply:
    """The answer an entry holds, rebuilt as the service builds it, or a ValueError.

    An answer is served as it is, so an entry is checked whole: a body cut short or
    damaged fails its own ETag (a hash of the body, which `Reply.ok` makes again), a
    status other than the two an answer has is refused, and so is a `Cache-Control`
    value that could not be a header line.
    """
    head, _, body = data.partition(b"\n")
    status, _content_type, cache_control, etag, born = orjson.loads(head)
    if not (type(cache_control) is str and cache_control.isascii() and cache_control.isprintable()):
        raise ValueError("Cache-Control is not a visible ASCII string")
    if type(born) is not float and type(born) is not int:
        raise TypeError("born is not a number")
    born_here = time.monotonic() - max(0.0, time.time() - born)
    if status == 200:
        reply = Reply.ok(body, cache_control=cache_control.encode("ascii"), born=born_here)
        if type(etag) is not str or etag.encode("latin-1") != reply.etag:
            raise ValueError("the body does not match its ETag")
        return reply
    if status == 404 and etag is None:
        message = body.decode("utf-8")
        return Reply.not_found(message, cache_control=cache_control.encode("ascii"), born=born_here)
    raise ValueError(f"not an answer's status and validator: {status!r}, {etag!r}")


CODECS: Final[dict[str, Codec]] = {
    "answer": Codec(_dump_reply, _load_reply),
    "user": Codec(orjson.dumps, _load_bool),
    "purchases": Codec(orjson.dumps, _load_ids),
    "product": Codec(orjson.dumps, _load_product),
    "buyers": Codec(orjson.dumps, _load_names),
}


# the tier


@dataclass(frozen=True, slots=True)
class SharedStatistics:
    """A snapshot of the Redis tier's counters, for metrics and `/readyz`."""

    hits: int  # value found in Redis at the first look
    misses: int  # no value at the first look
    leases_won: int  # this instance fetched and stored
    leases_lost: int  # another instance held the lease at the first look
    waits: int  # loads answered by another instance's fetch after waiting
    fallbacks: int  # waited in vain, fetched without storing
    stored: int
    errors: int  # failed or timed-out Redis calls, unreadable entries
    bypassed: int  # Redis calls skipped because the breaker was open
    state: State
    breaker: BreakerStatistics


class _Down:
    """The outcome of a Redis call that failed, timed out or was not made."""


_DOWN: Final = _Down()


class SharedCache:
    """Read-through access to values in Redis, with cross-instance leases and a breaker."""

    __slots__ = (
        "_breaker",
        "_bypassed",
        "_claim",
        "_client",
        "_errors",
        "_fallbacks",
        "_hits",
        "_lease_ms",
        "_lease_wait",
        "_leases_lost",
        "_leases_won",
        "_misses",
        "_poll",
        "_release",
        "_store",
        "_stored",
        "_timeout",
        "_waits",
        "_wall",
    )

    def __init__(
        self,
        client: Redis,
        *,
        timeout: float = 0.1,
        lease: float = 2.0,
        lease_wait: float = 0.5,
        breaker: CircuitBreaker | None = None,
        poll: float = POLL_INTERVAL,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if min(timeout, lease, lease_wait, poll) <= 0:
            raise ValueError("timeout, lease, lease_wait and poll must be positive")
        self._client = client
        self._timeout = timeout
        self._lease_ms = max(1, round(lease * 1000))
        self._lease_wait = lease_wait
        self._poll = poll
        self._wall = wall
        self._breaker = breaker if breaker is not None else CircuitBreaker("redis")
        self._claim = client.register_script(_CLAIM)
        self._store = client.register_script(_STORE)
        self._release = client.register_script(_RELEASE)
        self._hits = self._misses = self._leases_won = self._leases_lost = 0
        self._waits = self._fallbacks = self._stored = self._errors = self._bypassed = 0

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        timeout: float = 0.1,
        lease: float = 2.0,
        lease_wait: float = 0.5,
        connections: int = 64,
        breaker: CircuitBreaker | None = None,
    ) -> SharedCache:
        """A tier over a bounded pool to `url`; nothing connects until the first call."""
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One immediate reconnect: after a Redis restart every pooled connection is
            # dead, and the first use of each should not count as Redis being down.
            retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),
            driver_info=None,
        )
        return cls(
            Redis.from_pool(pool),
            timeout=timeout,
            lease=lease,
            lease_wait=lease_wait,
            breaker=breaker,
        )

    async def close(self) -> None:
        await self._client.aclose()

    @property
    def state(self) -> State:
        """`up` (breaker closed), `down` (open: Redis skipped) or `probing` (half-open)."""
        state = self._breaker.state
        if state is BreakerState.CLOSED:
            return "up"
        return "down" if state is BreakerState.OPEN else "probing"

    def statistics(self) -> SharedStatistics:
        """Counters and state as of now."""
        return SharedStatistics(
            hits=self._hits,
            misses=self._misses,
            leases_won=self._leases_won,
            leases_lost=self._leases_lost,
            waits=self._waits,
            fallbacks=self._fallbacks,
            stored=self._stored,
            errors=self._errors,
            bypassed=self._bypassed,
            state=self.state,
            breaker=self._breaker.statistics(),
        )

    async def load(self, key: tuple[str, Any], fetch: Fetch) -> tuple[Any, Freshness]:
        """The value for `key` ((kind, ident)) from Redis, or from `fetch` (shared if we lead)."""
        kind, ident = key
        codec = CODECS[kind]
        value_key = data_key(kind, ident)
        lease_key = value_key + LEASE_SUFFIX
        token = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._lease_wait
        waited = False
        while True:
            claimed = await self._call(
                lambda: self._claim(keys=(value_key, lease_key), args=(token, self._lease_ms))
            )
            if isinstance(claimed, _Down):
                return await fetch()
            if claimed[0] == _CLAIMED_VALUE:
                found = self._decode(claimed[1], codec)
                if found is not None:
                    if waited:
                        self._waits += 1
                    else:
                        self._hits += 1
                    return found
                # Expired by the writer's clock, or unreadable: replace it, lease or not.
                if not waited:
                    self._misses += 1
                return await self._fetch_and_store(value_key, lease_key, "", fetch, codec)
            if not waited:
                self._misses += 1
            if claimed[0] == _CLAIMED_LEASE:
                self._leases_won += 1
                return await self._fetch_and_store(value_key, lease_key, token, fetch, codec)
            if not waited:
                self._leases_lost += 1
                waited = True
            if loop.time() + self._poll >= give_up:
                self._fallbacks += 1
                return await fetch()
            await asyncio.sleep(self._poll)

    async def _fetch_and_store(
        self, value_key: bytes, lease_key: bytes, token: str, fetch: Fetch, codec: Codec
    ) -> tuple[Any, Freshness]:
        try:
            value, freshness = await fetch()
        except Exception:
            if token:
                # Waiters elsewhere would otherwise sit out the whole lease: let one of
                # them take it now. The error itself is never stored.
                await self._call(lambda: self._release(keys=(lease_key,), args=(token,)))
            raise
        ttl_ms = int(freshness.ttl * 1000)
        try:
            entry = encode_entry(codec.dump(value), freshness, self._wall()) if ttl_ms else b""
        except TypeError:
            self._errors += 1
            entry = b""
        if entry:
            done = await self._call(
                lambda: self._store(keys=(value_key, lease_key), args=(entry, ttl_ms, token))
            )
            if not isinstance(done, _Down):
                self._stored += 1
        elif token:
            await self._call(lambda: self._release(keys=(lease_key,), args=(token,)))
        return value, freshness

    def _decode(self, raw: bytes, codec: Codec) -> tuple[Any, Freshness] | None:
        try:
            decoded = decode_entry(raw, self._wall())
            if decoded is None:
                return None
            payload, freshness = decoded
            return codec.load(payload), freshness
        except _UNREADABLE:
            self._errors += 1
            return None

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T | _Down:
        """`command()` within the timeout and through the breaker; `_DOWN` if it failed."""
        try:
            ticket = self._breaker.before_call()
        except CircuitOpen:
            self._bypassed += 1
            return _DOWN
        try:
            async with asyncio.timeout(self._timeout):
                result = await command()
        except _FAILURES:
            self._errors += 1
            self._breaker.record_failure(ticket)
            return _DOWN
        except BaseException:
            self._breaker.release(ticket)
            raise
        self._breaker.record_success(ticket)
        return result
