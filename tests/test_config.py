import datetime as dt
from pathlib import Path

import pytest

from tenantpulse.config import SettingsError, load_settings, parse_warehouse_url


def test_defaults_put_everything_under_the_home_folder(tmp_path):
    settings = load_settings({"TENANTPULSE_HOME": str(tmp_path)})
    assert settings.warehouse.dialect == "duckdb"
    assert settings.warehouse.duckdb_path == tmp_path / "warehouse.duckdb"
    assert settings.dagster_home == tmp_path / "dagster_home"
    assert settings.simulator.seed == 7
    assert settings.simulator.history_days == 120
    assert settings.simulator.end_date == dt.datetime.now(dt.UTC).date()


def test_postgres_url_switches_the_dialect():
    url = parse_warehouse_url("postgresql+psycopg2://me:secret@db.internal:5433/analytics")
    assert url.dialect == "postgres"
    assert url.postgres_dsn == "postgresql://me:secret@db.internal:5433/analytics"
    assert "secret" not in str(url)


def test_duckdb_url_takes_relative_and_absolute_paths():
    assert parse_warehouse_url("duckdb:////tmp/x.duckdb").duckdb_path == Path("/tmp/x.duckdb")
    assert (
        parse_warehouse_url("duckdb:///data/x.duckdb").duckdb_path == Path.cwd() / "data/x.duckdb"
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TENANTPULSE_WAREHOUSE_URL": "mysql://x/y"}, "TENANTPULSE_WAREHOUSE_URL"),
        ({"TENANTPULSE_WAREHOUSE_URL": "duckdb:///:memory:"}, "TENANTPULSE_WAREHOUSE_URL"),
        ({"TENANTPULSE_WAREHOUSE_URL": "postgresql://host:5432"}, "TENANTPULSE_WAREHOUSE_URL"),
        ({"TENANTPULSE_SIM_SEED": "abc"}, "TENANTPULSE_SIM_SEED"),
        ({"TENANTPULSE_SIM_HISTORY_DAYS": "5"}, "TENANTPULSE_SIM_HISTORY_DAYS"),
        ({"TENANTPULSE_SIM_END_DATE": "01/11/2026"}, "TENANTPULSE_SIM_END_DATE"),
        ({"TENANTPULSE_SIM_VOLUME": "0"}, "TENANTPULSE_SIM_VOLUME"),
    ],
)
def test_invalid_setting_names_the_setting_and_what_is_allowed(env, named):
    with pytest.raises(SettingsError, match=named) as error:
        load_settings(env)
    assert "allowed" in str(error.value)
