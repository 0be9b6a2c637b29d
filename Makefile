# The two commands the README promises: `make dev` and `make test`. Both work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help dev test lint typecheck-dev unit integration e2e bench bench-build soak template-check checkov clean

help:
	@echo "make dev [ARGS=...]   the whole stack on 127.0.0.1 (ARGS go to orb-bridge dev, e.g."
	@echo "                      ARGS=\"--port 3100 --sandbox-port 3101 --name second\"; see .venv/bin/orb-bridge dev --help)"
	@echo "make test             every test (unit, integration, e2e): 3-5 minutes on 2 cores, one pytest worker"
	@echo "                      per core; TEST_WORKERS=0 runs them serially in one process (about 6 minutes)"
	@echo "make unit | integration | e2e   one part of the tests (TEST_WORKERS too)"
	@echo "make lint             ruff, mypy, import contracts, module sizes (what CI runs)"
	@echo "make template-check   sam validate --lint, SAR check and sam build (own venv)"
	@echo "make checkov          static security analysis of template.yaml (own venv)"
	@echo "make bench | soak     benchmarks against the peers | the 100,000-event soak (ARGS=...)"
	@echo "make clean            remove the venvs and build output"

$(STAMP): pyproject.toml layers/orb_bridge/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/orb-bridge dev $(ARGS)

# The suite is CPU-bound: pytest-xdist runs it on one worker per core (TEST_WORKERS=logical: every
# CPU the OS shows, where `auto` would count one per physical core when psutil is installed; 0 runs
# it serially in this process, as does `pytest -p no:xdist`). --dist loadfile keeps each test file
# on one worker, so its module fixtures are built once; each worker starts its own dev stack for
# the e2e tests, on free ports.
TEST_WORKERS ?= logical
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: $(STAMP)
	@$(PYTEST); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# ruff (lint and format check) and mypy: strict on the layer, checked on everything else.
# The handlers are all `app.py`, so mypy sees each function's directory on its own.
# CI runs `make lint`: ruff (lint and format) over everything, mypy strict on the deployed layer and
# on each handler, and mypy over the dev tooling, benchmarks and tests (`make typecheck-dev`).
# One idea per module: none over this many lines outside tests.
MAX_MODULE_LINES := 300
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/orb_bridge/orb_bridge
	@for fn in functions/*/; do echo "mypy $$fn"; MYPYPATH=layers/orb_bridge $(BIN)/mypy $$fn/app.py || exit 1; done
	$(BIN)/mypy dev/orb_bridge_dev bench tests
	$(BIN)/lint-imports
	@over=$$(git ls-files '*.py' ':!tests/' | xargs wc -l | awk '$$2 != "total" && $$1 > $(MAX_MODULE_LINES)'); \
	if [ -n "$$over" ]; then echo "modules over $(MAX_MODULE_LINES) lines (split them by idea):"; echo "$$over"; exit 1; fi

typecheck-dev: $(STAMP)
	$(BIN)/mypy dev/orb_bridge_dev bench tests

unit: $(STAMP)
	$(PYTEST) tests/unit

integration: $(STAMP)
	$(PYTEST) tests/integration

e2e: $(STAMP)
	$(PYTEST) tests/e2e

# SAM CLI pins many packages: it lives in its own venv, never in .venv.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM_CLI_VERSION ?= 1.170.0
# `sam build` without Docker needs a python3.13 on PATH (the Lambda runtime's minor version).
PY313 ?= $(shell ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.13*/bin 2>/dev/null | tail -1)
SAM_PATH := $(if $(PY313),$(PY313):)$$PATH
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli==$(SAM_CLI_VERSION)'
	touch $(SAM_STAMP)

template-check: $(SAM_STAMP)
	$(SAM_ENV) $(SAM) validate --lint --template template.yaml
	$(SAM_VENV)/bin/python packaging/check_sar.py --template template.yaml --require-library
	@PATH="$(SAM_PATH)"; command -v python3.13 >/dev/null || { \
	  echo "template-check: sam build needs python3.13 on PATH (pyenv install 3.13, or make PY313=/dir/with/python3.13)" >&2; exit 1; }
	PATH="$(SAM_PATH)" $(SAM_ENV) $(SAM) build --template template.yaml --build-dir .aws-sam/build --cached --cache-dir .aws-sam/cache
	PATH="$(SAM_PATH)" python3.13 packaging/check_bytecode.py .aws-sam/build
	PATH="$(SAM_PATH)" python3.13 packaging/lambda_arch.py check-build .aws-sam/build --template template.yaml

# checkov (static security analysis of template.yaml) also pins many packages: its own venv.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_VERSION ?= 3.3.30

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $(CHECKOV_STAMP)

# Every suppression sits beside its resource in template.yaml with a one-line reason;
# --skip-download: offline, no guideline downloads from the vendor's API.
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation --file template.yaml

# What Lambda runs, for the bench: the same `sam build` (packaging/Makefile) for this machine's
# architecture in its own build directory (never the one `sam deploy` uses), and a python3.13 venv
# holding only the boto3/botocore of the python3.13 Lambda runtime.
BENCH_ARCH := $(shell uname -m)
BENCH_BUILD := .aws-sam/bench-$(BENCH_ARCH)
LAMBDA_VENV := .venv-lambda
LAMBDA_BOTO3_VERSION ?= 1.40.4

$(LAMBDA_VENV)/.installed:
	@test -n "$(PY313)" || { echo "bench: needs python3.13 (pyenv install 3.13, or make PY313=/dir/with/python3.13)" >&2; exit 1; }
	$(PY313)/python3.13 -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/pip install --quiet 'boto3==$(LAMBDA_BOTO3_VERSION)' 'botocore==$(LAMBDA_BOTO3_VERSION)'
	touch $@

# LAMBDA_ARCH_OVERRIDE: this machine's architecture on purpose, whatever the template deploys.
bench-build: $(SAM_STAMP)
	PATH="$(SAM_PATH)" LAMBDA_ARCH=$(BENCH_ARCH) LAMBDA_ARCH_OVERRIDE=1 $(SAM_ENV) $(SAM) build --template template.yaml \
	  --build-dir $(BENCH_BUILD)/build --cached --cache-dir $(BENCH_BUILD)/cache
	PATH="$(SAM_PATH)" python3.13 packaging/check_bytecode.py $(BENCH_BUILD)/build

# Benchmarks against the peers (writes BENCHMARKS.md; exits non-zero when a target is missed) and
# the 100,000-event fault-injection soak.
bench: $(STAMP) $(LAMBDA_VENV)/.installed bench-build
	$(BIN)/python -m bench.run --lambda-python $(LAMBDA_VENV)/bin/python --lambda-build $(BENCH_BUILD)/build $(ARGS)

soak: $(STAMP)
	$(BIN)/python -m bench.soak --events $${SOAK_EVENTS:-100000} $(ARGS)

clean:
	rm -rf $(VENV) $(SAM_VENV) $(LAMBDA_VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache
