import datetime as dt
from pathlib import Path

import duckdb
import pytest

from tenantpulse import config
from tenantpulse.config import SettingsError, load_settings, parse_warehouse_url
from tenantpulse.defs.resources import WarehouseResource

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
    url = parse_warehouse_url("postgresql+psycopg2://me@db.internal:5433/analytics")
    assert url.dialect == "postgres"
    assert url.postgres_dsn == "postgresql://me@db.internal:5433/analytics"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me:s3cr3t-pw@db.internal:5433/analytics",
        "postgres://me:s3cr3t-pw@db.internal/analytics",
        "postgresql://me@db.internal/analytics?sslmode=require&password=s3cr3t-pw",
    ],
)
def test_a_password_in_the_warehouse_url_is_refused_naming_where_it_goes(url):
    # The URL is the warehouse resource's config, which the Dagster UI shows.
    with pytest.raises(SettingsError) as error:
        load_settings({"TENANTPULSE_WAREHOUSE_URL": url})
    message = str(error.value)
    assert "TENANTPULSE_WAREHOUSE_URL" in message and "holds a password" in message
    assert "PGPASSWORD" in message and "TENANTPULSE_PG_PASSWORD" in message
    assert "s3cr3t-pw" not in message
    # A resource given such a URL (say in the UI's launchpad) refuses it when a run opens it.
    with pytest.raises(SettingsError, match="holds a password"):
        WarehouseResource(url=url).open()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPENAI_BASE_URL", "ftp://me:s3cr3t-pw@llm.internal/v1"),
        ("TENANTPULSE_AIRBYTE_URL", "airbyte://me:s3cr3t-pw@airbyte.internal"),
        ("TENANTPULSE_SLACK_API_URL", "ws://bot:s3cr3t-pw@slack.internal/api/"),
        ("TENANTPULSE_WAREHOUSE_URL", "mysql://me:s3cr3t-pw@db.internal/x"),
    ],
)
def test_a_refused_url_is_named_without_its_password(name, value):
    with pytest.raises(SettingsError) as error:
        load_settings({name: value, "TENANTPULSE_AIRBYTE_WORKSPACE_ID": "w1"})
    assert f"{name}=" in str(error.value) and ":***@" in str(error.value)
    assert "s3cr3t-pw" not in str(error.value)


def test_duckdb_url_takes_relative_and_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    assert parse_warehouse_url("duckdb:////tmp/x.duckdb").duckdb_path == Path("/tmp/x.duckdb")
    assert parse_warehouse_url("duckdb:///data/x.duckdb").duckdb_path == tmp_path / "data/x.duckdb"
    # A relative path whose first folder is also one of / is written with ./ to mean it.
    assert parse_warehouse_url("duckdb:///./tmp/x.duckdb").duckdb_path == tmp_path / "tmp/x.duckdb"
    assert parse_warehouse_url("duckdb:///x.duckdb").duckdb_path == tmp_path / "x.duckdb"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "duckdb:///etc/passwd",
            "is the relative path etc/passwd (from {cwd}), though /etc exists; allowed: "
            "duckdb:////etc/passwd for the absolute path, duckdb:///./etc/passwd for the relative",
        ),
        ("duckdb:///tmp/warehouse.duckdb", "duckdb:////tmp/warehouse.duckdb for the absolute"),
        ("duckdb:////etc/passwd", "is a file in the system folder /etc"),
        ("duckdb:////usr/local/warehouse.duckdb", "is a file in the system folder /usr"),
        ("duckdb:///notes.txt", "{cwd}/notes.txt, an existing file that is not a DuckDB database"),
        ("duckdb:///empty.duckdb", "an existing file that is not a DuckDB database"),
        ("duckdb:///folder", "{cwd}/folder, which is not a file"),
    ],
)
def test_a_duckdb_path_that_is_not_what_was_meant_is_refused(tmp_path, monkeypatch, url, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a database\n")
    (tmp_path / "empty.duckdb").touch()
    (tmp_path / "folder").mkdir()
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SettingsError, match="TENANTPULSE_WAREHOUSE_URL") as error:
        load_settings(
            {"TENANTPULSE_HOME": str(tmp_path / "home"), "TENANTPULSE_WAREHOUSE_URL": url}
        )
    assert message.format(cwd=tmp_path) in str(error.value)
    assert sorted(tmp_path.rglob("*")) == before  # nothing created, nothing changed
    assert (tmp_path / "notes.txt").read_text() == "not a database\n"


def test_an_existing_duckdb_database_is_accepted_whatever_its_name(tmp_path):
    path = tmp_path / "warehouse.db"
    duckdb.connect(str(path)).close()
    assert parse_warehouse_url(f"duckdb:///{path}").duckdb_path == path


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
        ({"TENANTPULSE_FLOW_AFTER_SYNCS": "hourly"}, "TENANTPULSE_FLOW_AFTER_SYNCS"),
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


def test_the_settings_repr_holds_no_secret_read_from_the_environment(tmp_path):
    secrets = {
        "OPENAI_API_KEY": "sk-FAKE-openai",
        "PGPASSWORD": "FAKE-pg",
        "TENANTPULSE_PG_PASSWORD": "FAKE-dbt-pg",
        "TENANTPULSE_WEBHOOK_SECRET": "FAKE-webhook",
        "TENANTPULSE_SLACK_TOKEN": "xoxb-FAKE",
        "TENANTPULSE_AIRBYTE_URL": "http://127.0.0.1:8000",
        "TENANTPULSE_AIRBYTE_WORKSPACE_ID": "w1",
        "TENANTPULSE_AIRBYTE_CLIENT_ID": "c1",
        "TENANTPULSE_AIRBYTE_CLIENT_SECRET": "FAKE-airbyte",
    }
    settings = load_settings({"TENANTPULSE_HOME": str(tmp_path), **secrets})
    assert settings.source_variables["PGPASSWORD"] == "FAKE-pg"  # still passed to child processes
    shown = repr(settings) + str(settings)
    assert [name for name in secrets if "FAKE" in secrets[name] and secrets[name] in shown] == []


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
