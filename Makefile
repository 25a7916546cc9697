# The README's commands. Each creates .venv and installs the project when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test dev docs lint format clean

demo: $(INSTALLED)  ## simulated tenants through the whole flow, on DuckDB
	$(BIN)/tenantpulse demo

test: $(INSTALLED)  ## the test suite (Postgres tests skip when no server is reachable, except under CI=true)
	$(BIN)/pytest

dev: $(INSTALLED)  ## the Dagster UI and daemon on http://127.0.0.1:3000
	$(BIN)/tenantpulse dev

docs: $(INSTALLED)  ## the dbt docs site on http://127.0.0.1:8080 (models, columns, lineage)
	$(BIN)/tenantpulse dbt docs generate
	$(BIN)/tenantpulse dbt docs serve --host 127.0.0.1 --port 8080 --no-browser

lint: $(INSTALLED)
	$(BIN)/ruff check platform tests
	$(BIN)/ruff format --check platform tests

format: $(INSTALLED)
	$(BIN)/ruff format platform tests
	$(BIN)/ruff check --fix platform tests

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

clean:  ## remove the virtual environment and local state (.tenantpulse: warehouse, Dagster home)
	rm -rf $(VENV) .tenantpulse
