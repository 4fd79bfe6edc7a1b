"""Test helpers: a raw HTTP/1.1 client and an independent reference for expected answers."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def free_port() -> int:
    """A port nothing listens on right now, for a server the test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


async def http(
    port: int,
    target: str | bytes,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> Answer:
    """One request on its own connection (Connection: close); the whole answer."""
    raw_target = target.encode() if isinstance(target, str) else target
    lines = [b"%s %s HTTP/1.1" % (method.encode(), raw_target), b"Host: test", b"Connection: close"]
    lines += [f"{k}: {v}".encode() for k, v in (headers or {}).items()]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        data = await reader.read()
    finally:
        writer.close()
    return parse(data, head_only=method == "HEAD")


def parse(data: bytes, *, head_only: bool = False) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    first, *rest = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in rest:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if not head_only and "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return Answer(int(first.split()[1]), headers, body)


def expected_answer(data: dict[str, list[dict[str, Any]]], username: str) -> list[Any] | None:
    """The answer computed by brute force from a full data dump; None for unknown users.

    Deliberately written without the service's code: scans everything, parses dates.
    """
    if username not in {user["username"] for user in data["users"]}:
        return None
    mine = [p for p in data["purchases"] if p["username"] == username][:5]
    product_ids: list[int] = []
    for purchase in mine:
        if purchase["productId"] not in product_ids:
            product_ids.append(purchase["productId"])
    products = {}
    for product in data["products"]:
        products.setdefault(product["id"], product)
    entries = []
    for pid in product_ids:
        if pid not in products:
            continue
        newest: dict[str, datetime] = {}
        for purchase in data["purchases"]:
            if purchase["productId"] != pid:
                continue
            when = datetime.fromisoformat(purchase["date"].replace("Z", "+00:00"))
            name = purchase["username"]
            if name not in newest or when > newest[name]:
                newest[name] = when
        others = [name for name in newest if name != username]
        others.sort(key=lambda name: (-newest[name].timestamp(), name))
        entries.append({**products[pid], "recent": others})
    entries.sort(key=lambda entry: -len(entry["recent"]))
    return entries
