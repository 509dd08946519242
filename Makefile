# The single way to install, lint, type-check, test, bench and demo (CI calls `make test`).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint typecheck test unit demo bench chaos sandbox clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11+) on PATH, or run: make PY=python3 ..."; exit 1; }
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

test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

demo: $(STAMP)
	$(BIN)/invoicer demo

sandbox: $(STAMP)
	$(BIN)/invoicer sandbox --orders 20

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.run --tier 2

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo-output
