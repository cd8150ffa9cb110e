# paymesh: the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: run test lint proto bench image install services clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## Start the embedded platform: every service, SQLite under var/, gateway on :8000.
run: install
	$(BIN)/paymesh up

## Install, start what the tests need, run the whole suite: on both cores, then the
## tests that measure time or load (marked serial) alone.
test: install services
	$(BIN)/pytest -n 2 --dist loadgroup -m "not serial"
	$(BIN)/pytest -m serial

## Make sure PostgreSQL and Redis answer on 127.0.0.1 (starts them if installed but stopped).
services:
	@bash tools/ensure-services.sh

lint: install
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -p no:cacheprovider tests/unit/test_code_shape.py tests/unit/test_event_contract.py tests/unit/test_import_boundaries.py

## Regenerate src/paymesh/contracts from proto/.
proto: install
	$(BIN)/python tools/genproto.py

## Benchmarks print numbers; they never assert on time.
bench: install services
	$(BIN)/python bench/layers.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/e2e.py --shape embedded
	$(BIN)/python bench/e2e.py --shape distributed
	$(BIN)/python bench/risk.py
	$(BIN)/python bench/webhooks.py

## Build the one paymesh image (podman; BASE_IMAGE=... to use a local base).
image:
	podman build -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t paymesh:dev .

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
