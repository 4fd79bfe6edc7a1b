"""Shared test fixtures: async tests run on uvloop without a plugin."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvloop


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests on a fresh uvloop event loop, as the service runs."""
    func: Callable[..., Any] = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    timeout = getattr(func, "_async_timeout", 60.0)

    async def guarded() -> None:
        await asyncio.wait_for(func(**kwargs), timeout)

    uvloop.run(guarded())
    return True


# The old generation is collected between tests, never during one. This process holds
# everything the suite has made so far (and coverage's data), and a collection of its
# old generation took 85-180 ms (measured with gc.callbacks over a whole run): longer
# than the slack of the timing bounds, in whichever test it fell. Each test runs with
# what came before it frozen, so its collections scan only its own objects, and every
# COLLECT_EVERY tests a full collection, between two of them, frees what they left.
COLLECT_EVERY = 50
_tests_since_collection = 0


@pytest.fixture(autouse=True)
def _old_generation_collected_between_tests() -> Iterator[None]:
    global _tests_since_collection
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        _tests_since_collection += 1
        if _tests_since_collection >= COLLECT_EVERY:
            _tests_since_collection = 0
            gc.collect()
