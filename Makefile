# Everyday targets. `make up` and `make test` install what they need first.
PYTHON := .venv/bin/python

.DEFAULT_GOAL := help
.PHONY: help bootstrap venv lock up up-cluster down status test test-kafka4 test-unit test-integration test-e2e test-browser test-faults test-cluster test-compose test-integration-containers bench bench-quick docs-figures lint format typecheck check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

bootstrap: ## install everything: the virtualenv, system packages, the Kafka jars (idempotent)
	@bash scripts/bootstrap.sh all

venv: ## only the virtualenv (enough for lint, typecheck and test-unit)
	@bash scripts/bootstrap.sh python

lock: venv ## re-pin the whole dependency tree after editing pyproject.toml
	UV_NATIVE_TLS=1 .venv/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		--generate-hashes -q --custom-compile-command "make lock" -o requirements/runtime.txt
	UV_NATIVE_TLS=1 .venv/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		--generate-hashes -q --custom-compile-command "make lock" --extra dev -o requirements/dev.txt

up: bootstrap ## run the whole system in the background (ZooKeeper, Kafka, Redis, API, worker)
	@$(PYTHON) -m devstack up

up-cluster: bootstrap ## the production-shaped system: 3 Kafka 4 KRaft nodes, Redis Cluster, 2 APIs behind HAProxy, 3 workers
	@bash scripts/fetch-haproxy.sh >/dev/null
	@$(PYTHON) -m devstack up-cluster

down: ## stop everything `make up` or `make up-cluster` started
	@if [ -x $(PYTHON) ]; then $(PYTHON) -m devstack down; else echo "the stack is not running"; fi

status: ## show what `make up` or `make up-cluster` runs
	@$(PYTHON) -m devstack status

test: bootstrap ## run every test against real Kafka and Redis, then the container tiers
	$(PYTHON) -m pytest -m "not compose"
	@$(MAKE) --no-print-directory test-cluster test-kafka4 test-compose test-integration-containers bench-quick

test-unit: venv ## pure-logic tests only (no services)
	$(PYTHON) -m pytest -m unit

test-integration: bootstrap ## one component against real Kafka and Redis
	$(PYTHON) -m pytest -m integration

test-e2e: bootstrap ## the services as processes on the real stack
	$(PYTHON) -m pytest -m e2e

test-browser: bootstrap ## the Swagger UI page in Debian's headless Chromium, offline
	$(PYTHON) -m pytest -m browser

test-faults: bootstrap ## faults injected into real processes, and fuzzing of the HTTP API
	$(PYTHON) -m pytest -m faults

test-cluster: bootstrap ## the integration and end-to-end tiers on a 3-master Redis Cluster
	MEMTEL_TEST_REDIS=cluster $(PYTHON) -m pytest -m "integration or e2e"

test-kafka4: bootstrap ## the integration tier on a Kafka 4.x KRaft broker instead of ZooKeeper and Kafka 3.9
	MEMTEL_TEST_KAFKA=kraft $(PYTHON) -m pytest -m integration

test-compose: venv ## the Compose stack built and run on a Docker engine (installs what it needs)
	bash scripts/with-docker.sh $(PYTHON) -m pytest -m compose -o log_cli=true --durations=0 tests/compose

test-integration-containers: bootstrap ## the integration tier on Kafka and Redis containers
	MEMTEL_TEST_BACKEND=containers bash scripts/with-docker.sh $(PYTHON) -m pytest -m integration

bench: bootstrap ## each stage beside its ceiling, on a stack of its own (docs/benchmarks.md)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PYTHON) -m benchmarks --output bench/results/latest.json
	$(PYTHON) -m benchmarks.render_docs record-bench bench/results/latest.json --command "make bench"

bench-quick: bootstrap ## the same stages at tiny sizes: fails only if a stage cannot run
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PYTHON) -m benchmarks --quick --output bench/results/quick.json

docs-figures: venv ## re-render the docs' figure tables from docs/results/ (make bench, MEMTEL_FAULT_RESULTS)
	$(PYTHON) -m benchmarks.render_docs

lint: venv ## ruff lint and format check
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: venv ## apply ruff's formatting and fixes
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

typecheck: venv ## mypy, strict
	$(PYTHON) -m mypy

check: lint typecheck test ## everything CI runs

clean: down ## remove the local stack's data and the tool caches
	rm -rf .devstack .pytest_cache .mypy_cache .ruff_cache
