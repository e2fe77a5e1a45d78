# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create the virtualenv (.venv) themselves from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint types unit venv bench clean screenshots

$(BIN)/tallyfy-scheduler: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/tallyfy-scheduler

## make demo: the sandbox, the example jobs firing every few seconds, and the daemon (Ctrl-C stops it)
demo: venv
	$(BIN)/tallyfy-scheduler demo

## make test: lint, types, and the whole test suite (PostgreSQL tests need TALLYFY_SCHEDULER_TEST_PG_URL)
test: venv lint types unit

lint: venv
	$(BIN)/ruff check scheduler tallyfy_sandbox tests bench
	$(BIN)/ruff format --check scheduler tallyfy_sandbox tests bench

types: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q $(PYTEST_ARGS)

## make screenshots: PNGs of each dashboard page under docs/screenshots/ (needs chromium and
## chromium-driver; checked in, CI does not write them)
screenshots: venv
	$(BIN)/python tests/browser/screenshots.py docs/screenshots

bench: venv
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
