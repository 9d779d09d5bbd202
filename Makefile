# Unified Commerce CDC Hub — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: help install jars run test chaos bench bench-quick bench-api lint format typecheck unit contract integration up down status env clean

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

run: install ## Stack up, demo data, worker, sales simulator; inventory, availability and alerts live (Ctrl-C stops)
	@$(BIN)/hub demo

test: install lint typecheck ## Lint, type-check, then unit, contract, real-stack integration and fault tests
	@$(BIN)/pytest tests -m "not chaos"

chaos: install ## 20 random faults under one long load (HUB_CHAOS_FAULTS, HUB_CHAOS_SEED); prints the figures
	@$(BIN)/pytest tests/integration/test_chaos.py -m chaos -s

# The benchmark's own stack: a state dir and ports of its own, purged first, so every run starts
# from the same data and never meets the `make run` stack.
BENCH_ENV := HUB_STATE_DIR=$(CURDIR)/.hub-bench HUB_KAFKA_PORT=29092 HUB_KAFKA_CONTROLLER_PORT=29093 \
	HUB_CONNECT_PORT=28083 HUB_POS_PG_PORT=25433 HUB_SHOP_PG_PORT=25434 HUB_ERP_MARIADB_PORT=23306 \
	HUB_WORKER_WEB_PORT=26066 HUB_WORKER_ID=hub-bench HUB_KAFKA_BOOTSTRAP= HUB_CONNECT_URL=
BENCH_RUN = $(BENCH_ENV) $(BIN)/hub stack down --purge >/dev/null; $(BENCH_ENV) $(BIN)/hub stack up \
	&& $(BENCH_ENV) $(BIN)/hub bench $(BENCH_ARGS); status=$$?; $(BENCH_ENV) $(BIN)/hub stack down >/dev/null; exit $$status

bench: BENCH_ARGS = --replay 1000000
bench: install ## Benchmark: the hub and 4 baselines, steps 500-8000 changes/s, a ramp, and a replay of 1M changes by 1 and 2 workers, on a fresh stack; results in bench/results/
	@$(BENCH_RUN)

bench-quick: BENCH_ARGS = --rates 500,2000 --warmup 5 --measure 10 --no-ramp --replay 50000 --out bench/results/quick
bench-quick: install ## A short benchmark for development (two steps, every series, no ramp, a 50k replay; about 5 minutes)
	@$(BENCH_RUN)

bench-api: BENCH_ARGS = --api --rates 1000 --http-rate 2000 --measure 30 --out bench/results
bench-api: install ## hub api at 2,000 availability requests/s (vegeta) while the pipeline runs at 1,000 changes/s, and the change stream's latency, on a fresh stack
	@$(BENCH_RUN)

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
	@test -x $(BIN)/hub && $(BENCH_ENV) $(BIN)/hub stack down --purge >/dev/null || true
	@rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
