# annobridge developer tasks. CI runs `make test` (see .ci/run); the README shows `make demo`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Each server runs from its own virtualenv, as users run it: its pinned web stack never
# leaks into annobridge's dependency set.
SERVERS := .cache/servers
PHOENIX_VENV := $(SERVERS)/phoenix
PHOENIX_PIN := arize-phoenix==20.26.1 arize-phoenix-otel==0.17.2 arize-phoenix-client==3.5.0
MLFLOW_VENV := $(SERVERS)/mlflow
MLFLOW_PIN := 'mlflow[auth]==3.17.2'
PIP_QUIET := --quiet --disable-pip-version-check
export ANNOBRIDGE_PHOENIX_PYTHON := $(abspath $(PHOENIX_VENV))/bin/python
export ANNOBRIDGE_MLFLOW_PYTHON := $(abspath $(MLFLOW_VENV))/bin/python

.PHONY: install servers lint format test unit demo demo-stop cassettes bench mutate clean

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_QUIET) --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/pip install $(PIP_QUIET) -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -c "import bridge, vcr, pytest"
	touch $@

servers: $(PHOENIX_VENV)/.installed $(MLFLOW_VENV)/.installed
$(PHOENIX_VENV)/.installed:
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install $(PIP_QUIET) $(PHOENIX_PIN) 2>&1 | grep -v '^WARNING: Location' || true
	@# importing phoenix makes its working folder: inside the venv, never ~/.phoenix
	PHOENIX_WORKING_DIR=$(PHOENIX_VENV)/import-check $(PHOENIX_VENV)/bin/python -c "import phoenix, phoenix.otel, phoenix.client"
	touch $@

$(MLFLOW_VENV)/.installed:
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install $(PIP_QUIET) $(MLFLOW_PIN) 2>&1 | grep -v '^WARNING: Location' || true
	$(MLFLOW_VENV)/bin/python -c "import mlflow, flask_wtf"
	touch $@

lint: install
	$(BIN)/ruff check bridge tests benchmarks examples
	$(BIN)/ruff format --check bridge tests benchmarks examples
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix bridge tests benchmarks examples
	$(BIN)/ruff format bridge tests benchmarks examples

# The whole suite: lint, unit tests (recorded HTTP), integration tests on real servers.
test: install servers lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest -m "not phoenix and not mlflow"

# Start a local Phoenix, seed traces, sync the example workbook, show the result.
demo: install $(PHOENIX_VENV)/.installed
	$(BIN)/python examples/demo.py

demo-stop:
	$(BIN)/python examples/demo.py --stop

# Re-record the vcrpy cassettes against a fresh local Phoenix.
cassettes: install servers
	ANNOBRIDGE_RECORD=1 $(BIN)/pytest -q tests/test_phoenix_recorded.py
	ANNOBRIDGE_RECORD=1 $(BIN)/pytest -q tests/test_mlflow_recorded.py
	ANNOBRIDGE_RECORD=1 $(BIN)/pytest -q tests/test_arize_recorded.py tests/test_log10_recorded.py

bench: install servers
	$(BIN)/python benchmarks/phoenix_throughput.py
	$(BIN)/python benchmarks/mlflow_throughput.py
	$(BIN)/python benchmarks/gsheets_requests.py
	$(BIN)/python benchmarks/excel_bulk.py
	$(BIN)/python benchmarks/agreement_bench.py --xlsx
	$(BIN)/python benchmarks/startup.py

# Mutation testing (mutmut 3; what it mutates and the fast unit subset it runs are in
# pyproject.toml [tool.mutmut]). Slow: not part of `make test`. Results stay in mutants/;
# `$(BIN)/mutmut show NAME` shows one survivor.
mutate: install
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .cache examples/.phoenix-data mutants
