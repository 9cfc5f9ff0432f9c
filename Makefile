# Newsflash: `make run` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The local demo pushes to the stand-in on 127.0.0.1; production leaves this off.
export NEWSFLASH_ALLOW_LOOPBACK_PUSH ?= on
# make run's push-service stand-in: `make run STANDIN_PORT=8011` (or in the environment) when
# 8001 is taken; the web's port is PORT.
STANDIN_PORT ?= 8001

.PHONY: run test check lint format typecheck install browsers tools bytecode clean help

help:
	@echo "make run    - set up and run web + workers + beat + demo stand-in (Ctrl-C stops all)"
	@echo "make test   - install test dependencies and run the whole suite"
	@echo "make check  - format check, lint, type check, tests"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

RUN_STAMP := $(VENV)/.run-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

# make run needs the service and the bench's extra; make test adds the test and dev tools.
$(RUN_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[bench]'
	rm -f $(VENV)/.run-*
	touch $(RUN_STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,dev]'
	rm -f $(VENV)/.installed-* $(VENV)/.run-*
	touch $(STAMP) $(RUN_STAMP)

install: $(STAMP)

# Byte-compile our sources (only what changed since the last time): where
# PYTHONDONTWRITEBYTECODE is set, as on this machine, each process started (every CLI command,
# web, worker, beat) compiled about 130 modules again, about 0.25 s of CPU a start.
SOURCES := bench cli config core service standin tests workers
bytecode:
	@$(BIN)/python -m compileall -q -j 0 $(SOURCES) > /dev/null

run: $(RUN_STAMP) bytecode
	$(BIN)/newsflash init
	$(BIN)/newsflash db upgrade
	$(BIN)/newsflash run --standin-port $(STANDIN_PORT)

browsers:
	@bash .ci/install-browsers

# promtool and amtool (Debian's prometheus and prometheus-alertmanager packages) for the alert
# rules, Prometheus and Alertmanager config tests.
tools:
	@bash .ci/install-tools

# The suite runs on TEST_PROCESSES pytest processes (pytest-xdist), a test module at a time on
# each (its stack is started once); most of a test's time is waiting on its own web, workers
# and browser. Tests marked solo (worker kills, broker faults, the bench's smoke runs: their
# figures are timings, and beside another module they measured the machine's load, a killed
# batch once resumed in 15.6 s) run afterwards, alone; a failure in either part fails the run
# after both. `make test TEST_PROCESSES=0` runs everything in one process, in one part.
TEST_PROCESSES ?= 2
PYTEST := $(BIN)/python -m pytest
PARALLEL_PART := $(PYTEST) -n $(TEST_PROCESSES) --dist loadscope -m "not solo" $(PYTEST_ARGS)
SOLO_PART := $(PYTEST) -m solo $(PYTEST_ARGS)

test: install browsers tools bytecode
ifeq ($(TEST_PROCESSES),0)
	$(PYTEST) $(PYTEST_ARGS)
else
	@status=0; \
	echo '$(PARALLEL_PART)'; $(PARALLEL_PART) || status=1; \
	echo '$(SOLO_PART)'; $(SOLO_PART) || [ $$? -eq 5 ] || status=1; \
	exit $$status
endif

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(MAKE) test

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
