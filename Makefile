# odmm: `make run` and `make test` do all set-up themselves (root, Debian 12).
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
ODMM  := $(VENV)/bin/odmm
PYTEST_ARGS ?=

.PHONY: setup run test unit integration regression bench lint doctor clean distclean

setup:
	@VENV=$(VENV) scripts/setup.sh

run: setup
	$(ODMM) run default

# unit + integration tests, then the scenario regressions (each capped at 2 repetitions)
test: setup
	$(ODMM) clean --quiet
	$(PY) -m pytest -q tests experiments/scenarios --odmm-reps 2 $(PYTEST_ARGS)

regression: setup
	$(PY) -m pytest -q experiments/scenarios $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

integration: setup
	$(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

bench: setup
	$(PY) -m experiments.bench

lint: setup
	$(VENV)/bin/ruff check .

doctor: setup
	$(ODMM) doctor

clean: setup
	$(ODMM) clean

distclean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
