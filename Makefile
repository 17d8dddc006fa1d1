# inboxops developer entry points. `make demo` and `make test` are the two the README promises.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format typecheck services bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml requirements.lock setup.py src/inboxops/reputation/_scan.c src/inboxops/reputation/_scan_match.h src/inboxops/reputation/_scan_records.h src/inboxops/reputation/_digest.c src/inboxops/dmarc/_walk.c
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

## demo: generate sample DMARC reports and a Postfix fleet log, ingest both into a demo SQLite database, print trend and alerts
demo: $(STAMP)
	$(BIN)/inboxops demo

## services: what the tests talk to on loopback (Dovecot; PostgreSQL is expected on 127.0.0.1:5432)
services:
	bash scripts/install-test-services.sh

## test: install everything the tests need, run the whole suite, then the C modules under ASan/UBSan
test: $(STAMP) services
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest
	bash scripts/check-c-sanitizers.sh $(BIN)/python

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: inboxops beside parsedmarc and pflogsumm on the same inputs (see docs/benchmarks.md)
bench: $(STAMP)
	bash scripts/install-bench-tools.sh
	$(BIN)/python bench/dmarc/run.py
	$(BIN)/python bench/reputation/run.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
