"""Shared test fixtures: async tests run on uvloop without a plugin."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
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
