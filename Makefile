# Unified Commerce CDC Hub — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: help install jars run test chaos bench bench-quick lint format typecheck unit contract integration up down status env clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is needed (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing Python dependencies into $(VENV)…"
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## Create the virtualenv and install the hub with its dev tools

jars: install ## Fetch Kafka, Connect and Debezium jars into the cache (mvn; once)
	@$(BIN)/hub stack fetch

run: install ## Stack up, demo data, worker, sales simulator, live unified inventory (Ctrl-C stops)
	@$(BIN)/hub demo

test: install lint typecheck ## Lint, type-check, then unit, contract, real-stack integration and fault tests
	@$(BIN)/pytest tests -m "not chaos"

chaos: install ## 20 random faults under one long load (HUB_CHAOS_FAULTS, HUB_CHAOS_SEED); prints the figures
	@$(BIN)/pytest tests/integration/test_chaos.py -m chaos -s

bench: install ## Benchmark on the local stack: steps 500-8000 changes/s; results in bench/results/
	@$(BIN)/hub stack up && $(BIN)/hub bench

bench-quick: install ## A short benchmark for development (two steps, under 5 minutes)
	@$(BIN)/hub stack up && $(BIN)/hub bench --rates 500,2000 --warmup 5 --measure 20

unit: install ## Unit and contract tests only (no I/O)
	@$(BIN)/pytest tests/unit tests/contract

integration: install ## Integration tests on a fresh real stack (free ports, own state dir)
	@$(BIN)/pytest tests/integration -m "not chaos"

lint: install ## ruff lint + format check (changes nothing)
	@$(BIN)/ruff check hub tests
	@$(BIN)/ruff format --check hub tests

format: install ## ruff: fix what can be fixed and format
	@$(BIN)/ruff check --fix hub tests
	@$(BIN)/ruff format hub tests

typecheck: install ## mypy --strict on hub/
	@$(BIN)/mypy

up: install ## Start the local stack (idempotent)
	@$(BIN)/hub stack up

down: install ## Stop the local stack (data kept; `hub stack down --purge` deletes it)
	@$(BIN)/hub stack down

status: install ## Components and connectors with their state
	@$(BIN)/hub stack status

env: install ## Endpoints of the local stack
	@$(BIN)/hub stack env

clean: ## Stop the stack, delete its state and the virtualenv (the jar cache stays)
	@test -x $(BIN)/hub && $(BIN)/hub stack down --purge || true
	@rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
