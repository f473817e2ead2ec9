# `make run` runs the whole service; `make test` runs every test; `make bench` measures it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint env-example

run: $(VENV)/.deps
	$(BIN)/python scripts/dev_run.py

test: $(VENV)/.deps-dev
	scripts/system_deps.sh redis postfix chromium rspamd
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.deps-dev
	scripts/system_deps.sh redis postfix chromium
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(VENV)/.deps-dev
	$(BIN)/ruff check .

env-example: $(VENV)/.deps
	$(BIN)/python -m mailferry.env_example > .env.example

$(VENV)/.deps: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.deps-dev: $(VENV)/.deps requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@
