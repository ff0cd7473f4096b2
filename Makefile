# vaora developer and CI entry points. Every target that needs Python bootstraps .venv first (fast when
# nothing is missing). Extra arguments: PYTEST_ARGS="-k name", DEMO_ARGS="...".

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: bootstrap test lint demo schemas bench

bootstrap:
	bash scripts/bootstrap.sh

# The whole suite, slow tests included. pytest's exit 5 (no tests collected) fails the target like any
# other non-zero exit.
test: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: bootstrap
	$(VENV)/bin/ruff check .

demo: bootstrap
	$(PY) -m devtools.demo $(DEMO_ARGS)

schemas: bootstrap
	$(PY) -m protocols.schemas

bench: bootstrap
	@found=0; \
	for script in benchmarks/*.py; do \
		[ -e "$$script" ] || continue; \
		found=1; \
		echo "bench: $$script"; \
		$(PY) "$$script"; \
	done; \
	[ "$$found" = 1 ] || echo "bench: no benchmarks/*.py yet"
