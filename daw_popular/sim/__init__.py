"""The DAW upstream simulator: the real data API's answers and quirks, counters and faults."""

from __future__ import annotations

from .app import RunningSimulator, Simulator, start_simulator
from .faults import Fault
from .store import Store

__all__ = ["Fault", "RunningSimulator", "Simulator", "Store", "start_simulator"]
