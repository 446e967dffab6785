# onai-db — every target does its own set-up and is safe to re-run.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
ONAI      := $(VENV)/bin/onai-db
PG_BINDIR ?= $(shell ls -d /usr/lib/postgresql/15/bin 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: help setup check-postgres stack test lint types demo bench clean

help:
	@echo "make demo   - local stack + consolidation demo (main job)"
	@echo "make test   - lint + full test suite against the local stack"
	@echo "make bench  - benchmarks; regenerates BENCHMARKS.md"
	@echo "make types  - regenerate glue/onai_db/database_types.py"

check-postgres:
	@test -x "$(PG_BINDIR)/initdb" || { echo "PostgreSQL 15 server binaries not found: apt-get install postgresql-15 postgresql-contrib"; exit 3; }

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

# Optional server extensions (pg_cron, plpgsql_check for `db lint`, pgTAP): installed when
# we may (root + apt); everything works without them, with fewer checks.
.local/.extensions:
	@mkdir -p .local
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in postgresql-15-cron postgresql-15-plpgsql-check postgresql-15-pgtap; do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then (apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	    (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$missing >/dev/null 2>&1)) || \
	    echo "note: could not install$$missing (continuing without)"; fi; fi
	@touch $@

setup: check-postgres $(VENV)/.installed node_modules/.installed .local/.extensions

stack: setup
	$(ONAI) local up

lint: setup
	$(VENV)/bin/ruff check glue tests bench
	$(VENV)/bin/ruff format --check glue tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/sqlfluff lint supabase/ --processes 2

test: setup lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

types: stack
	$(ONAI) types --write

demo: setup
	$(ONAI) demo

bench: setup
	$(VENV)/bin/python -m bench

clean:
	-$(ONAI) local down --purge
	rm -rf $(VENV) node_modules
