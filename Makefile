# The single way to install, lint, type-check, test, bench and demo (CI calls `make test`).
# The first Python 3.11+ on PATH (override: make PY=/path/to/python3.x ...).
ifeq ($(origin PY),undefined)
PY := $(shell for p in python3.11 python3.12 python3.13 python3.14 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { echo $$p; break; }; done)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint typecheck test unit demo bench profile chaos sandbox clean

$(STAMP): pyproject.toml
	@test -n "$(PY)" || { echo "need Python 3.11+ on PATH (python3.11, python3.12, ...), or: make PY=/path/to/python"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy consumer handlers schemas sandbox tests bench

# Four workers: most tests wait on processes, the broker and timers, not on the CPU; the chaos
# run (~90 s, time-bound) overlaps the rest. On a 2-core VM: 240 s alone, 142 s with -n 4.
test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider -n 4 --durations=15

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

demo: $(STAMP)
	$(BIN)/invoicer demo

sandbox: $(STAMP)
	$(BIN)/invoicer sandbox --orders 20

# Issue 7's five benchmarks first (docs/performance.md), then the older component benches.
# Each prints a table and one JSON line; run one alone with e.g. `make bench BENCHES=ceiling`.
BENCHES ?= ceiling pipeline inline backlog ratelimit http_client bench_sandbox bench_handlers bench_webhooks
bench: $(STAMP)
	@for b in $(BENCHES); do echo "== bench.$$b"; $(BIN)/python -m bench.$$b || exit 1; done

# py-spy on the service while bench/pipeline.py drains a backlog: where its CPU goes.
profile: $(STAMP)
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

# Tier 2 of the reliability proof (docs/reliability.md), at most 30 min; e.g. CHAOS_ARGS="--seed 7 --broker real"
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.run --tier 2 $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo-output
