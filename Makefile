# The two commands a new user needs: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration relay system browser bench-smoke contracts clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/orders demo

test: $(STAMP) lint typecheck chromium $(BIN)/promtool
	$(BIN)/python -m pytest

# The portal's browser tests (tests/browser) drive Debian's chromium: installed with apt-get when missing
# (through sudo unless root).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

# The alert rules' tests run promtool (tests/unit/test_deploy_observability.py). Only that binary is taken out
# of Debian's prometheus package, into .venv/bin: no Prometheus server is installed or started.
$(BIN)/promtool: | $(STAMP)
	@command -v promtool >/dev/null && ln -sf "$$(command -v promtool)" $@ || { \
		tmp=$$(mktemp -d) && cd $$tmp && \
		{ apt-get download -qq prometheus 2>/dev/null || { $(SUDO) apt-get update -qq && apt-get download -qq prometheus; }; } && \
		dpkg-deb --fsys-tarfile prometheus_*.deb | tar -xO ./usr/bin/promtool > $(CURDIR)/$@ && \
		chmod +x $(CURDIR)/$@ && rm -rf $$tmp; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# One test tier each (README, "Test tiers"): every test carries its directory's marker (tests/conftest.py).
unit integration relay system: $(STAMP)
	$(BIN)/python -m pytest -m $@

browser: $(STAMP) chromium
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
