"""The build the suite runs on: compiled by mypyc (setup.py) or from the sources.

`make test` runs the suite twice and says which build each run must see
(DAW_POPULAR_COMPILED=1 or 0), so a compile step that silently did nothing, or a stale
extension left beside the sources, fails here rather than passing the wrong build.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import daw_popular

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from setup import COMPILED  # noqa: E402

sys.path.remove(str(ROOT))

EXPECTED = os.environ.get("DAW_POPULAR_COMPILED")


def is_extension(module: str) -> bool:
    where = importlib.import_module(f"daw_popular.{module}").__file__
    assert where is not None
    return where.endswith(tuple(EXTENSION_SUFFIXES))


@pytest.mark.parametrize("module", COMPILED)
def test_each_module_of_the_request_path_is_the_build_this_run_expects(module: str) -> None:
    assert EXPECTED in ("0", "1"), "run the suite through `make test` (DAW_POPULAR_COMPILED)"
    assert is_extension(module) == (EXPECTED == "1")


def test_compiled_tells_which_build_runs() -> None:
    assert daw_popular.compiled() == is_extension("service")


def test_the_modules_that_drive_coroutines_by_hand_stay_interpreted() -> None:
    """`eager` steps a coroutine with `send` and reads its future's flags: mypyc's
    coroutines do not behave as generators there (an exception raised in the first
    step escaped the task), so they are never compiled."""
    assert "eager" not in COMPILED and "singleflight" not in COMPILED
    assert not is_extension("eager") and not is_extension("singleflight")
