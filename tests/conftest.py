"""Shared fixtures: a settings object and warehouse per test, on DuckDB and on Postgres.

Postgres tests create their own database and drop it. Without a reachable server they skip, except
under CI=true, where a missing Postgres is a failure. The server is taken from
TENANTPULSE_TEST_POSTGRES_URL (default: postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid

import psycopg
import pytest

from tenantpulse.config import load_settings
from tenantpulse.transform.dbt_cli import prepare_manifest
from tenantpulse.warehouse import open_warehouse

POSTGRES_ADMIN_URL = os.environ.get(
    "TENANTPULSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SIM_END_DATE = "2026-11-01"
# The daily partitions stop two days after the simulated data instead of today, so the analysis
# covers the same few days whatever the date the suite runs on.
DAILY_PARTITIONS_END = "2026-11-03"


def pytest_configure(config):
    """Parse the dbt project once before pytest-xdist starts its workers: two workers finding the
    manifest stale would both run `dbt parse` into the same target folder."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has parsed already
        return
    # `dbt parse` connects to neither warehouse: a throwaway home is enough.
    with tempfile.TemporaryDirectory(prefix="tenantpulse-parse-") as home:
        for url in (f"duckdb:///{home}/warehouse.duckdb", POSTGRES_ADMIN_URL):
            prepare_manifest(
                load_settings({"TENANTPULSE_HOME": home, "TENANTPULSE_WAREHOUSE_URL": url})
            )


def _admin_connection():
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        message = f"no PostgreSQL server at {POSTGRES_ADMIN_URL} ({error}); set TENANTPULSE_TEST_POSTGRES_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs Postgres: {message}")
        pytest.skip(message)


@contextlib.contextmanager
def postgres_database():
    """The URL of a fresh database, dropped afterwards (for a test needing a second one)."""
    name = f"tenantpulse_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as admin:
        admin.execute(f'create database "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _admin_connection() as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def postgres_url():
    """A fresh database for one test, dropped afterwards."""
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path):
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("postgres_url")


def make_settings(tmp_path, warehouse_url, **overrides):
    env = {
        "TENANTPULSE_HOME": str(tmp_path / "home"),
        "TENANTPULSE_WAREHOUSE_URL": warehouse_url,
        "TENANTPULSE_SIM_END_DATE": SIM_END_DATE,
        "TENANTPULSE_SIM_HISTORY_DAYS": "60",
        "TENANTPULSE_SIM_VOLUME": "0.3",
        "TENANTPULSE_DAILY_PARTITIONS_START": "2026-09-01",
        "TENANTPULSE_DAILY_PARTITIONS_END": DAILY_PARTITIONS_END,
        **overrides,
    }
    return load_settings(env)


@pytest.fixture
def settings(tmp_path, warehouse_url):
    return make_settings(tmp_path, warehouse_url)


@pytest.fixture
def warehouse(settings):
    return open_warehouse(settings.warehouse)
