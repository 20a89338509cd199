# Everyday targets. `make up` and `make test` install what they need first; `./run`
# runs them on a machine without make.
PYTHON := .venv/bin/python
# What a target installs first: `python` (the virtualenv), `stack` (Redis, Java, Maven,
# the Kafka jars), `browser` (Chromium), `bench` (wrk); scripts/bootstrap.sh says more.
BOOTSTRAP := bash scripts/bootstrap.sh
# Extra pytest arguments for one tier, e.g. PYTEST_ARGS=tests/integration/test_worker.py
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help bootstrap venv lock up up-cluster down status test test-kafka4 test-unit test-integration test-e2e test-browser test-faults test-cluster test-cluster-kraft test-compose test-integration-containers test-stock bench bench-quick docs-figures lint format typecheck check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

bootstrap: ## install everything: the virtualenv, system packages, the Kafka jars (idempotent)
	@$(BOOTSTRAP) all

venv: ## only the virtualenv (enough for lint, typecheck and test-unit)
	@$(BOOTSTRAP) python

lock: venv ## re-pin the whole dependency tree after editing pyproject.toml
	UV_NATIVE_TLS=1 .venv/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		--generate-hashes -q --custom-compile-command "make lock" -o requirements/runtime.txt
	UV_NATIVE_TLS=1 .venv/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		--generate-hashes -q --custom-compile-command "make lock" --extra dev -o requirements/dev.txt

up: ## run the whole system in the background (ZooKeeper, Kafka, Redis, API, worker)
	@$(BOOTSTRAP) stack
	@$(PYTHON) -m devstack up

up-cluster: ## the production-shaped system: 3 Kafka 4 KRaft nodes, Redis Cluster, 2 APIs behind HAProxy, 3 workers
	@$(BOOTSTRAP) stack
	@bash scripts/fetch-haproxy.sh >/dev/null
	@$(PYTHON) -m devstack up-cluster

down: ## stop everything `make up` or `make up-cluster` started
	@if [ -x $(PYTHON) ]; then $(PYTHON) -m devstack down; else echo "the stack is not running"; fi

status: ## show what `make up` or `make up-cluster` runs
	@$(PYTHON) -m devstack status

test: ## run every test against real Kafka and Redis, then the container tiers
	@$(BOOTSTRAP) all
	$(PYTHON) -m pytest -m "not compose and not stock"
	@$(MAKE) --no-print-directory test-cluster-kraft test-compose test-integration-containers test-stock bench-quick

test-unit: ## pure-logic tests only (no services)
	@$(BOOTSTRAP) python
	$(PYTHON) -m pytest -m unit $(PYTEST_ARGS)

test-integration: ## one component against real Kafka and Redis
	@$(BOOTSTRAP) stack
	$(PYTHON) -m pytest -m integration $(PYTEST_ARGS)

test-e2e: ## the services as processes on the real stack
	@$(BOOTSTRAP) stack
	$(PYTHON) -m pytest -m e2e $(PYTEST_ARGS)

test-browser: ## the Swagger UI page in Debian's headless Chromium, offline
	@$(BOOTSTRAP) stack browser
	$(PYTHON) -m pytest -m browser $(PYTEST_ARGS)

test-faults: ## faults injected into real processes, and fuzzing of the HTTP API
	@$(BOOTSTRAP) stack
	$(PYTHON) -m pytest -m faults $(PYTEST_ARGS)

test-cluster: ## the integration and end-to-end tiers on a 3-master Redis Cluster
	@$(BOOTSTRAP) stack
	MEMTEL_TEST_REDIS=cluster $(PYTHON) -m pytest -m "integration or e2e" $(PYTEST_ARGS)

test-cluster-kraft: ## the integration and end-to-end tiers on production's shape: Kafka 4.x (KRaft) and a 3-master Redis Cluster
	@$(BOOTSTRAP) stack
	MEMTEL_TEST_REDIS=cluster MEMTEL_TEST_KAFKA=kraft $(PYTHON) -m pytest -m "integration or e2e" $(PYTEST_ARGS)

test-kafka4: ## the integration tier on a Kafka 4.x KRaft broker instead of ZooKeeper and Kafka 3.9
	@$(BOOTSTRAP) stack
	MEMTEL_TEST_KAFKA=kraft $(PYTHON) -m pytest -m integration $(PYTEST_ARGS)

test-compose: ## the Compose stack built and run on a Docker engine (installs what it needs)
	@$(BOOTSTRAP) python
	bash scripts/with-docker.sh $(PYTHON) -m pytest -m compose -o log_cli=true --durations=0 tests/compose $(PYTEST_ARGS)

test-integration-containers: ## the integration tier on Kafka and Redis containers
	@$(BOOTSTRAP) stack
	MEMTEL_TEST_BACKEND=containers bash scripts/with-docker.sh $(PYTHON) -m pytest -m integration $(PYTEST_ARGS)

test-stock: ## `./run up` and tests on a fresh Debian 12 made with debootstrap, in a container
	@$(BOOTSTRAP) python
	bash scripts/with-docker.sh --no-images $(PYTHON) -m pytest -m stock -o log_cli=true tests/stock $(PYTEST_ARGS)

bench: ## each stage beside its ceiling, on a stack of its own (docs/benchmarks.md)
	@$(BOOTSTRAP) stack bench
	$(PYTHON) -m benchmarks --output bench/results/latest.json
	$(PYTHON) -m benchmarks.render_docs record-bench bench/results/latest.json --command "make bench"

bench-quick: ## the same stages at tiny sizes: fails only if a stage cannot run
	@$(BOOTSTRAP) stack bench
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
