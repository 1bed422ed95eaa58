# Everything a fresh machine needs is installed from here: `make run` and `make test` do all set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
SAM_VENV := .tools/sam
# checkov pins boto3==1.35.49, which the runtime's boto3 conflicts with: it lives in a venv of its own.
CHECKOV_VENV := .tools/checkov
# sam build needs an interpreter matching the Lambda runtime (python3.13); pyenv provides one on these machines.
PY313_DIR := $(shell dirname "$$(pyenv prefix 3.13.0 2>/dev/null)/bin/python3.13" 2>/dev/null)
export SAM_CLI_TELEMETRY := 0

.PHONY: bench setup run test lint typecheck template security fuzz faults layer-requirements unit build browser clean

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
test: setup lint typecheck template security layer-requirements unit build

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Each handler is checked on its own: they are all modules named `app`, as Lambda wants.
typecheck: setup
	$(BIN)/mypy
	for handler in functions/*/app.py; do $(BIN)/mypy --no-incremental "$$handler" || exit 1; done

# -c I: informational rules too (I3011: stateful resources must say what happens to them when the stack goes).
template: setup
	$(BIN)/cfn-lint -c I -- template.yaml

$(CHECKOV_VENV)/.installed: tools/checkov-requirements.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -r tools/checkov-requirements.txt
	touch $@

## Security checks: template IAM/encryption/secret tests and endpoint checks, checkov over the template (skips are
## justified in the resources' Metadata), bandit over the code, pip-audit over uv.lock (runtime + dev).
## bandit on sandbox/ skips B101 (asserts narrow types in local tooling, as ruff's S101 is off project-wide) and
## B311 (random drives the emulator's seeded simulation); every other finding is fixed or has an inline nosec reason.
## PIP_AUDIT_FLAGS=--strict also fails when pip-audit could not look a package up.
security: setup $(CHECKOV_VENV)/.installed
	$(BIN)/pytest -q tests/security
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet
	$(BIN)/bandit -q -r layers cli functions
	$(BIN)/bandit -q -r sandbox --skip B101,B311
	$(BIN)/python tools/pip_audit_lock.py $(PIP_AUDIT_FLAGS)

## Fuzzing with a bigger budget than the CI-sized run inside `make unit` (HYPOTHESIS_PROFILE=ci).
fuzz: setup
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-long} $(BIN)/pytest -q tests/fuzz

## The whole fault matrix: every fault profile (Amazon's side and AWS's), a sandbox run and a re-run each, every
## line item accounted for (tests/faults). `make unit` runs a CI-sized selection of it (FAULT_MATRIX=ci).
faults: setup
	FAULT_MATRIX=$${FAULT_MATRIX:-all} $(BIN)/pytest -q -m faults tests/faults

# The layer's requirements are the lock's runtime closure; a drift fails here.
layer-requirements: setup
	$(BIN)/uv export --frozen --no-dev --no-hashes --no-emit-project --no-header --quiet \
	  | diff -u layers/abrecon/requirements.txt - \
	  || { echo "layers/abrecon/requirements.txt is out of date: run 'make layer-lock'"; exit 1; }

layer-lock: setup
	$(BIN)/uv export --frozen --no-dev --no-hashes --no-emit-project --no-header --quiet > layers/abrecon/requirements.txt

unit: setup browser
	$(BIN)/pytest

build: $(SAM_VENV)/.installed
	PATH="$(PY313_DIR):$$PATH" $(SAM_VENV)/bin/sam build --template-file template.yaml --build-dir .aws-sam/build

# The end-to-end tests open the HTML report in headless Chromium: Debian's package, installed when it is missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

browser: $(CHROMIUM)

$(CHROMIUM):
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

## Performance: N = 15, 200, 2,000 invoices against the floor and the naive flow (about 30 minutes; not in CI).
bench: setup
	$(BIN)/python -m abrecon_sandbox.bench

clean:
	rm -rf .aws-sam .sandbox .pytest_cache .mypy_cache .ruff_cache .hypothesis
