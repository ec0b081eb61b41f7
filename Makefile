PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-postgres schema schema-check lint bench bench-throughput bench-reads bench-all bench-log chaos cluster-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# GraphiQL's browser assets come from the npm registry (package-lock.json), never from a CDN at run time.
$(STAMP): pyproject.toml package-lock.json | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	npm ci --no-audit --no-fund --silent
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hookyard serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The same suite on PostgreSQL and the machine's Redis.
test-postgres: $(STAMP)
	HOOKYARD_TEST_DATABASE_URL=$${HOOKYARD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
	HOOKYARD_TEST_REDIS_URL=$${HOOKYARD_TEST_REDIS_URL:-redis://127.0.0.1:6379/0} \
	$(BIN)/python -m pytest -q

schema: $(STAMP)
	$(BIN)/hookyard export-schema > schema.graphql

schema-check: $(STAMP)
	@$(BIN)/hookyard export-schema | diff -u schema.graphql - \
	  || (echo "schema.graphql is stale: run 'make schema' and commit it" && exit 1)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/subscribers.py

# Delivery throughput and latency on the machine's PostgreSQL and Redis (see bench/throughput.py).
bench-throughput: $(STAMP)
	$(BIN)/python bench/throughput.py

# `workspace.deliveries(first: 100)` with attempts through GraphQL against a plain Starlette endpoint serving
# the same rows from the same PostgreSQL, in a throw-away database (see bench/reads.py).
bench-reads: $(STAMP)
	$(BIN)/python bench/reads.py

# Every benchmark in turn; writes the machine, versions, commands and figures at the top of
# bench/RESULTS.md, keeping the dated record below (see bench/all.py; `--quick` for a smoke run).
bench-all: $(STAMP)
	$(BIN)/python bench/all.py

# The delivery log's pages, the send path's SQL and the purge at 10k, 100k and 1M deliveries on the machine's
# PostgreSQL, in a throw-away database (see bench/log_growth.py; figures in bench/RESULTS.md).
bench-log: $(STAMP)
	$(BIN)/python bench/log_growth.py --purge-variants

# Delivery under faults (worker SIGKILLs, Redis FLUSHALL, PostgreSQL restart) on a PostgreSQL and a
# Redis of its own: fails unless nothing is lost or stuck and every signature checks (see bench/chaos.py).
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --deliveries 10000

# Hookyard as separate hosts on this machine: db (PostgreSQL + Redis), 2 API, 2 worker, receiver and client
# hosts in Linux network namespaces on one bridge; one worker host is cut off midway and nothing may be lost
# (see bench/cluster.py). Needs root and iproute2.
cluster-test: $(STAMP)
	$(BIN)/python bench/cluster.py

clean:
	rm -rf $(VENV) data
