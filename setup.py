"""Build hook: with DAW_POPULAR_COMPILE=1, the service's request path is compiled by mypyc.

The sources stay plain, fully typed Python and run as they are without this step; mypyc
(mypy's compiler, with which black and mypy themselves ship) turns the modules below into
C extensions that run the same code with native calls and unboxed fields. Measured with
`make bench-instructions`: 1,310k -> 908k instructions per cold answer (bench/README.md).

    DAW_POPULAR_COMPILE=1 pip install .              a compiled wheel (the Dockerfile)
    DAW_POPULAR_COMPILE=1 python setup.py build_ext --inplace   beside the sources (make compile)

Left interpreted on purpose: `eager` and `singleflight` step coroutines by hand, which
mypyc's coroutines do not support (compiled, an exception raised in an eager first step
escaped its task); `usernames` and `errors` define exceptions with two bases (mypyc has
no multiple inheritance), and `routing` catches one of them; `metrics` failed at start-up
compiled (a module constant read before it was set) and costs little per answer; the
rest runs once at start-up, and the simulator is not the service.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import setup

COMPILED = [
    "breaker",
    "cache",
    "conditional",
    "dawapi",
    "loader",
    "popular",
    "reply",
    "resilience",
    "responses",
    "retry",
    "server",
    "service",
    "upstream",
]


def ext_modules() -> list[Any]:
    """The compiled modules when DAW_POPULAR_COMPILE=1, else none."""
    if os.environ.get("DAW_POPULAR_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    # The shared runtime goes inside the package (`daw_popular.native__mypyc`), not at
    # the top level of site-packages, where it could clash with another project's.
    return mypycify(
        [f"daw_popular/{name}.py" for name in COMPILED], group_name="daw_popular.native"
    )


if __name__ == "__main__":  # as setuptools runs it; tests/test_build.py imports COMPILED
    setup(ext_modules=ext_modules())
