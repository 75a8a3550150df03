# tickhub: two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck check clean install soak abuse test-browser screenshot bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip's own progress is shown (not --quiet): the first install takes about a minute.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing tickhub and its packages into $(VENV) (first run or pyproject.toml changed; about a minute)..."
	@$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	@touch $(STAMP)
	@echo "installed into $(VENV)"

install: $(STAMP)

## Start the service on the simulated feed (ws://localhost:8081/ws/stream, http://localhost:8081/health)
run: $(STAMP)
	$(BIN)/tickhub serve

## Run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 4

## The dashboard, the JS client and the seed's examples in Chromium and Node
test-browser: $(STAMP)
	$(BIN)/python -m pytest -q tests/e2e/browser tests/e2e/test_js_client.py tests/e2e/test_seed_javascript.py

## Refresh docs/dashboard.png
screenshot: $(STAMP)
	TICKHUB_UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/e2e/browser -k screenshot

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

## Benchmark /ws/stream fan-out against raw picows, Node ws and Bun (bench/README.md); ARGS=--quick
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py $(ARGS)

## Soak test: thousands of clients churning for a minute, then leak and health checks
soak: $(STAMP)
	$(BIN)/python scripts/soak.py

## Abuse suite: reply amplification, non-reading clients, large frames, floods and churn against stated bounds; ARGS=--quick
abuse: $(STAMP)
	$(BIN)/python scripts/abuse.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests backend scripts
	$(BIN)/ruff format --check src tests backend scripts

typecheck: $(STAMP)
	$(BIN)/mypy

## Lint, types and tests
check: lint typecheck test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
