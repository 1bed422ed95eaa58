# Everything a fresh machine needs is installed from here: `make run` and `make test` do all set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
SAM_VENV := .tools/sam
# sam build needs an interpreter matching the Lambda runtime (python3.13); pyenv provides one on these machines.
PY313_DIR := $(shell dirname "$$(pyenv prefix 3.13.0 2>/dev/null)/bin/python3.13" 2>/dev/null)
export SAM_CLI_TELEMETRY := 0

.PHONY: setup run test lint typecheck template layer-requirements unit build clean

setup: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv sync --frozen --quiet
	touch $@

$(SAM_VENV)/.installed: tools/sam-requirements.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q -r tools/sam-requirements.txt
	touch $@

## The main job on the embedded default: the whole pipeline against local AWS and the Amazon Business emulator.
run: setup
	$(BIN)/abrecon sandbox run --summary .sandbox/summary.json

## All checks: lint, types, template lint, layer pins, every test, and sam build.
test: setup lint typecheck template layer-requirements unit build

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Each handler is checked on its own: they are all modules named `app`, as Lambda wants.
typecheck: setup
	$(BIN)/mypy
	for handler in functions/*/app.py; do $(BIN)/mypy --no-incremental "$$handler" || exit 1; done

template: setup
	$(BIN)/cfn-lint template.yaml

# The layer's requirements are the lock's runtime closure; a drift fails here.
layer-requirements: setup
	$(BIN)/uv export --frozen --no-dev --no-hashes --no-emit-project --no-header --quiet \
	  | diff -u layers/abrecon/requirements.txt - \
	  || { echo "layers/abrecon/requirements.txt is out of date: run 'make layer-lock'"; exit 1; }

layer-lock: setup
	$(BIN)/uv export --frozen --no-dev --no-hashes --no-emit-project --no-header --quiet > layers/abrecon/requirements.txt

unit: setup
	$(BIN)/pytest

build: $(SAM_VENV)/.installed
	PATH="$(PY313_DIR):$$PATH" $(SAM_VENV)/bin/sam build --template-file template.yaml --build-dir .aws-sam/build

clean:
	rm -rf .aws-sam .sandbox .pytest_cache .mypy_cache .ruff_cache
