"""The build the suite runs on: compiled by mypyc (setup.py) or from the sources.

`make test` runs the suite twice and says which build each run must see
(DAW_POPULAR_COMPILED=1 or 0), so a compile step that silently did nothing, or a stale
extension left beside the sources, fails here rather than passing the wrong build.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

import pytest
from setuptools import Distribution, Extension
from setuptools.errors import CCompilerError

import daw_popular


def _load_build_script() -> ModuleType:
    """setup.py as a module under another name, so its `setup()` call does not run."""
    path = Path(__file__).resolve().parent.parent / "setup.py"
    spec = importlib.util.spec_from_file_location("build_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_script = _load_build_script()
COMPILED: list[str] = build_script.COMPILED

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


@pytest.mark.parametrize("module", COMPILED)
def test_no_compiled_coroutine_waits_inside_an_except_or_finally_block(module: str) -> None:
    """A mypyc coroutine that awaits in an `except` block leaves the exception it caught
    set as the one being handled while it waits, for every other callback of the loop:
    their exceptions get it as `__context__`, and the server, which reads a parser
    callback's error from there, answered a malformed request 500 instead of 400. One
    that awaits in a `finally` block with an exception pending does not suspend there:
    the exception escaped the first step that `eager` runs by hand, out of its task."""
    source = Path(__file__).resolve().parent.parent / "daw_popular" / f"{module}.py"
    tree = ast.parse(source.read_text())
    blocks: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler):
            blocks.append(node)
        elif isinstance(node, ast.Try | ast.TryStar):
            blocks += node.finalbody
    waits = [
        f"{module}.py:{node.lineno}"
        for block in blocks
        for node in ast.walk(block)
        if isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith)
    ]
    assert waits == []


def build_with_a_failing_compiler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> list[Path]:
    """`OptionalBuildExt` on a one-line C extension, with `false` as the C compiler."""
    source = tmp_path / "tiny.c"
    source.write_text("int tiny;\n")
    monkeypatch.setenv("CC", "false")
    monkeypatch.setattr(build_script, "MODE", mode)
    dist = Distribution({"name": "tiny", "ext_modules": [Extension("tiny", [str(source)])]})
    command = build_script.OptionalBuildExt(dist)
    command.build_lib = str(tmp_path / "lib")
    command.build_temp = str(tmp_path / "temp")
    command.ensure_finalized()
    command.run()
    return list(tmp_path.glob("lib/*"))


@pytest.mark.parametrize("mode", ["", "0"])
def test_without_a_c_compiler_the_build_keeps_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    assert build_with_a_failing_compiler(tmp_path, monkeypatch, mode) == []


def test_a_required_compiled_build_fails_without_a_c_compiler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DAW_POPULAR_COMPILE=1 (the Dockerfile) never ships the slow build by accident."""
    with pytest.raises(CCompilerError):
        build_with_a_failing_compiler(tmp_path, monkeypatch, "1")


def test_compile_0_asks_mypyc_for_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_script, "MODE", "0")
    assert build_script.ext_modules() == []
