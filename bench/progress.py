"""Progress lines on stderr: one line per step, a live counter while a step runs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Writes `==> step` lines; on a terminal, also a live line redrawn in place."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self.started = time.monotonic()
        self._drawn = 0.0

    def step(self, text: str) -> None:
        self._clear()
        self._stream.write(f"[{self._elapsed()}] {text}\n")
        self._stream.flush()

    def status(self, text: str) -> None:
        """Redraw the live line, at most ten times a second (terminals only)."""
        if not self._live:
            return
        now = time.monotonic()
        if now - self._drawn < 0.1:
            return
        self._drawn = now
        self._stream.write(f"\r\033[K    {text}")
        self._stream.flush()

    def timer(self, label: str) -> _Timer:
        return _Timer(self, label)

    def _clear(self) -> None:
        if self._live:
            self._stream.write("\r\033[K")

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"


class _Timer:
    """`tick(elapsed, total)` callback for a timed run, drawing a bar."""

    def __init__(self, progress: Progress, label: str) -> None:
        self._progress = progress
        self._label = label

    def __call__(self, elapsed: float, total: float) -> None:
        done = min(1.0, elapsed / total) if total > 0 else 1.0
        bar = "#" * int(done * 20)
        self._progress.status(f"{self._label} [{bar:<20}] {elapsed:4.1f}/{total:g} s")
