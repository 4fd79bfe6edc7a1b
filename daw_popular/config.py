"""Service settings: one frozen dataclass, the single source of flags, env vars and help.

Every field becomes `--field-name` on `daw-popular serve` and is also read from
the environment as `DAW_POPULAR_FIELD_NAME`; a flag wins over the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .server import Limits

ENV_PREFIX = "DAW_POPULAR_"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """Bytes from `1048576`, `512KiB`, `256MB`, `1G` (binary multiples)."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256MiB)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "")[:1].lower()])


def parse_workers(text: str) -> int:
    """A worker count, or `auto` for one per CPU core."""
    if text == "auto":
        return len(os.sched_getaffinity(0))
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("workers must be at least 1")
    return value


def parse_seconds(text: str) -> float:
    """A time limit: a positive number of seconds (a zero or negative one would refuse
    every upstream call)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be positive and finite, not {text!r}")
    return value


def _opt(default: Any, help: str, *, parse: Any = None, group: str = "service") -> Any:
    return field(default=default, metadata={"help": help, "parse": parse, "group": group})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `serve` can be told. Times in seconds, sizes in bytes."""

    host: str = _opt("127.0.0.1", "address to listen on")
    port: int = _opt(8080, "port to listen on")
    upstream: str = _opt("http://127.0.0.1:8000", "base URL of the DAW data API")
    workers: int = _opt(1, "worker processes (`auto`: one per core)", parse=parse_workers)

    user_ttl: float = _opt(600.0, "seconds a known user stays fresh", group="cache")
    unknown_user_ttl: float = _opt(30.0, "seconds an unknown user stays cached", group="cache")
    purchases_ttl: float = _opt(30.0, "seconds purchase lists stay fresh", group="cache")
    product_ttl: float = _opt(600.0, "seconds a product stays fresh", group="cache")
    response_ttl: float = _opt(
        30.0, "seconds a finished answer stays fresh (0: compose every time)", group="cache"
    )
    stale_while_revalidate: float = _opt(
        60.0, "seconds past freshness an entry is served while one refresh runs", group="cache"
    )
    stale_if_error: float = _opt(
        600.0, "seconds past freshness an entry is served when the upstream fails", group="cache"
    )
    xfetch_beta: float = _opt(
        1.0, "XFetch early-refresh eagerness (0 turns early refresh off)", group="cache"
    )
    cache_bytes: int = _opt(
        256 * 1024**2, "in-process cache size (e.g. 256MiB)", parse=parse_size, group="cache"
    )
    max_age: int = _opt(15, "Cache-Control max-age sent to clients", group="cache")
    client_stale_while_revalidate: int = _opt(
        30, "Cache-Control stale-while-revalidate sent to clients", group="cache"
    )
    not_found_max_age: int = _opt(10, "Cache-Control max-age of unknown-user 404s", group="cache")

    page_size: int = _opt(1000, "page size when listing all buyers of a product", group="upstream")
    upstream_connections: int = _opt(
        100, "keep-alive connections to the upstream", group="upstream"
    )
    upstream_queue: int = _opt(
        2000, "upstream calls that may wait for a connection", group="upstream"
    )
    connect_timeout: float = _opt(
        1.0, "seconds to connect to the upstream", group="upstream", parse=parse_seconds
    )
    read_timeout: float = _opt(
        1.0, "seconds for one upstream answer", group="upstream", parse=parse_seconds
    )
    deadline: float = _opt(
        2.0, "seconds budget for one whole request", group="upstream", parse=parse_seconds
    )
    retries: int = _opt(1, "retries of a failed idempotent upstream call", group="upstream")
    breaker_failures: int = _opt(
        5, "consecutive upstream failures that open the breaker", group="upstream"
    )
    breaker_reset: float = _opt(5.0, "seconds the breaker stays open", group="upstream")
    max_response_bytes: int = _opt(
        8 * 1024**2, "largest upstream answer accepted", parse=parse_size, group="upstream"
    )

    request_timeout: float = _opt(10.0, "absolute deadline to receive a request", group="limits")
    keepalive_timeout: float = _opt(5.0, "idle keep-alive connections close after", group="limits")
    max_connections: int = _opt(16000, "open client connections per worker", group="limits")
    max_requests_per_connection: int = _opt(100_000, "then the connection closes", group="limits")
    max_request_line: int = _opt(8192, "longest request line (414 beyond)", group="limits")
    max_headers: int = _opt(64, "most header fields (431 beyond)", group="limits")
    max_header_bytes: int = _opt(8192, "largest header field (431 beyond)", group="limits")
    max_head_bytes: int = _opt(32768, "largest request head (431 beyond)", group="limits")
    max_body_bytes: int = _opt(65536, "largest body read and discarded", group="limits")
    send_timeout: float = _opt(10.0, "drop clients that do not read for", group="limits")
    max_pipelined: int = _opt(
        128, "answers owed on one connection before it stops reading", group="limits"
    )
    max_write_buffer: int = _opt(
        1024**2,
        "unsent bytes held for a client that does not read",
        parse=parse_size,
        group="limits",
    )
    shutdown_grace: float = _opt(10.0, "seconds to finish in-flight work on SIGTERM")

    redis_url: str = _opt("", "Redis URL for a shared cache (empty: in-process only)")
    redis_timeout: float = _opt(0.1, "seconds for one Redis call, then go without", group="redis")
    redis_lease: float = _opt(
        2.0, "seconds an instance holds a key's fetch lease at most", group="redis"
    )
    redis_lease_wait: float = _opt(
        0.5, "seconds to wait for another instance's fetch, then fetch unshared", group="redis"
    )
    redis_connections: int = _opt(64, "connections to Redis per worker", group="redis")
    redis_breaker_reset: float = _opt(
        2.0, "seconds Redis is skipped after repeated failures, then probed", group="redis"
    )
    log_level: str = _opt("info", "debug, info, warning or error", group="observability")
    log_json: bool = _opt(False, "structured JSON logs", group="observability")
    access_log: bool = _opt(False, "log every request", group="observability")

    def limits(self) -> Limits:
        """The server-core limits these settings describe."""
        names = {f.name for f in dataclasses.fields(Limits)}
        return Limits(**{n: getattr(self, n) for n in names if hasattr(self, n)})


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _parser_for(f: dataclasses.Field[Any]) -> Any:
    custom = f.metadata.get("parse")
    if custom is not None:
        return custom
    return {"int": int, "float": float, "str": str, "bool": _parse_bool}[str(f.type)]


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None) -> None:
    """One flag per setting, defaulting to the environment, then to the dataclass."""
    env = os.environ if env is None else env
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        group_name = f.metadata["group"]
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        var = ENV_PREFIX + f.name.upper()
        convert = _parser_for(f)
        default = f.default
        if var in env:
            try:
                default = convert(env[var])
            except (ValueError, argparse.ArgumentTypeError) as exc:
                parser.error(f"{var}: {exc}")
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default {f.default!r}; env {var})"
        if f.type == "bool" or f.type is bool:
            groups[group_name].add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        else:
            groups[group_name].add_argument(flag, type=convert, default=default, help=help_text)


def from_args(args: argparse.Namespace) -> Settings:
    return Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})
