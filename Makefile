# Quick start: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench bench-instructions clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(STAMP)
	$(BIN)/daw-popular demo

lint: $(STAMP)
	$(BIN)/ruff check daw_popular tests bench
	$(BIN)/ruff format --check daw_popular tests bench

typecheck: $(STAMP)
	$(BIN)/mypy daw_popular

unit: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

# CPU instructions per cold answer (valgrind's callgrind): steady where timings are not.
bench-instructions: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.instructions $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
