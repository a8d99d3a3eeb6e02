# The two commands a new user needs: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration relay system bench-smoke contracts clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/orders demo

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# One test tier each (README, "Test tiers"): every test carries its directory's marker (tests/conftest.py).
unit integration relay system: $(STAMP)
	$(BIN)/python -m pytest -m $@

# An explicit target, so the benchmarks' pattern rule below does not run it as `python -m bench.smoke`.
bench-smoke: $(STAMP)
	$(BIN)/python -m pytest -m bench

# Regenerate the committed JSON Schemas, AsyncAPI and OpenAPI documents after changing contracts/ or the apps.
contracts: $(STAMP)
	$(BIN)/orders contracts export

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Benchmarks: `make bench-pipeline`, `make bench-relay`, ... (see docs/benchmarks.md); ARGS="--smoke" etc.
bench-%: $(STAMP)
	$(BIN)/python -m bench.$* $(ARGS)
