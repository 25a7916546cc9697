import datetime as dt
from pathlib import Path

import pytest

from tenantpulse import config
from tenantpulse.config import SettingsError, load_settings, parse_warehouse_url

REPOSITORY = Path(__file__).resolve().parents[1]


def test_defaults_put_everything_under_the_home_folder(tmp_path):
    settings = load_settings({"TENANTPULSE_HOME": str(tmp_path)})
    assert settings.warehouse.dialect == "duckdb"
    assert settings.warehouse.duckdb_path == tmp_path / "warehouse.duckdb"
    assert settings.dagster_home == tmp_path / "dagster_home"
    assert settings.simulator.seed == 7
    assert settings.simulator.history_days == 120
    assert settings.simulator.end_date == dt.datetime.now(dt.UTC).date()
    assert settings.daily_partitions_end is None  # the partitions run up to today


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
        ({"OPENAI_BASE_URL": "127.0.0.1:8000/v1"}, "OPENAI_BASE_URL"),
        ({"TENANTPULSE_LLM_CONCURRENCY": "0"}, "TENANTPULSE_LLM_CONCURRENCY"),
        ({"TENANTPULSE_DAILY_PARTITIONS_END": "2026-13-01"}, "TENANTPULSE_DAILY_PARTITIONS_END"),
        (
            {
                "TENANTPULSE_DAILY_PARTITIONS_START": "2026-09-01",
                "TENANTPULSE_DAILY_PARTITIONS_END": "2026-08-31",
            },
            "TENANTPULSE_DAILY_PARTITIONS_END",
        ),
        ({"TENANTPULSE_LLM_TIMEOUT_SECONDS": "soon"}, "TENANTPULSE_LLM_TIMEOUT_SECONDS"),
        ({"TENANTPULSE_DBT_PROJECT_DIR": "/no/such/dbt_project"}, "TENANTPULSE_DBT_PROJECT_DIR"),
    ],
)
def test_invalid_setting_names_the_setting_and_what_is_allowed(env, named):
    with pytest.raises(SettingsError, match=named) as error:
        load_settings(env)
    assert "allowed" in str(error.value)


def test_an_api_key_turns_the_llm_writer_on_with_its_settings():
    assert not load_settings({}).llm.enabled
    llm = load_settings(
        {
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
            "TENANTPULSE_LLM_MODEL": "local-model",
            "TENANTPULSE_LLM_CONCURRENCY": "8",
        }
    ).llm
    assert llm.enabled and llm.base_url == "http://127.0.0.1:8000/v1"
    assert (llm.model, llm.concurrency, llm.max_retries, llm.timeout_seconds) == (
        "local-model",
        8,
        3,
        30.0,
    )
    assert "sk-test" not in repr(llm)  # the key stays in the environment, not in settings


def test_the_dbt_project_is_the_repositorys_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).dbt_project_dir == REPOSITORY / "dbt_project"


def test_the_dbt_project_setting_takes_a_folder_relative_to_the_working_directory(
    tmp_path, monkeypatch
):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "dbt_project.yml").write_text("name: tenantpulse\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"TENANTPULSE_DBT_PROJECT_DIR": "elsewhere"})
    assert settings.dbt_project_dir == tmp_path / "elsewhere"


def test_a_package_outside_a_checkout_names_the_dbt_project_setting(tmp_path, monkeypatch):
    installed = tmp_path / "site-packages" / "tenantpulse" / "config.py"
    monkeypatch.setattr(config, "__file__", str(installed))
    with pytest.raises(SettingsError, match="TENANTPULSE_DBT_PROJECT_DIR is not set") as error:
        load_settings({})
    assert "allowed" in str(error.value)
