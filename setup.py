"""Build hook: the service's request path compiled by mypyc, when it can be.

The sources stay plain, fully typed Python and run as they are without this step; mypyc
(mypy's compiler, with which black and mypy themselves ship) turns the modules below into
C extensions that run the same code with native calls and unboxed fields. Measured with
`make bench-instructions`: 1,310k -> 741k instructions per cold answer (bench/README.md;
611k after later changes, on a machine where 741k counted 729k).

    pip install .                              compiled if it can be, else the plain sources
    DAW_POPULAR_COMPILE=1 pip install .        compiled or failed (the Dockerfile)
    DAW_POPULAR_COMPILE=0 pip install .        the plain sources (the Makefile's editable install)
    DAW_POPULAR_COMPILE=1 python setup.py build_ext --inplace   beside the sources (make compile)

Without a C compiler, and unless DAW_POPULAR_COMPILE=1 asks for the compiled build, a
build warns and keeps the sources, as packages with optional C speed-ups do.

Left interpreted on purpose: `errors`, whose `BadUsername` has two bases (compiled, a
class attribute of such a class lost to its first base's); the rest runs once at
start-up, and the simulator is not the service (compiling its request path cut
its instructions per call by a fifth and moved no cold figure of the service).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

COMPILED = [
    "breaker",
    "cache",
    "conditional",
    "dawapi",
    "eager",
    "loader",
    "metrics",
    "popular",
    "reply",
    "resilience",
    "responses",
    "retry",
    "routing",
    "server",
    "service",
    "singleflight",
    "task_registry",
    "upstream",
    "usernames",
]


# "1": compiled or failed; "0": never; unset: compiled when it can be.
MODE = os.environ.get("DAW_POPULAR_COMPILE", "")


def ext_modules() -> list[Any]:
    """The compiled modules, or none (see MODE)."""
    if MODE == "0":
        return []
    try:
        from mypyc.build import mypycify

        # The shared runtime goes inside the package (`daw_popular.native__mypyc`), not at
        # the top level of site-packages, where it could clash with another project's.
        return mypycify(
            [f"daw_popular/{name}.py" for name in COMPILED], group_name="daw_popular.native"
        )
    except Exception as exc:  # mypyc missing, or refusing a module
        if MODE == "1":
            raise
        warnings.warn(f"daw-popular: not compiled, running from the sources ({exc})", stacklevel=1)
        return []


class OptionalBuildExt(build_ext):
    """build_ext that keeps the plain sources when the C compiler fails (unless MODE is "1")."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, ExecError, PlatformError) as exc:
            if MODE == "1":
                raise
            self.warn(f"daw-popular: not compiled, running from the sources ({exc})")


if __name__ == "__main__":  # as setuptools runs it; tests/test_build.py imports COMPILED
    setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
