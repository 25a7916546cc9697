# The README's commands. Each creates .venv and installs the project when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# PyAirbyte (embedded mode, docs/airbyte.md) pins pandas<3 and duckdb 1.4: its own environment.
PYAIRBYTE := .venv-pyairbyte/.installed
# Debian's chromium, which tests/test_demo.py drives through Playwright (never `playwright
# install`: it downloads a browser from outside the package registry). Nothing to do when it is
# installed already; without apt-get the test skips (and fails under CI=true).
# Defined before the rules: make expands a rule's prerequisites as it reads it.
CHROMIUM := /usr/bin/chromium

.PHONY: demo test dev docs web connect-demo lint format clean pyairbyte bench chromium

demo: $(INSTALLED)  ## simulated tenants through the whole flow, on DuckDB
	$(BIN)/tenantpulse demo

# pytest-xdist workers (default: one per core); each starts on its share of the longest tests
# (tests/conftest.py, SLOW_MODULES) and idle workers take short ones from the others.
TEST_WORKERS ?= auto
test: $(INSTALLED) $(PYAIRBYTE) $(CHROMIUM)  ## the test suite (Postgres tests skip when no server is reachable, except under CI=true)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

dev: $(INSTALLED)  ## the Dagster UI and daemon on http://127.0.0.1:3000
	$(BIN)/tenantpulse dev

docs: $(INSTALLED)  ## the dbt docs site on http://127.0.0.1:8080 (models, columns, lineage)
	$(BIN)/tenantpulse dbt docs generate
	$(BIN)/tenantpulse dbt docs serve --host 127.0.0.1 --port 8080 --no-browser

# make web [TENANT=acme_growth]: prints a sign-in link for one of TENANT's users, then serves the
# app; a signing key is made up for this run unless TENANTPULSE_WEB_SIGNING_KEY is set (docs/web.md).
TENANT ?= acme_growth
web: $(INSTALLED)  ## after `make demo`: a tenant's dashboard on http://127.0.0.1:8000 (the link printed first)
	@export TENANTPULSE_WEB_SIGNING_KEY="$${TENANTPULSE_WEB_SIGNING_KEY:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')}"; \
	$(BIN)/tenantpulse web token $(TENANT) --minutes 60 && exec $(BIN)/tenantpulse serve

connect-demo: $(INSTALLED)  ## connect a source end to end on 127.0.0.1 (stand-in provider and Airbyte, daemon, web app; docs/connect.md)
	$(BIN)/tenantpulse connect-demo

# make bench N=1000 [BENCH_ARGS="--warehouses duckdb"]: bench/README.md
N ?= 100
BENCH_ARGS ?=
bench: $(INSTALLED)  ## time every stage at N tenants on DuckDB and Postgres; results in bench/results/
	$(BIN)/python -m bench.run --tenants $(N) $(BENCH_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check platform tests bench
	$(BIN)/ruff format --check platform tests bench

format: $(INSTALLED)
	$(BIN)/ruff format platform tests bench
	$(BIN)/ruff check --fix platform tests bench

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

chromium: $(CHROMIUM)  ## the browser of the Dagster UI test

$(CHROMIUM):
	@if command -v apt-get >/dev/null || test -x /usr/bin/apt-get; then \
		$(SUDO) env PATH="$$PATH:/usr/sbin:/usr/bin:/sbin:/bin" sh -c 'apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'; \
	else \
		echo "no apt-get: install chromium as $(CHROMIUM) for the browser tests"; \
	fi
	@if test "$$CI" = true && ! test -x $(CHROMIUM); then \
		echo "CI=true needs $(CHROMIUM) and it was not installed"; exit 1; \
	fi

pyairbyte: $(PYAIRBYTE)  ## the PyAirbyte environment that runs Airbyte connectors in embedded mode

$(PYAIRBYTE):
	@test -x .venv-pyairbyte/bin/python || $(PYTHON) -m venv .venv-pyairbyte
	.venv-pyairbyte/bin/python -m pip install --quiet --upgrade pip
	.venv-pyairbyte/bin/python -m pip install --quiet 'airbyte==0.71.3'
	@touch $@

clean:  ## remove the virtual environment and local state (.tenantpulse: warehouse, Dagster home)
	rm -rf $(VENV) .venv-pyairbyte .tenantpulse
