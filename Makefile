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

.DEFAULT_GOAL := help
.PHONY: help bench bench-large setup run test lint typecheck template security fuzz faults layer-requirements layer-lock \
	unit test-unit test-integration test-e2e build browser hooks pre-commit clean

# The test tiers by cost; together they are every folder under tests/ (tests/unit/test_test_tiers.py checks it).
UNIT_TESTS := tests/unit
INTEGRATION_TESTS := tests/integration tests/statemachine tests/sandbox tests/security tests/fuzz
E2E_TESTS := tests/e2e tests/faults

help: ## This list: every target and what it does (`make` alone prints it).
	@awk -F ':[^#]*## ' '/^[a-z][a-z0-9-]*:.*## / { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

setup: $(VENV)/.synced ## The dev venv .venv/ from uv.lock (uv sync; every other target does it first).

$(VENV)/.synced: pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv sync --frozen --quiet
	touch $@

$(SAM_VENV)/.installed: tools/sam-requirements.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q -r tools/sam-requirements.txt
	touch $@

# It ends by printing the path of the run's HTML report, exported with its PDFs: what finance would open.
run: setup ## The main job on the embedded default: the pipeline against local AWS and the Amazon Business emulator.
	$(BIN)/abrecon sandbox run --summary .sandbox/summary.json --export .sandbox/report

test: setup lint typecheck template security layer-requirements unit build ## All checks: lint, types, template lint, security, layer pins, every test, sam build.

lint: setup ## ruff check and ruff format --check.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Each handler is checked on its own: they are all modules named `app`, as Lambda wants.
typecheck: setup ## mypy --strict over the packages, then each handler on its own.
	$(BIN)/mypy
	for handler in functions/*/app.py; do $(BIN)/mypy --no-incremental "$$handler" || exit 1; done

# -c I: informational rules too (I3011: stateful resources must say what happens to them when the stack goes).
template: setup ## cfn-lint over template.yaml, informational rules included.
	$(BIN)/cfn-lint -c I -- template.yaml

$(CHECKOV_VENV)/.installed: tools/checkov-requirements.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -r tools/checkov-requirements.txt
	touch $@

# Security checks: template IAM/encryption/secret tests and endpoint checks, checkov over the template (skips are
# justified in the resources' Metadata), bandit over the code, pip-audit over uv.lock (runtime + dev).
# bandit on sandbox/ skips B101 (asserts narrow types in local tooling, as ruff's S101 is off project-wide) and
# B311 (random drives the emulator's seeded simulation); every other finding is fixed or has an inline nosec reason.
# PIP_AUDIT_FLAGS=--strict also fails when pip-audit could not look a package up.
security: setup $(CHECKOV_VENV)/.installed ## Template security tests, checkov, bandit and pip-audit.
	$(BIN)/pytest -q tests/security
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet
	$(BIN)/bandit -q -r layers cli functions
	$(BIN)/bandit -q -r sandbox --skip B101,B311
	$(BIN)/python tools/pip_audit_lock.py $(PIP_AUDIT_FLAGS)

fuzz: setup ## Fuzzing with a bigger budget than the CI-sized run inside `make unit` (HYPOTHESIS_PROFILE=ci).
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-long} $(BIN)/pytest -q tests/fuzz

# Every fault profile (Amazon's side and AWS's), a sandbox run and a re-run each, every line item accounted for
# (tests/faults). `make unit` runs a CI-sized selection of it (FAULT_MATRIX=ci).
faults: setup ## The whole fault matrix (about 10 minutes; FAULT_MATRIX=chaos,slow for some profiles).
	FAULT_MATRIX=$${FAULT_MATRIX:-all} $(BIN)/pytest -q -m faults tests/faults

# The layer's requirements are the lock's runtime closure; a drift fails here.
layer-requirements: setup ## Check that layers/abrecon/requirements.txt is uv.lock's runtime closure.
	$(BIN)/uv export --frozen --no-dev --no-hashes --no-emit-project --no-header --quiet \
	  | diff -u layers/abrecon/requirements.txt - \
	  || { echo "layers/abrecon/requirements.txt is out of date: run 'make layer-lock'"; exit 1; }

layer-lock: setup ## Write layers/abrecon/requirements.txt from uv.lock.
	$(BIN)/uv export --frozen --no-dev --no-hashes --no-emit-project --no-header --quiet > layers/abrecon/requirements.txt

unit: setup browser ## Every test, the three tiers together (what make test runs).
	$(BIN)/pytest

test-unit: setup ## The fast loop: tests/unit, pure logic (no moto, no server, no subprocess), seconds.
	$(BIN)/pytest -q $(UNIT_TESTS)

test-integration: setup ## Against moto's AWS, the emulator and worker processes: integration, statemachine, sandbox, security, fuzz.
	$(BIN)/pytest -q $(INTEGRATION_TESTS)

test-e2e: setup browser ## Whole sandbox runs (e2e, the CI-sized fault matrix); the only tier that needs Chromium.
	$(BIN)/pytest -q $(E2E_TESTS)

build: $(SAM_VENV)/.installed ## sam build of template.yaml into .aws-sam/build.
	PATH="$(PY313_DIR):$$PATH" $(SAM_VENV)/bin/sam build --template-file template.yaml --build-dir .aws-sam/build

# The end-to-end tests open the HTML report in headless Chromium: Debian's package, installed when it is missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

browser: $(CHROMIUM) ## Debian's Chromium, for the end-to-end tests' report checks.

$(CHROMIUM):
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

bench: setup ## Performance: N = 15, 200, 2,000 invoices against the floor and the naive flow (about 30 minutes).
	$(BIN)/python -m abrecon_sandbox.bench

# N = 500, then 10,000 invoices in ONE execution (21,000+ line items, 1,000+ getTransactions pages) at x240, with
# Lambda timeouts and Step Functions' quotas enforced (not in CI). Run it under the shared lock on shared machines:
# flock /tmp/abrecon-heavy.lock make bench-large
bench-large: setup ## The backfill at scale: N = 500 and 10,000 invoices in one execution (about an hour).
	$(BIN)/python -m abrecon_sandbox.bench --large

# The hooks run the project's own tools from .venv (.pre-commit-config.yaml): nothing is fetched.
hooks: setup ## Install the git pre-commit hook (ruff, ruff format, JSON/YAML checks, cfn-lint).
	$(BIN)/pre-commit install

pre-commit: setup ## Run every pre-commit hook over the whole tree.
	$(BIN)/pre-commit run --all-files

clean: ## Remove build output, the sandbox's files and the tools' caches.
	rm -rf .aws-sam .sandbox .pytest_cache .mypy_cache .ruff_cache .hypothesis
