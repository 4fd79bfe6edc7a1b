"""Worker processes: N copies of the service on one port, under a small supervisor.

Theory of operation
-------------------
With one worker the service runs in this process. With more, this process becomes
a supervisor that serves nothing itself:

* it binds (but never listens on) an `SO_REUSEPORT` socket, which turns port 0 into
  a real port and holds it; every worker, after it starts, binds its own listening
  socket to that port with `SO_REUSEPORT`, so the kernel spreads connections over
  the workers and a dead worker's share moves to the others at once;
* it creates the directory where the workers' metrics meet (and removes it at exit);
* it waits for signals with `sigtimedwait` (no handlers, no event loop): SIGCHLD
  means a worker ended, and one that was not asked to stop is restarted: at once
  the first time, then after a backoff that doubles with each quick crash (0.1 s
  up to 5 s), so a crash loop does not spin; a worker that ran for `STABLE_AFTER`
  seconds starts the count anew;
* SIGTERM or SIGINT: SIGTERM to every worker, each drains within the grace period
  (`HttpServer.shutdown`); stragglers get SIGKILL a second later; exit status 0.

Workers run in their own process group, so a Ctrl-C at a terminal reaches only the
supervisor, which then stops them once, in order; and they ask the kernel for a
SIGTERM should the supervisor die without doing so.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import uvloop

from . import app as service_app
from . import metrics
from .config import Settings
from .server import bound_socket

log = logging.getLogger("daw_popular.workers")

SIGNALS: Final = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
BACKOFF_FIRST: Final = 0.1
BACKOFF_MAX: Final = 5.0
# A worker that ran this long was not crash-looping: its next crash restarts at once.
STABLE_AFTER: Final = 10.0
# After the grace period, how long a worker may take to exit before SIGKILL.
KILL_MARGIN: Final = 1.0
_PR_SET_PDEATHSIG: Final = 1


def run(settings: Settings) -> int:
    """`daw-popular serve`: in this process for one worker, supervised for more."""
    if settings.workers <= 1:
        uvloop.run(service_app.serve(settings))
        return 0
    return Supervisor(settings).run()


def backoff(crashes: int) -> float:
    """Seconds before restarting a worker after its `crashes`-th quick crash in a row."""
    if crashes <= 1:
        return 0.0
    delay: float = BACKOFF_FIRST * 2.0 ** (crashes - 2)
    return min(BACKOFF_MAX, delay)


@dataclass(slots=True)
class _Slot:
    """One worker position: its current process and its crash history."""

    index: int
    process: multiprocessing.process.BaseProcess | None = None
    started: float = 0.0
    crashes: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts, restarts and stops the worker processes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("fork")
        self._slots = [_Slot(i) for i in range(settings.workers)]
        self._stopping = False
        self._directory: Path | None = None
        self._port = settings.port

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        # Bound, never listening: holds the port (and makes port 0 real) for the workers.
        reserve = bound_socket(self.settings.host, self.settings.port, reuse_port=True)
        self._port = int(reserve.getsockname()[1])
        self._directory = Path(tempfile.mkdtemp(prefix="daw-popular-metrics-"))
        try:
            for slot in self._slots:
                self._start(slot)
            log.info(
                "daw-popular listening on http://%s:%d/ (%d workers, supervisor pid %d)",
                self.settings.host,
                self._port,
                len(self._slots),
                os.getpid(),
            )
            self._supervise()
            self._drain()
        finally:
            reserve.close()
            shutil.rmtree(self._directory, ignore_errors=True)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        return 0

    # the loop

    def _supervise(self) -> None:
        while not self._stopping:
            info = signal.sigtimedwait(SIGNALS, self._next_wait())
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                log.info("%s: stopping the workers", signal.Signals(info.si_signo).name)
                self._stopping = True
            self._reap()
            if not self._stopping:
                self._restart_due()

    def _next_wait(self) -> float:
        due = [slot.restart_at for slot in self._slots if slot.restart_at is not None]
        if not due:
            return 1.0
        return max(0.0, min(due) - time.monotonic())

    def _reap(self) -> None:
        for slot in self._slots:
            process = slot.process
            if process is None or process.is_alive():
                continue
            process.join()
            self._retire(process)
            slot.process = None
            if self._stopping:
                continue
            now = time.monotonic()
            slot.crashes = 1 if now - slot.started >= STABLE_AFTER else slot.crashes + 1
            delay = backoff(slot.crashes)
            slot.restart_at = now + delay
            log.warning(
                "worker %d (pid %s) exited with %s; restarting in %.1f s",
                slot.index,
                process.pid,
                process.exitcode,
                delay,
            )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.restart_at is not None and slot.restart_at <= now:
                slot.restart_at = None
                self._start(slot)

    def _drain(self) -> None:
        for slot in self._slots:
            if slot.process is not None and slot.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace + KILL_MARGIN
        for slot in self._slots:
            process = slot.process
            if process is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker %d (pid %s) did not drain in time", slot.index, process.pid)
                process.kill()
                process.join()
            self._retire(process)
            slot.process = None

    # one worker

    def _start(self, slot: _Slot) -> None:
        settings = dataclasses.replace(self.settings, port=self._port, workers=1)
        process = self._context.Process(
            target=_worker,
            args=(settings, str(self._directory)),
            name=f"daw-popular-worker-{slot.index}",
        )
        process.start()
        slot.process = process
        slot.started = time.monotonic()

    def _retire(self, process: multiprocessing.process.BaseProcess) -> None:
        if self._directory is not None and process.pid is not None:
            with contextlib.suppress(OSError):
                metrics.retire(self._directory, process.pid)


def _worker(settings: Settings, directory: str) -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    os.setpgid(0, 0)
    _die_with_parent()
    uvloop.run(service_app.serve(settings, reuse_port=True, metrics_dir=directory))


def _die_with_parent() -> None:
    # Linux only: a supervisor killed with SIGKILL cannot stop its workers itself.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
