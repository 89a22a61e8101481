# Agent Fleet Kit. `make demo` runs the local fleet; `make test` is the whole test suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CDK := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx --no-install cdk
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# Node 20 is past end-of-life: jsii then checks this variable, whose value lists the silenced major versions.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
ARGS ?=
# checkov pins its own boto3/botocore, which conflict with requirements.txt (`pip install --dry-run`
# says ResolutionImpossible), so it lives in a virtualenv of its own inside $(VENV).
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: setup synth lint test test-fast demo bench cost preflight fleetcheck readme-figures clean

$(VENV)/.installed: requirements.txt requirements-dev.txt package.json agent_image/pyproject.toml
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the CPU build of torch first, so nothing later resolves a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed

$(CHECKOV_STAMP): $(VENV)/.installed
	test -d $(CHECKOV_VENV) || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

synth: setup
	rm -rf cdk.out
	$(CDK) synth --quiet

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint --failure-threshold warning agent_image/Dockerfile agent_image/Dockerfile.optimum

test: synth lint $(CHECKOV_STAMP)
	$(VENV)/bin/cfn-lint --config-file .cfnlintrc -- cdk.out/*.template.json
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -d cdk.out
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

demo: setup
	$(PY) -m agentfleet.local.fleet $(ARGS)

bench: setup
	$(PY) -m bench $(ARGS)

readme-figures: setup
	$(PY) -m bench.readme $(ARGS)

cost: setup
	$(PY) -m stacks.cost $(ARGS)

# Needs AWS credentials (read-only calls); synth and the tests never do.
preflight: setup
	$(PY) -m stacks.preflight $(ARGS)

# A deployed fleet: sends ARGS' --events synthetic events (default 50) and measures them (needs AWS credentials).
fleetcheck: setup
	$(PY) -m agentfleet.entrypoints.fleetcheck $(ARGS)

clean:
	rm -rf cdk.out out .pytest_cache .mypy_cache .ruff_cache
