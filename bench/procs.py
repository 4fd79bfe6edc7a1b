"""The processes under test (simulator, service, limit servers, peers), and plain HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

PYTHON = sys.executable

# Cores: the servers under test on one, the load generator (and the simulator) on the other.
SERVER_CPU = 0
LOAD_CPU = 1


class ProcessError(Exception):
    """A process under test did not start or died."""


def cores() -> int:
    return len(os.sched_getaffinity(0))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    """A started server process on a known port, with its log file."""

    def __init__(self, name: str, argv: Sequence[str], port: int, log: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.log = log
        self._log_file: TextIO = log.open("w")
        self.popen = subprocess.Popen(
            self.argv, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        """Resident set size in bytes (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise ProcessError(f"{self.name}: no VmRSS")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far, in seconds."""
        # Fields 14 and 15 of /proc/<pid>/stat, counted after the command name, which
        # is in parentheses and may itself hold spaces or parentheses.
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the port accepts connections; ProcessError with the log if it died first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ProcessError(f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise ProcessError(f"{self.name} not listening after {timeout:g} s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        self._log_file.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log_file.close()


def pinned(argv: Sequence[str], cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


@contextlib.contextmanager
def running(
    name: str, argv: Sequence[str], port: int, logs: Path, *, cpu: int | None
) -> Iterator[Proc]:
    """Start a server process, wait until it listens, stop it on exit."""
    proc = Proc(name, pinned(argv, cpu), port, logs / f"{name}-{port}.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def simulator(
    logs: Path,
    *,
    users: int,
    products: int,
    seed: int = 1,
    latency_ms: float = 0.0,
    max_purchases_per_user: int = 10,
) -> contextlib.AbstractContextManager[Proc]:
    port = free_port()
    argv = [PYTHON, "-m", "daw_popular", "sim", "--port", str(port), "--seed", str(seed)]
    argv += ["--users", str(users), "--products", str(products)]
    argv += ["--max-purchases-per-user", str(max_purchases_per_user)]
    if latency_ms:
        argv += ["--latency-ms", f"{latency_ms:g}"]
    return running("sim", argv, port, logs, cpu=LOAD_CPU)


def service(
    logs: Path, upstream: str, options: Sequence[str] = ()
) -> contextlib.AbstractContextManager[Proc]:
    port = free_port()
    argv = [PYTHON, "-m", "daw_popular", "serve", "--port", str(port), "--upstream", upstream]
    argv += ["--log-level", "warning", *options]
    return running("service", argv, port, logs, cpu=SERVER_CPU)


def limit_server(logs: Path, response: bytes) -> contextlib.AbstractContextManager[Proc]:
    port = free_port()
    answer = logs / f"limit-response-{port}.http"
    answer.write_bytes(response)
    argv = [PYTHON, "-m", "bench.limit_server", "--port", str(port)]
    argv += ["--response-file", str(answer)]
    return running("limit", argv, port, logs, cpu=SERVER_CPU)


def cold_limit(logs: Path, upstream: str) -> contextlib.AbstractContextManager[Proc]:
    port = free_port()
    argv = [PYTHON, "-m", "bench.cold_limit", "--port", str(port), "--upstream", upstream]
    return running("cold-limit", argv, port, logs, cpu=SERVER_CPU)


def peer(logs: Path, name: str, response: bytes) -> contextlib.AbstractContextManager[Proc]:
    """Another Python server (`bench/peers.py`) answering every request with `response`."""
    port = free_port()
    answer = logs / f"peer-response-{port}.http"
    answer.write_bytes(response)
    argv = [PYTHON, "-m", "bench.peers", name, "--port", str(port)]
    argv += ["--response-file", str(answer)]
    return running(name, argv, port, logs, cpu=SERVER_CPU)


VARNISH_HINT = "varnishd not found: install it with `sudo apt-get install varnish` (Debian/Ubuntu)"


def varnish(logs: Path, backend_port: int) -> contextlib.AbstractContextManager[Proc]:
    """Varnish with its default rules in front of a backend, on the servers' core.

    Its cache keeps an answer for as long as the answer's `Cache-Control` allows.
    """
    binary = shutil.which("varnishd")
    if binary is None:
        raise ProcessError(VARNISH_HINT)
    port = free_port()
    argv = [binary, "-F", "-j", "none", "-n", str(logs / f"varnish-{port}")]
    argv += ["-a", f"127.0.0.1:{port}", "-b", f"127.0.0.1:{backend_port}", "-s", "malloc,64M"]
    return running("varnish", argv, port, logs, cpu=SERVER_CPU)


def raw_get(port: int, target: str, timeout: float = 30.0) -> bytes:
    """One GET on a fresh connection; the complete response exactly as it was sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ProcessError(f"connection closed before a response head: {data!r}")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = content_length(head)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ProcessError("connection closed inside a response body")
            body += chunk
        return head + b"\r\n\r\n" + body[:length]


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def get_json(port: int, target: str) -> Any:
    response = raw_get(port, target)
    if status_of(response) != 200:
        raise ProcessError(f"GET {target}: {response[:200]!r}")
    return json.loads(body_of(response))


def post(port: int, target: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return status_of(data)
