PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-postgres schema schema-check lint bench bench-throughput clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
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

clean:
	rm -rf $(VENV) data
