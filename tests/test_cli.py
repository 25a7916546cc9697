"""The tenantpulse command as a user types it: clear one-line errors, a flow stopped where asked,
failed runs told by their cause (the demo end to end: tests/test_demo.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import dagster as dg
import pytest
from click.testing import CliRunner

from conftest import DAILY_PARTITIONS_END
from tenantpulse import flow_runs
from tenantpulse.cli import main
from tenantpulse.config import AIRBYTE_CLIENT_SECRET, load_settings
from tenantpulse.defs.landing import landing_run_config
from tenantpulse.flow_runs import dagster_instance, describe_run, run_failure
from tenantpulse.standins.airbyte_api import AirbyteStandIn, JobPlan
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
def test_run_stops_after_the_named_stage_and_rejects_an_unknown_one(run_cli):
    run_cli("tenants", "add", "acme", "--sources", "stripe")
    assert run_cli("simulate").exit_code == 0
    result = run_cli("run", "--until", "land", "--lookback-days", "2")
    assert result.exit_code == 0, result.output
    assert "[land] job land_job (all tenants)" in result.output and "[dbt]" not in result.output
    # `dagster job launch` created the run, and the daemon launched it, through the one code
    # server the command started, on a socket that is gone with it.
    [land] = dagster_instance(load_settings()).get_runs()
    origin = land.remote_job_origin.repository_origin.code_location_origin
    assert origin.location_name == "tenantpulse" and origin.socket.endswith("/grpc.sock")
    assert json.loads(land.tags[".dagster/grpc_info"])["socket"] == origin.socket  # the launcher's
    assert not Path(origin.socket).exists()
    [log] = (load_settings().home / "logs").glob("code-server-*.log")
    assert "Shutting down Dagster code server" in log.read_text()  # asked to, not killed
    unknown = run_cli("run", "--until", "publish")
    assert (
        unknown.exit_code != 0
        and "unknown stage 'publish'; stages: land, dbt, analyse, act" in unknown.output
    )


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_a_code_server_that_cannot_load_the_code_location_stops_the_run_with_its_error(
    run_cli, monkeypatch
):
    monkeypatch.setattr(flow_runs, "CODE_LOCATION_MODULE", "tenantpulse.no_such_module")
    run_cli("tenants", "add", "acme", "--sources", "stripe")
    result = run_cli("run")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "Error: the code server exited (log: " in result.output
    assert "No module named 'tenantpulse.no_such_module'" in result.output


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_a_run_ended_by_sigterm_stops_the_daemon_and_the_code_server_it_started(run_cli):
    run_cli("tenants", "add", "acme", "--sources", "stripe")
    assert run_cli("simulate").exit_code == 0
    home = os.environ["TENANTPULSE_HOME"]
    command = subprocess.Popen(
        [str(Path(sys.executable).with_name("tenantpulse")), "run"],
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    for line in command.stdout:
        output.append(line)
        if "dagster daemon: starting one" in line:
            break
    # Once the daemon runs (a SIGTERM while it is being started may still leave it).
    daemon_log = Path(output[-1].split("(log: ")[1].rstrip(")\n"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if daemon_log.exists() and "Instance is configured" in daemon_log.read_text():
            break
        time.sleep(0.2)
    command.send_signal(signal.SIGTERM)
    assert command.wait(timeout=120) == 128 + signal.SIGTERM, "".join(output)
    assert _processes_of(home) == [], "".join(output)


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_the_demos_syncs_are_simulated_while_the_code_server_loads_and_their_failure_stops_it(
    run_cli,
):
    run_cli("tenants", "add", "acme", "--sources", "stripe")
    settings = load_settings()
    home = os.environ["TENANTPULSE_HOME"]
    running_meanwhile = []

    def simulate_and_fail() -> None:
        running_meanwhile.extend(p for p in _processes_of(home) if " api grpc " in p)
        # Still importing the code location (seconds), not serving it yet.
        [log] = (settings.home / "logs").glob("code-server-*.log")
        assert "Started Dagster code server" not in log.read_text()
        raise click.ClickException("1 simulated syncs failed")

    with pytest.raises(click.ClickException, match="1 simulated syncs failed"):
        flow_runs.run_flow(settings, dagster_instance(settings), before_land=simulate_and_fail)
    assert len(running_meanwhile) == 1, running_meanwhile  # started before, not after
    assert _processes_of(home) == []
    assert dagster_instance(settings).get_runs() == []  # nothing was launched


def _processes_of(home: str) -> list[str]:
    """The command lines of the running processes whose TENANTPULSE_HOME is `home`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if f"TENANTPULSE_HOME={home}\0".encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


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


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_run_in_airbyte_mode_syncs_every_tenant_then_lands_those_whose_sync_succeeded(
    run_cli, monkeypatch
):
    """`tenantpulse run` in Airbyte mode (the stand-in on 127.0.0.1): one `airbyte_sync_job` run
    over the tenants, launched and followed by the command, then the land run; a failed sync is
    told by tenant and job, fails the command, and does not stop the others from landing. On
    Postgres: the stand-in writes the raw tables from this process while the runs read them."""
    local = load_settings()
    with AirbyteStandIn(open_warehouse(local.warehouse), local.simulator) as airbyte:
        monkeypatch.setenv("TENANTPULSE_AIRBYTE_URL", airbyte.url)
        monkeypatch.setenv("TENANTPULSE_AIRBYTE_WORKSPACE_ID", airbyte.workspace_id)
        monkeypatch.setenv("TENANTPULSE_AIRBYTE_CLIENT_ID", airbyte.client_id)
        monkeypatch.setenv(AIRBYTE_CLIENT_SECRET, airbyte.client_secret)
        monkeypatch.setenv("TENANTPULSE_AIRBYTE_POLL_INTERVAL_SECONDS", "0.2")
        run_cli("tenants", "add", "acme", "--sources", "stripe")
        run_cli("tenants", "add", "globex", "--sources", "stripe")
        airbyte.add_connection("acme", "stripe")
        broken = airbyte.add_connection("globex", "stripe")
        airbyte.plan(broken, JobPlan("failed", seconds=0.2))
        result = run_cli("run", "--until", "land")

    assert result.exit_code != 0 and "the flow failed" in result.output, result.output
    [failed_job] = [j.job_id for j in airbyte.jobs.values() if j.plan.status == "failed"]
    sync_line = next(
        line for line in result.output.splitlines() if "[airbyte sync] failed:" in line
    )
    assert f"globex: stripe ({broken}): Airbyte job {failed_job} failed" in sync_line
    assert "acme" not in sync_line
    assert "[land] job land_job (all tenants)" in result.output
    runs = dagster_instance(load_settings()).get_runs()
    assert sorted((r.job_name, r.status.value) for r in runs) == [
        ("airbyte_sync_job", "FAILURE"),
        ("land_job", "SUCCESS"),
    ]
    with open_warehouse(local.warehouse).connect() as conn:
        landed = conn.fetch_all("select distinct tenant_id from landing.stripe__charges")
        recorded = conn.fetch_all(
            "select tenant_id, status from ops.airbyte_sync_history order by tenant_id"
        )
    assert landed == [("acme",)]
    assert recorded == [("acme", "succeeded"), ("globex", "failed")]
