"""The platform's side of dbt: its environment from the one warehouse setting, and daily windows."""

import datetime as dt

import pytest

from conftest import make_settings
from tenantpulse.config import load_dbt_project_dir, parse_warehouse_url
from tenantpulse.transform import dbt_cli
from tenantpulse.transform.dbt_cli import dbt_env


def test_dbt_env_follows_the_warehouse_url(tmp_path):
    assert dbt_env(parse_warehouse_url("duckdb:////data/w.duckdb"), tmp_path) == {
        "DBT_TARGET_PATH": str(tmp_path / "target" / "duckdb"),
        "TENANTPULSE_DBT_TARGET": "duckdb",
        "TENANTPULSE_DUCKDB_PATH": "/data/w.duckdb",
    }
    postgres = parse_warehouse_url("postgresql://an%40a@db.internal:5433/warehouse")
    assert dbt_env(postgres, tmp_path) == {
        "DBT_TARGET_PATH": str(tmp_path / "target" / "postgres"),
        "TENANTPULSE_DBT_TARGET": "postgres",
        "TENANTPULSE_PG_HOST": "db.internal",
        "TENANTPULSE_PG_PORT": "5433",
        "TENANTPULSE_PG_USER": "an@a",
        "TENANTPULSE_PG_DATABASE": "warehouse",
    }


def test_callers_without_settings_find_the_dbt_project_from_the_setting(tmp_path, monkeypatch):
    assert dbt_cli.DBT_PROJECT_DIR == load_dbt_project_dir() == load_dbt_project_dir({})
    (tmp_path / "dbt_project.yml").write_text("name: tenantpulse\n")
    monkeypatch.setenv("TENANTPULSE_DBT_PROJECT_DIR", str(tmp_path))
    assert dbt_cli.DBT_PROJECT_DIR == tmp_path
    duckdb = parse_warehouse_url("duckdb:////data/w.duckdb")
    assert dbt_env(duckdb)["DBT_TARGET_PATH"] == str(tmp_path / "target" / "duckdb")


def test_daily_window_is_everything_first_then_the_days_around_the_newest_sync():
    from tenantpulse.flow import DailyWindow, daily_window

    keys = [f"2026-11-{d:02d}" for d in range(1, 26)]
    nov20 = dt.date(2026, 11, 20)
    assert daily_window(keys, True, nov20, 3) == DailyWindow("2026-11-01", "2026-11-25")
    assert daily_window(keys, False, nov20, 3) == DailyWindow("2026-11-17", "2026-11-25")
    # A sync dated after the newest partition (a simulated day past today) rebuilds the newest one.
    assert daily_window(keys, False, dt.date(2026, 12, 9), 3) == DailyWindow(
        "2026-11-25", "2026-11-25"
    )
    assert daily_window(keys, False, None, 3) == DailyWindow("2026-11-01", "2026-11-25")


def test_daily_window_gives_tenants_with_new_history_every_day_and_the_others_the_recent_ones():
    from tenantpulse.flow import ALL_TENANTS, DailyWindow, daily_window, history_tag

    keys = [f"2026-11-{d:02d}" for d in range(1, 26)]
    nov20 = dt.date(2026, 11, 20)
    assert daily_window(keys, False, nov20, 3, ("newco", "anco")) == DailyWindow(
        "2026-11-01", "2026-11-25", ("anco", "newco"), "2026-11-17"
    )
    # Every tenant, or a recent window that starts on the first day anyway: one plain window.
    assert daily_window(keys, False, nov20, 3, (ALL_TENANTS,)) == DailyWindow(
        "2026-11-01", "2026-11-25"
    )
    assert daily_window(keys, False, dt.date(2026, 11, 2), 3, ("newco",)) == DailyWindow(
        "2026-11-01", "2026-11-25"
    )
    assert history_tag({"b", "a"}) == "a,b"
    assert history_tag({f"t{i}" for i in range(101)}) == ALL_TENANTS


def test_staging_tests_check_every_row_until_a_run_passed_then_the_syncs_landed_since():
    from tenantpulse.flow import tests_since

    def nov(day: int) -> dt.date:
        return dt.date(2026, 11, day)

    assert tests_since(None, nov(20)) is None  # never passed, or the last run failed
    assert tests_since(["2026-11-20", None], nov(20)) is None  # a land run that did not say
    assert tests_since(["2026-11-20"], nov(20)) == nov(20)
    # A sync landed late (rows synced Nov 12), by another land run since: inside the window.
    assert tests_since(["2026-11-20", "2026-11-12", ""], nov(20)) == nov(12)
    assert tests_since(["", ""], nov(20)) == nov(20)  # nothing merged since: the newest day
    assert tests_since([], None) is None  # nothing landed ever


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_dagster_dbt_runs_over_different_windows_reuse_the_parse_of_the_project(
    settings, warehouse, tmp_path, monkeypatch
):
    """Each run's window (a row of ops.dbt_run_window, not `--vars`) leaves dbt's saved parse
    valid: a second run with another first test day parses nothing again. The shared parse was
    made for another warehouse (as the image's is, at build time): the first run parses in full,
    and keeps its parse for this warehouse's next runs. Before each dbt command the step neither
    asks dbt its version in a subprocess nor builds a dbt adapter (TenantpulseDbtCliResource)."""
    import dagster as dg
    import dagster_dbt.core.resource
    import dbt.adapters.factory
    from bench import dbt_times

    from tenantpulse import definitions
    from tenantpulse.defs import dbt as dbt_defs
    from tenantpulse.defs.dbt import dbt_run_config, remove_run_folder
    from tenantpulse.landing.merge import ensure_landing_tables
    from tenantpulse.sources.contracts import STREAMS

    # A shared target folder of this test's own, parsed for another warehouse.
    monkeypatch.setattr(dbt_cli, "target_path", lambda warehouse, _=None: tmp_path / "target")
    monkeypatch.setattr(definitions, "target_path", dbt_cli.target_path)
    dbt_cli.prepare_manifest(make_settings(tmp_path / "other", f"duckdb:///{tmp_path}/o.duckdb"))
    assert not dbt_cli.saved_parse(settings).exists()
    with warehouse.connect() as conn:
        for contract in STREAMS:
            ensure_landing_tables(conn, contract)
    defs = definitions.build_definitions(settings)  # dbt parse
    job = defs.resolve_job_def("dbt_job")
    instance = dg.DagsterInstance.ephemeral()
    views = [
        key
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        if key.path[0] in ("staging", "intermediate")
    ]
    logs, removed = [], []

    def read_log_then_remove(folder):  # each successful run's folder is removed at its end
        logs.append((folder / "dbt.log").read_text())
        removed.append(folder)
        remove_run_folder(folder)

    monkeypatch.setattr(dbt_defs, "remove_run_folder", read_log_then_remove)
    # dagster-dbt's own DbtCliResource would call both before each dbt command.
    version_asked, adapters_built = [], []
    monkeypatch.setattr(
        dagster_dbt.core.resource,
        "check_output",
        lambda command, **_: version_asked.append(command) or b"no version",
    )
    monkeypatch.setattr(dbt.adapters.factory, "get_adapter", adapters_built.append)
    for since in ("2026-11-01", "2026-11-02"):
        result = job.execute_in_process(
            instance=instance,
            asset_selection=views,
            run_config=dbt_run_config(dt.date.fromisoformat(since), (), None),
        )
        assert result.success
        # What the run's folder held of dbt's times per model is in the run's events too.
        models, tests = dbt_times.run_times(instance, result.run_id)
        assert set(models) == {key.path[-1] for key in views}
        assert all(seconds >= 0 for seconds in [*models.values(), *tests.values()])
        assert removed[-1].parent == tmp_path / "target"
        assert removed[-1].name.startswith(f"dbt_models-{result.run_id[:7]}-")
        assert not removed[-1].exists()
        with warehouse.connect() as conn:
            assert (
                conn.fetch_value(
                    "select cast(tests_since as varchar) from ops.dbt_run_window where run_id = %s",
                    (result.run_id,),
                )
                == since
            )
    assert version_asked == [] and adapters_built == []
    first, second = logs
    assert "Unable to do partial parsing because profile has changed" in first
    assert dbt_cli.saved_parse(settings).exists()
    assert "Unable to do partial parsing" not in second and "Partial parsing enabled" in second


def test_dbt_invocations_at_once_each_write_their_own_folder_reusing_their_warehouses_parse(
    tmp_path, monkeypatch
):
    """The shared target folder holds the parse the code location reads: invocations never write
    into it, so none reads a manifest another is half-way through writing (a test once read one,
    and failed on `Extra data`). Each starts from the parse saved for its warehouse, reused."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    shared = tmp_path / "target"
    monkeypatch.setattr(dbt_cli, "target_path", lambda warehouse, _=None: shared)
    settings = make_settings(tmp_path, f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    manifest = dbt_cli.prepare_manifest(settings)
    assert sorted(p.name for p in shared.iterdir()) == ["manifest.json", "partial_parse.msgpack"]
    parsed = manifest.stat().st_mtime_ns

    parse = ["parse", "--debug"]
    with ThreadPoolExecutor(2) as pool:
        kept, scratch = pool.map(
            lambda target_dir: dbt_cli.run_dbt(settings, parse, True, target_dir=target_dir),
            [tmp_path / "kept", None],
        )
    for done in (kept, scratch):
        assert done.returncode == 0, done.stdout[-3000:]
        assert "Unable to do partial parsing" not in done.stdout
        assert "Partial parsing enabled" in done.stdout
    assert "Partial parsing enabled" in (tmp_path / "kept" / "dbt.log").read_text()
    assert json.loads((tmp_path / "kept" / "manifest.json").read_text())["nodes"]
    # The shared parse untouched, and the folder of the invocation without one removed.
    assert manifest.stat().st_mtime_ns == parsed
    assert sorted(p.name for p in shared.iterdir()) == ["manifest.json", "partial_parse.msgpack"]


def test_each_warehouse_keeps_its_own_parse_in_the_home(tmp_path):
    """dbt reuses a parse only for the profile it was made with: one saved parse per warehouse."""

    def saved(url):
        return dbt_cli.saved_parse(make_settings(tmp_path, url))

    duckdb_a = saved("duckdb:////data/a/warehouse.duckdb")
    postgres_1 = saved("postgresql://tp@db.internal:5432/tenantpulse")
    assert duckdb_a == saved("duckdb:////data/a/warehouse.duckdb")
    assert duckdb_a != saved("duckdb:////data/b/warehouse.duckdb")
    assert postgres_1 != saved("postgresql://tp@db.internal:5432/other")
    assert postgres_1 != saved("postgresql://tp@db.internal:5433/tenantpulse")
    assert duckdb_a.parent == postgres_1.parent == tmp_path / "home" / "dbt"
    assert duckdb_a.name.startswith("duckdb-") and postgres_1.name.startswith("postgres-")
