"""The tenantpulse command as a user types it: clear one-line errors, and the demo end to end."""

import datetime as dt
import json

import dagster as dg
import pytest
from click.testing import CliRunner

from conftest import DAILY_PARTITIONS_END
from tenantpulse.cli import main
from tenantpulse.config import load_settings
from tenantpulse.definitions import build_definitions
from tenantpulse.defs.landing import landing_run_config
from tenantpulse.flow_runs import dagster_instance, describe_run, run_failure
from tenantpulse.simulator import DEMO_TENANTS, planted_anomaly_dates
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import open_warehouse


@pytest.fixture
def run_cli(tmp_path, warehouse_url, monkeypatch):
    monkeypatch.setenv("TENANTPULSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TENANTPULSE_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("TENANTPULSE_SIM_END_DATE", "2026-11-01")
    monkeypatch.setenv("TENANTPULSE_SIM_HISTORY_DAYS", "40")
    monkeypatch.setenv("TENANTPULSE_SIM_VOLUME", "0.2")
    monkeypatch.setenv("TENANTPULSE_DAILY_PARTITIONS_START", "2026-07-01")
    monkeypatch.setenv("TENANTPULSE_DAILY_PARTITIONS_END", DAILY_PARTITIONS_END)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the deterministic writer

    def run(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return run


def test_tenants_add_list_remove(run_cli):
    added = run_cli("tenants", "add", "acme", "--name", "Acme Inc", "--sources", "stripe,github")
    assert added.exit_code == 0 and "registered acme (Acme Inc): github, stripe" in added.output
    listed = run_cli("tenants", "list")
    assert "acme" in listed.output and "github,stripe" in listed.output
    assert run_cli("tenants", "remove", "acme").exit_code == 0
    assert "no tenants registered" in run_cli("tenants", "list").output
    assert "removed" in run_cli("tenants", "list", "--all").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["tenants", "add", "Robert'); drop table ops.tenants;--", "--sources", "stripe"],
            "invalid tenant id",
        ),
        (["tenants", "add", "acme", "--sources", "salesforce"], "choose one or more of stripe"),
        (["tenants", "remove", "nobody"], "tenant 'nobody' is not registered"),
        (["simulate", "--tenant", "nobody"], "not active tenants: nobody"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_failing_exit(run_cli, args, message):
    result = run_cli(*args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def test_a_tenant_name_cannot_write_escapes_to_the_terminal(run_cli):
    escape = "\x1b]0;owned\x07\x1b[2J"  # set the window title, clear the screen
    added = run_cli("tenants", "add", "acme", "--name", f"Acme{escape}", "--sources", "stripe")
    assert added.exit_code != 0
    assert "the name of tenant 'acme' holds U+001B at character 5" in added.output
    assert "\x1b" not in added.output and "\x07" not in added.output
    # A name stored before names were checked is printed with its escapes spelled out.
    settings = load_settings()
    with open_warehouse(settings.warehouse).connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        conn.execute("update ops.tenants set name = %s", (f"Acme{escape}\nInc",))
    listed = run_cli("tenants", "list")
    assert listed.exit_code == 0
    assert "Acme\\x1b]0;owned\\x07\\x1b[2J\\nInc" in listed.output
    assert "\x1b" not in listed.output and "\x07" not in listed.output


def test_an_invalid_setting_stops_the_command_naming_it(run_cli, monkeypatch):
    monkeypatch.setenv("TENANTPULSE_SIM_SEED", "many")
    result = run_cli("tenants", "list")
    assert result.exit_code != 0
    assert "TENANTPULSE_SIM_SEED='many' is not an integer; allowed: 0..4294967295" in result.output


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_demo_runs_every_demo_tenant_through_the_flow_and_finds_the_planted_signals(
    run_cli, monkeypatch
):
    # The simulator's default volume and history, so the planted signals are there to find.
    monkeypatch.setenv("TENANTPULSE_SIM_HISTORY_DAYS", "120")
    monkeypatch.setenv("TENANTPULSE_SIM_VOLUME", "1.0")
    first = run_cli("demo")
    assert first.exit_code == 0, first.output
    assert "[dbt] job dbt_job (2026-07-01..2026-11-03; tests: every row)" in first.output
    for tenant in DEMO_TENANTS:
        row = next(
            line for line in first.output.splitlines() if line.startswith(tenant.tenant_id + " ")
        )
        synced, landed, quarantined = (int(v.replace(",", "")) for v in row.split()[3:6])
        assert synced > 0 and landed == synced and quarantined == 0, row
        mrr = row.split()[6]  # from analytics.user_dashboard_summary: every demo tenant has Stripe
        assert float(mrr.replace(",", "")) > 0, row
    # The demo acts on the newest day with data: the churning tenant's call and discount, once.
    fired = [line for line in first.output.splitlines() if "fired now" in line]
    assert [line.split()[2] for line in fired] == [
        "churn_rescue/offer_discount",
        "churn_rescue/schedule_customer_call",
    ]
    assert all(line.split()[:2] == ["2026-11-01", "globex_churn"] for line in fired)
    second = run_cli("demo")
    assert second.exit_code == 0, second.output
    assert "fired now" not in second.output  # the next day: the 30-day cooldown holds them back
    assert "churn_rescue/offer_discount" in second.output and "fired earlier" in second.output
    assert "[simulate] 18 syncs" in second.output
    # The second sync is dated Nov 2: the marts are rebuilt from Oct 30 for the demo's tenants,
    # the ones its land run named (all of them: more than half, so the run covers every tenant),
    # and the staging tests check the rows synced since then.
    assert (
        "[dbt] job dbt_job (2026-10-30..2026-11-03; tests: rows synced since 2026-10-30;"
        " every tenant (a land of every tenant came before, or most tenants changed))"
        in second.output
    )
    assert "[analyse] job analyse_job (2026-10-30..2026-11-03)" in second.output

    def report(tenant_id):
        result = run_cli("report", tenant_id, "--date", "2026-11-01")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    churning, growing = report("globex_churn"), report("acme_growth")
    assert churning["churn_risk"] == "high" and churning["health_score"] < growing["health_score"]
    assert growing["churn_risk"] == "low"
    assert growing["patterns"]["revenue_trend"]["direction"] == "up"
    seasonal = report("initech_weekly")["patterns"]["seasonality"]
    assert seasonal == {"weekly": True, "peak_day": "Tue"}
    found = [
        dt.date.fromisoformat(a["date"])
        for a in report("umbrella_spikes")["patterns"]["anomalies"]
        if a["metric"] == "revenue"
    ]
    history_start = dt.date(2026, 11, 1) - dt.timedelta(days=120)
    for planted, _ in planted_anomaly_dates(history_start, dt.date(2026, 11, 1)):
        assert any(abs((day - planted).days) <= 1 for day in found), (planted, found)
    slowing = report("hooli_eng")["recommendations"]
    assert any("PR" in r["action"] for r in slowing), slowing
    # Every tenant's document has grounded insights and recommendation wording.
    for tenant in DEMO_TENANTS:
        document = report(tenant.tenant_id)
        assert document["generated_by"] == "deterministic"
        assert document["grounding"]["sentences_dropped"] == 0, document["grounding"]
        assert document["insights"]["strengths"] or document["insights"]["improvements"]
        assert all(r["impact"] for r in document["recommendations"]), document
    assert any(
        s.startswith("Average daily revenue over the last 30 days is up ")
        for s in growing["insights"]["strengths"]
    )
    assert any(
        s.startswith("Churn risk is high (probability ")
        for s in churning["insights"]["improvements"]
    )
    missing = run_cli("report", "acme_growth", "--date", "2026-01-01")
    assert missing.exit_code != 0 and "no analysis of acme_growth for 2026-01-01" in missing.output

    # A backfill of 30 days of analysis is one run.
    settings = load_settings()
    job = build_definitions(settings).resolve_job_def("analyse_job")
    result = job.execute_in_process(
        instance=dagster_instance(settings),
        tags={
            "dagster/asset_partition_range_start": "2026-10-01",
            "dagster/asset_partition_range_end": "2026-10-30",
        },
    )
    assert result.success
    materialized = dagster_instance(settings).get_materialized_partitions(
        dg.AssetKey(["analysis", "health_scores"])
    )
    assert {f"2026-10-{d:02d}" for d in range(1, 31)} <= materialized


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_run_stops_after_the_named_stage_and_rejects_an_unknown_one(run_cli):
    run_cli("tenants", "add", "acme", "--sources", "stripe")
    assert run_cli("simulate").exit_code == 0
    result = run_cli("run", "--until", "land", "--lookback-days", "2")
    assert result.exit_code == 0, result.output
    assert "[land] job land_job (all tenants)" in result.output and "[dbt]" not in result.output
    unknown = run_cli("run", "--until", "publish")
    assert (
        unknown.exit_code != 0
        and "unknown stage 'publish'; stages: land, dbt, analyse, act" in unknown.output
    )


class _BrokenWarehouse(dg.ConfigurableResource):
    def setup_for_execution(self, context) -> None:
        raise ValueError("warehouse: cannot open DuckDB file /x/warehouse.duckdb: it is locked")


@dg.op
def _land_acme() -> None:
    try:
        int("1e400")
    except ValueError as error:
        raise ValueError(
            "tenant acme: stripe__charges: amount '1e400' is not an integer"
        ) from error


@dg.op
def _write_globex() -> None:
    try:
        raise ValueError("tenant globex: google_analytics__website_overview: bad date '(other)'")
    finally:
        raise RuntimeError("Current transaction is aborted")  # noqa: B012 (what DuckDB did)


@dg.op
def _fail_by_name() -> None:
    raise dg.Failure(description="1 tenant stream(s) could not be landed: acme/stripe__charges")


@dg.op
def _needs_warehouse(warehouse: _BrokenWarehouse) -> None:
    pass


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (
            _land_acme,
            "_land_acme: ValueError: tenant acme: stripe__charges: amount '1e400' is not an "
            "integer (caused by ValueError: invalid literal for int() with base 10: '1e400')",
        ),
        (
            _write_globex,
            "_write_globex: RuntimeError: Current transaction is aborted (raised while handling "
            "ValueError: tenant globex: google_analytics__website_overview: bad date '(other)')",
        ),
        (
            _fail_by_name,
            "_fail_by_name: 1 tenant stream(s) could not be landed: acme/stripe__charges",
        ),
        (
            _needs_warehouse,
            "ValueError: warehouse: cannot open DuckDB file /x/warehouse.duckdb: it is locked",
        ),
    ],
)
def test_a_failed_run_is_told_by_what_our_code_raised_not_dagsters_wrapper(op, expected):
    """What `tenantpulse run` prints after "[stage] failed:", from the run's event records."""
    job = dg.GraphDefinition(name="failing", node_defs=[op]).to_job(
        resource_defs={"warehouse": _BrokenWarehouse()}
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        text = run_failure(instance, result.run_id)
    assert text == expected
    assert "Error occurred while executing" not in text and "dagster._core" not in text


def test_a_land_run_is_described_by_the_tenants_it_covered():
    def land_run(tenants):
        return dg.DagsterRun(job_name="land_job", run_config=landing_run_config(tenants))

    assert describe_run(land_run(["acme"])) == "job land_job (tenants: acme)"
    assert describe_run(land_run(None)) == "job land_job (all tenants)"
    many = [f"t{i}" for i in range(1, 8)]
    assert describe_run(land_run(many)) == "job land_job (tenants: t1, t2, t3, t4, t5 and 2 more)"
