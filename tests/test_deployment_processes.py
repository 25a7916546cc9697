"""The production processes, started for real on this machine: the code-location gRPC server
(`dagster api grpc -m tenantpulse.definitions`), `dagster-daemon run` and `dagster-webserver`, each
its own process, sharing one Dagster instance on Postgres configured by deploy/dagster.yaml as it
ships, and a Postgres warehouse. The test only registers tenants and plays Airbyte with the CLI,
as an operator would; the daemon's sensors must then run the whole flow by themselves, and the
runs are read back through the webserver's GraphQL API.

What it does not cover: containers (the image, docker compose, Kubernetes and the
K8sRunLauncher) - there is no Docker engine or cluster here; tests/test_deploy.py checks those
files against their schemas offline."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest

from conftest import (
    DAILY_PARTITIONS_END,
    POSTGRES_ADMIN_URL,
    SHORT_HISTORY,
    SHORT_HISTORY_START,
    SIM_END_DATE,
    _admin_connection,
)
from deploy_harness import (
    BIN,
    INSTANCE_QUERY,
    LOCATIONS_QUERY,
    Processes,
    RunRecord,
    clean_environment,
    failure_messages,
    free_port,
    graphql,
    grpc_server_ready,
    run_cli,
    runs_via_webserver,
    server_info,
    wait_for,
    write_dagster_home,
)
from tenantpulse import flow
from tenantpulse.defs.dbt import dbt_run_config_of

pytestmark = pytest.mark.postgres

# The flow's order is the code location's (tenantpulse.flow), not a copy kept here.
FLOW_TAG, NEXT_TAG, END = flow.FLOW_TAG, flow.NEXT_TAG, flow.END
FLOW_JOBS = [stage.job for stage in flow.STAGES]
SENSORS = ["new_syncs_sensor", "flow_sensor"]
TENANTS = {"t1": "stripe,github", "t2": "stripe,shopify,google_analytics"}
# Seconds one flow may take, from the sync to act_job's success: 442 s were seen at load average
# 12 on 2 cores, and a first flow took over 600 s at load average 14.
FLOW_TIMEOUT = 900


@pytest.fixture
def warehouse_db_url():
    """A second fresh database: the warehouse, apart from Dagster's storage as in production."""
    name = f"tenantpulse_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as admin:
        admin.execute(f'create database "{name}"')
    yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with _admin_connection() as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


def dagster_storage_env(url: str) -> dict[str, str]:
    """The variables deploy/dagster.yaml reads, for the database at `url`."""
    parts = urlsplit(url)
    return {
        "DAGSTER_PG_HOST": parts.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_USER": parts.username or "postgres",
        "DAGSTER_PG_PASSWORD": parts.password or "",
        "DAGSTER_PG_DB": parts.path.lstrip("/"),
    }


def test_daemon_webserver_and_code_server_run_the_flow_by_themselves(
    tmp_path, postgres_url, warehouse_db_url
):
    test_started = time.monotonic()
    grpc_port, web_port = free_port(), free_port()
    dagster_home = tmp_path / "dagster_home"
    workspace = write_dagster_home(dagster_home, grpc_port)
    env = clean_environment(
        DAGSTER_HOME=str(dagster_home),
        **dagster_storage_env(postgres_url),
        # The suite's settings (tests/conftest.py make_settings), as environment variables, but
        # the simulator's shortest history and daily partitions from its first day (local mode's
        # default): fewer partitions for the first build's bookkeeping, and every stage still
        # gets rows for both tenants.
        TENANTPULSE_HOME=str(tmp_path / "home"),
        TENANTPULSE_WAREHOUSE_URL=warehouse_db_url,
        TENANTPULSE_SIM_END_DATE=SIM_END_DATE,
        TENANTPULSE_SIM_VOLUME="0.3",
        **SHORT_HISTORY,
        TENANTPULSE_DAILY_PARTITIONS_END=DAILY_PARTITIONS_END,
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = Processes(env, logs)

    def diagnostics() -> str:
        try:
            runs = runs_via_webserver(web_port)
            seen = "\n".join(f"  {r.describe()}" for r in runs)
            seen += "".join(
                f"\n--- why {r.job} {r.run_id[:8]} failed ---\n{failure_messages(web_port, r.run_id)}"
                for r in runs
                if r.status == "FAILURE"
            )
        except Exception as error:  # the webserver may be what failed
            seen = f"  (could not read runs: {error})"
        tails = "\n".join(
            f"--- {p.name} (last lines) ---\n{p.tail(3000)}" for p in processes.started
        )
        return f"runs seen:\n{seen or '  none'}\n{tails}"

    try:
        processes.start(
            "code-server",
            [
                str(BIN / "dagster"),
                "api",
                "grpc",
                "--module-name",
                "tenantpulse.definitions",
                "--host",
                "127.0.0.1",
                "--port",
                str(grpc_port),
            ],
        )
        wait_for(
            "the code server's gRPC health check",
            lambda: grpc_server_ready(grpc_port, env),
            timeout=120,
            interval=2,
            alive=processes.check_alive,
        )
        processes.start(
            "daemon", [str(BIN / "dagster-daemon"), "run", "--workspace", str(workspace)]
        )
        processes.start(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                "--host",
                "127.0.0.1",
                "--port",
                str(web_port),
                "--workspace",
                str(workspace),
            ],
        )
        info = wait_for(
            "the webserver's /server_info",
            lambda: server_info(web_port),
            timeout=90,
            alive=processes.check_alive,
            on_timeout=diagnostics,
        )
        assert info["dagster_version"] == "1.13.27", info

        # The webserver reaches the code location through the gRPC server of the workspace file.
        def loaded_location():
            workspace_data = graphql(web_port, LOCATIONS_QUERY)["workspaceOrError"]
            [entry] = workspace_data["locationEntries"]
            return entry if entry["loadStatus"] == "LOADED" else None

        entry = wait_for(
            "the code location to load", loaded_location, timeout=60, on_timeout=diagnostics
        )
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location
        [repository] = location["repositories"]
        assert set(FLOW_JOBS) <= {job["name"] for job in repository["jobs"]}
        sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
        assert {name: sensors.get(name) for name in SENSORS} == dict.fromkeys(SENSORS, "RUNNING")

        # An operator's part: register two tenants, and Airbyte (the simulator) syncs them.
        for tenant, sources in TENANTS.items():
            run_cli(["tenants", "add", tenant, "--sources", sources], env, tmp_path)
        synced = time.monotonic()
        run_cli(["simulate"], env, tmp_path)

        # The rest is the daemon's: new_syncs_sensor -> land_job -> flow_sensor -> each stage.
        def flow_by_itself(name: str, seen: set[str]) -> list[RunRecord]:
            runs = wait_for(
                f"the {name} flow to reach act_job by itself",
                lambda: _flow_done(web_port, seen),
                timeout=FLOW_TIMEOUT,
                interval=2,
                on_timeout=diagnostics,
                alive=processes.check_alive,
            )
            assert [r.job for r in runs] == FLOW_JOBS, [r.describe() for r in runs]
            assert all(r.status == "SUCCESS" for r in runs), [r.describe() for r in runs]
            assert {r.tags[flow.TRIGGER_TAG] for r in runs} == {"new_syncs"}
            return runs

        first = flow_by_itself("first", set())
        sync_to_act = time.monotonic() - synced
        first_flow = first[-1].tags[FLOW_TAG]
        assert (FLOW_JOBS[0], FLOW_JOBS[-1]) == ("land_job", "act_job"), FLOW_JOBS
        # The first build: every day, every row tested; the actions on the newest day with data.
        assert _dbt_window(first[1]) == (SHORT_HISTORY_START, DAILY_PARTITIONS_END, None)
        assert first[-1].tags["dagster/partition"] == SIM_END_DATE

        with psycopg.connect(warehouse_db_url) as conn:
            for table in (
                "analytics.tenant_daily_metrics",
                "analysis.health_scores",
                "analysis.insights",
            ):
                rows = dict(
                    conn.execute(f"select tenant_id, count(*) from {table} group by 1").fetchall()
                )
                assert set(TENANTS) <= set(rows), f"{table}: rows per tenant {rows}"
            assert conn.execute("select to_regclass('ops.action_log')").fetchone()[0] is not None

        # The webserver serves the instance deploy/dagster.yaml describes, and sees the daemon's
        # heartbeats in it (the required daemons are healthy).
        instance = graphql(web_port, INSTANCE_QUERY)["instance"]
        assert instance["runLauncher"]["name"] == "DefaultRunLauncher"
        assert instance["runQueuingSupported"]
        assert instance["runQueueConfig"]["maxConcurrentRuns"] == 4
        assert "tenantpulse/flow" in instance["runQueueConfig"]["tagConcurrencyLimitsYaml"]
        assert "PostgresRunStorage" in (instance["info"] or "PostgresRunStorage")
        unhealthy = [
            d["daemonType"]
            for d in instance["daemonHealth"]["allDaemonStatuses"]
            if d["required"] and not d["healthy"]
        ]
        assert unhealthy == [], f"daemons not healthy: {unhealthy}"

        # The next simulated day: its sync alone leads the daemon through the same runs, now over
        # the days around the new sync (Nov 2), its staging tests over that sync's rows alone.
        run_cli(["simulate"], env, tmp_path)
        second = flow_by_itself("second", {first_flow})
        assert _dbt_window(second[1]) == ("2026-10-30", DAILY_PARTITIONS_END, "2026-11-02")
        assert second[-1].tags["dagster/partition"] == "2026-11-02"
        with psycopg.connect(warehouse_db_url) as conn:
            # Both land runs marked their tenants for a build, and both dbt runs cleared them.
            assert conn.execute("select count(*) from ops.dbt_pending_tenants").fetchone() == (0,)
            newest = conn.execute("select max(as_of) from analysis.health_scores").fetchone()[0]
            assert str(newest)[:10] == DAILY_PARTITIONS_END

        print(
            f"\ndeployment processes: first sync to act_job success {sync_to_act:.1f} s "
            f"(flow {first_flow}: "
            + ", ".join(f"{r.job} {r.ended - r.created:.1f} s" for r in first)
            + f"); test {time.monotonic() - test_started:.1f} s"
        )
    finally:
        processes.stop()


def _flow_done(web_port: int, seen: set[str]) -> list[RunRecord] | None:
    """The runs of a flow not in `seen` (flow ids) once its act_job run has succeeded, in creation
    order; raise at once if a run failed or the flow ended early (the sensor's tenantpulse/next
    tag says why)."""
    runs = [
        r
        for r in runs_via_webserver(web_port)
        if FLOW_TAG in r.tags and r.tags[FLOW_TAG] not in seen
    ]
    for run in runs:
        if run.status in ("FAILURE", "CANCELED"):
            raise AssertionError(f"a flow run did not succeed: {run.describe()}")
        if run.tags.get(NEXT_TAG, "").startswith(END) and run.job != FLOW_JOBS[-1]:
            raise AssertionError(f"the flow ended before act_job: {run.describe()}")
    for act in (r for r in runs if r.job == FLOW_JOBS[-1] and r.status == "SUCCESS"):
        flow = [r for r in runs if r.tags[FLOW_TAG] == act.tags[FLOW_TAG]]
        return flow
    return None


def _dbt_window(run: RunRecord) -> tuple[str, str, str | None]:
    """A dbt_job run's days (its partition range) and the first sync day its staging tests
    checked (None: every row)."""
    since = dbt_run_config_of(run.run_config).test_rows_synced_since
    return (
        run.tags[flow.PARTITION_RANGE_START],
        run.tags[flow.PARTITION_RANGE_END],
        since or None,
    )
