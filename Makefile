# vaora developer and CI entry points. Every target that needs Python bootstraps .venv first (fast when
# nothing is missing). Extra arguments: PYTEST_ARGS="-k name", PYTEST_WORKERS=2, DEMO_ARGS="...", RUNS=3 (test-load).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` and `make test-load` (0: one process). Each test module stays on one
# worker (--dist loadscope), so its module-scoped brokers and servers are shared as they are in one process.
PYTEST_WORKERS ?= 2
DEMO_ARGS ?=
RUNS ?= 3

.PHONY: bootstrap test test-load lint demo schemas bench

bootstrap:
	bash scripts/bootstrap.sh

# The whole suite, slow tests included, on PYTEST_WORKERS workers. pytest's exit 5 (no tests collected) fails
# the target like any other non-zero exit.
test: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# The suite RUNS times in a row beside a CPU burner (stress-ng --cpu 4, or Python busy loops), each run's wall
# time printed; fails if any run fails. Not part of `make test` or CI: run it by hand.
test-load: bootstrap
	PYTEST_ARGS="$(PYTEST_ARGS)" PYTEST_WORKERS="$(PYTEST_WORKERS)" VENV="$(VENV)" bash scripts/test_under_load.sh "$(RUNS)"

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

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
