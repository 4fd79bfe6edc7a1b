# Quick start: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit unit-compiled compile uncompile bench bench-instructions clean

# The request path compiled by mypyc beside its sources (setup.py); `make uncompile` undoes it.
NATIVE := $(VENV)/.compiled

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Editable and from the sources; `make compile` builds the extensions beside them, with
# setuptools from this venv (Python 3.12 and later no longer put it in a new venv).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools>=68'
	DAW_POPULAR_COMPILE=0 $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(NATIVE): $(STAMP) setup.py $(wildcard daw_popular/*.py)
	DAW_POPULAR_COMPILE=1 $(BIN)/python setup.py --quiet build_ext --inplace
	touch $@

compile: $(NATIVE)

uncompile:
	rm -f $(NATIVE) daw_popular/*.so
	rm -rf build

# Compiled when it can be; without a C compiler the demo runs from the sources.
run: $(STAMP)
	$(MAKE) --no-print-directory compile || echo "make run: mypyc build failed; serving from the sources"
	$(BIN)/daw-popular demo

lint: $(STAMP)
	$(BIN)/ruff check daw_popular tests bench setup.py
	$(BIN)/ruff format --check daw_popular tests bench setup.py

typecheck: $(STAMP)
	$(BIN)/mypy daw_popular

# The suite runs twice: on the plain sources (with coverage, which cannot see into compiled
# modules), then on the compiled build that `run`, `bench` and the image use. The image's
# own wheel build (tests/test_deploy.py) does not depend on this checkout's build: once is
# enough, in the compiled run.
unit: $(STAMP)
	$(MAKE) --no-print-directory uncompile
	DAW_POPULAR_COMPILED=0 $(BIN)/python -m pytest --cov --cov-report=term \
		--ignore=tests/test_deploy.py $(PYTEST_ARGS)

unit-compiled: $(STAMP)
	$(MAKE) --no-print-directory compile
	DAW_POPULAR_COMPILED=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint typecheck unit unit-compiled

bench: $(NATIVE)
	DAW_POPULAR_COMPILE=0 $(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

# CPU instructions per cold answer (valgrind's callgrind): steady where timings are not.
bench-instructions: $(NATIVE)
	DAW_POPULAR_COMPILE=0 $(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.instructions $(BENCH_ARGS)

clean: uncompile
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
