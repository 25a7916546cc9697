"""Start a flow through the Dagster instance and follow its runs: what `tenantpulse run` and
`tenantpulse demo` do.

The CLI launches the flow's first run with `dagster job launch` (into the instance's run queue)
and the daemon does the rest, as it does for a sync it notices by itself: it dequeues the run,
and `flow_sensor` launches each next stage when one succeeds (defs/flow.py). With no daemon
running for this DAGSTER_HOME (no `make dev`), the CLI starts one for the flow's duration. Both
reach the code location through one code server the CLI starts for the flow (`dagster api grpc`),
not each through one of its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tenantpulse import flow
from tenantpulse.config import Settings, child_environment
from tenantpulse.defs.dbt import dbt_run_config_of
from tenantpulse.defs.flow import flow_tags
from tenantpulse.defs.landing import landing_run_config, landing_run_tenants
from tenantpulse.defs.partitions import partition_ranges, tenant_partitions
from tenantpulse.defs.tenants import sync_tenant_partitions
from tenantpulse.flow import FlowError
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import open_warehouse

LOCATION_NAME = "tenantpulse"
CODE_LOCATION_MODULE = "tenantpulse.definitions"
# Stopping a daemon or code server the CLI started: then what is left of its process group is
# killed.
STOP_TIMEOUT_SECONDS = 30
# Loading the code location takes seconds; minutes on a machine busy with other work.
CODE_SERVER_START_TIMEOUT_SECONDS = 300
DAGSTER_YAML = """\
# Written by tenantpulse on first use; edit freely, it is not overwritten.
# One run at a time: the local DuckDB warehouse allows one writing process per file.
concurrency:
  runs:
    max_concurrent_runs: 1
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
# The default launcher cannot tell that a run's process died: a run still STARTED after
# max_runtime_seconds is failed, so a killed run does not hold the one-run queue for good.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  max_runtime_seconds: 7200
telemetry:
  enabled: false
"""
WORKSPACE_YAML = f"""\
# Written by tenantpulse: the code location `make dev`, the daemon and the CLI all load.
load_from:
  - python_module:
      module_name: {CODE_LOCATION_MODULE}
      location_name: {LOCATION_NAME}
"""
DAEMON_HEARTBEAT_FRESH = dt.timedelta(seconds=60)  # daemons beat every 30 s
SYNC_STAGE = "airbyte sync"
TERMINAL = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}


@dataclass(frozen=True)
class StageRun:
    stage: str
    run_ids: tuple[str, ...]
    success: bool
    error: str | None = None
    seconds: float = 0.0  # the run's own time, start to end (not its wait in the queue)
    partitions: str = ""  # what it covered: a range of days, the tenants, the tests' rows


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under DAGSTER_HOME (created with a local dagster.yaml if new)."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return dg.DagsterInstance.from_config(str(settings.dagster_home))


def workspace_file(settings: Settings) -> Path:
    """The workspace every Dagster process of this home loads, so that runs launched by the CLI,
    the daemon and the UI have the same code location origin."""
    path = settings.dagster_home / "workspace.yaml"
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != WORKSPACE_YAML:
        path.write_text(WORKSPACE_YAML)
    return path


@contextlib.contextmanager
def code_server(
    settings: Settings, while_loading: Callable[[], object] | None = None
) -> Iterator[Path]:
    """A code server for the Dagster processes of one CLI command (`dagster job launch`, the
    daemon it starts), stopped on the way out; yields a workspace file that points at it. With
    the home's workspace each of them would start a code server of its own and import the code
    location in it (about 4 s each). The location keeps its name, so the runs are the same
    location's in the UI and in a daemon of `make dev`. `while_loading` is called once the
    server is started, before waiting for it to load the location (it reads no warehouse)."""
    with tempfile.TemporaryDirectory(prefix="tenantpulse-code-server-") as folder:
        socket = Path(folder, "grpc.sock")  # a short path: a socket's is at most 107 bytes
        workspace = Path(folder, "workspace.yaml")
        workspace.write_text(
            "load_from:\n  - grpc_server:\n"
            f"      socket: {socket}\n      location_name: {LOCATION_NAME}\n"
        )
        log_path = _new_log(settings, "code-server")
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [dagster_command("dagster"), "api", "grpc", "--module-name"]
                + [CODE_LOCATION_MODULE, "--socket", str(socket)],
                env=child_environment(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the runs it starts stop with it
            )
        try:
            if while_loading is not None:
                while_loading()
            _wait_until_serving(server, socket, log_path)
            yield workspace
        finally:
            # It does not stop on a signal, but when asked through its API (as Dagster's own
            # processes stop the code servers they start).
            with contextlib.suppress(grpc.RpcError), _channel(socket) as channel:
                channel.unary_unary("/api.DagsterApi/ShutdownServer")(b"", timeout=15)
            _stop(server)


def _channel(socket: Path) -> grpc.Channel:
    return grpc.insecure_channel(f"unix:{socket}")


def _wait_until_serving(server: subprocess.Popen, socket: Path, log_path: Path) -> None:
    """Until the code server answers gRPC's standard health check, which it does once it has
    loaded the code location."""
    deadline = time.monotonic() + CODE_SERVER_START_TIMEOUT_SECONDS
    request = health_pb2.HealthCheckRequest(service="DagsterApi")
    while time.monotonic() < deadline:
        if server.poll() is not None:
            lines = log_path.read_text(errors="replace").strip().splitlines() or ["(no output)"]
            raise FlowError(f"the code server exited (log: {log_path}): {lines[-1][:2000]}")
        if socket.exists():
            with contextlib.suppress(grpc.RpcError), _channel(socket) as channel:
                status = health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
        time.sleep(0.2)
    raise FlowError(
        f"the code server did not serve within {CODE_SERVER_START_TIMEOUT_SECONDS} s "
        f"(log: {log_path})"
    )


def _new_log(settings: Settings, process: str) -> Path:
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{process}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.log"


def dagster_command(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def daemon_is_running(instance: dg.DagsterInstance) -> bool:
    """A daemon sent a heartbeat for this instance within the last minute."""
    now = time.time()
    beats = instance.get_daemon_heartbeats()
    required = ("SENSOR", "QUEUED_RUN_COORDINATOR")
    return all(
        t in beats and now - beats[t].timestamp < DAEMON_HEARTBEAT_FRESH.total_seconds()
        for t in required
    )


@contextlib.contextmanager
def running_daemon(
    settings: Settings,
    instance: dg.DagsterInstance,
    echo: Callable[[str], None],
    workspace: Path | None = None,
) -> Iterator[None]:
    """The instance's daemon: the one already running (`make dev`), else one started here on
    `workspace` (default: the home's) and stopped on the way out."""
    if daemon_is_running(instance):
        echo("dagster daemon: using the one running for this DAGSTER_HOME")
        yield
        return
    log_path = _new_log(settings, "daemon")
    echo(f"dagster daemon: starting one for this flow (log: {log_path})")
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [dagster_command("dagster-daemon"), "run", "-w"]
            + [str(workspace or workspace_file(settings))],
            env=child_environment(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server and runs stop with it
        )
    try:
        yield
    finally:
        _stop(daemon)
        # Its last heartbeats would pass for a live daemon for another minute: the next command
        # would wait on it instead of starting its own.
        instance.wipe_daemon_heartbeats()


def _stop(process: subprocess.Popen) -> None:
    """Stop a daemon or code server and every process of its group (a daemon's code server and
    runs), not only it: a daemon's code server was seen still shutting down after the daemon had
    exited."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _group_alive(group_id: int) -> bool:
    """Whether a process of the group still runs. A zombie (exited, not reaped yet by the process
    it was handed to, which on some machines is never) does not."""
    try:
        os.killpg(group_id, 0)
    except ProcessLookupError:
        return False
    if not Path("/proc").is_dir():
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(group) == group_id and state != "Z":
                return True
    return False


def launch_job(settings: Settings, workspace: Path, job: str, run_config: dict, tags: dict) -> None:
    """Submit one run of `job` to the instance's queue, as `dagster job launch` does."""
    done = subprocess.run(
        [
            dagster_command("dagster"),
            "job",
            "launch",
            "-w",
            str(workspace),
            "-l",
            LOCATION_NAME,
            "-j",
            job,
            "--config-json",
            json.dumps(run_config),
            "--tags",
            json.dumps(tags),
        ],
        env=child_environment(settings),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise FlowError(f"could not launch {job}: {(done.stderr or done.stdout)[-2000:]}")


def run_flow(
    settings: Settings,
    instance: dg.DagsterInstance,
    tenant_ids: list[str] | None = None,
    echo: Callable[[str], None] = print,
    lookback_days: int = flow.DEFAULT_LOOKBACK_DAYS,
    until: str | None = None,
    on_stage: Callable[[StageRun], None] | None = None,
    stage_timeout_seconds: float = 600.0,
    before_land: Callable[[], object] | None = None,
) -> list[StageRun]:
    """Run the flow for `tenant_ids` (default: every active tenant) through the instance and wait
    for it: in Airbyte mode their syncs first, then a land run that `flow_sensor` follows with
    each next stage, up to `until` (a stage name). Returns each stage's run, in order; stops at
    the first that fails. `on_stage` is called with each as it ends. `before_land` (the demo's
    simulated syncs) runs while the code server loads, before anything is launched."""
    if until is not None:
        flow.stage_named(until)
    with open_warehouse(settings.warehouse).connect() as conn:
        registered = [t.tenant_id for t in list_tenants(conn)]
    unknown = sorted(set(map(validate_tenant_id, tenant_ids or [])) - set(registered))
    if unknown:
        raise ValueError(
            f"not active tenants: {', '.join(unknown)} (see `tenantpulse tenants list`)"
        )
    sync_tenant_partitions(instance, registered)
    tags = flow_tags(f"cli-{uuid.uuid4().hex[:12]}", "cli", lookback_days, until)
    results: list[StageRun] = []

    def report(stage_run: StageRun) -> None:
        results.append(stage_run)
        echo(f"[{stage_run.stage}] {stage_run.partitions}: {stage_run.seconds:.1f}s")
        if not stage_run.success:
            echo(f"[{stage_run.stage}] failed: {stage_run.error}")
        if on_stage is not None:
            on_stage(stage_run)

    with _stopped_on_sigterm(), code_server(settings, before_land) as workspace:
        if settings.airbyte is None:
            # Queued before the daemon starts: new_syncs_sensor then finds the syncs covered by it.
            launch_job(settings, workspace, flow.LAND.job, landing_run_config(tenant_ids), tags)
        with running_daemon(settings, instance, echo, workspace):
            if settings.airbyte is not None:
                # A failed sync fails its tenants; the others still land.
                synced = _sync(
                    settings,
                    workspace,
                    instance,
                    tenant_ids or registered,
                    tags,
                    stage_timeout_seconds,
                )
                report(synced)
                launch_job(settings, workspace, flow.LAND.job, landing_run_config(tenant_ids), tags)
            for stage_run in follow_flow(instance, tags[flow.FLOW_TAG], stage_timeout_seconds):
                report(stage_run)
    return results


@contextlib.contextmanager
def _stopped_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the command as an exit, through the `finally` blocks that stop the daemon and
    the code server it started; Python's default ends the process without them, and the next
    command took the dead daemon's heartbeats for a live one. Only the main thread sets
    handlers; the previous one comes back on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_on_sigterm(signum: int, _frame) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        yield
    finally:
        # None: a handler not set from Python, which cannot be put back; the default instead.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _sync(settings, workspace, instance, tenant_ids, tags, timeout) -> StageRun:
    from tenantpulse.defs.airbyte import SYNC_JOB

    ordered = list(instance.get_dynamic_partitions(tenant_partitions.name))
    sync_tags = tags | {flow.FLOW_TAG: tags[flow.FLOW_TAG] + "-sync"}
    for first, last in partition_ranges(ordered, tenant_ids):
        launch_job(
            settings,
            workspace,
            SYNC_JOB,
            {},
            sync_tags | {flow.PARTITION_RANGE_START: first, flow.PARTITION_RANGE_END: last},
        )
    runs = _wait_for_runs(instance, sync_tags[flow.FLOW_TAG], timeout)
    failed = [r for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
    return StageRun(
        SYNC_STAGE,
        tuple(r.run_id for r in runs),
        not failed,
        "; ".join(run_failure(instance, r.run_id) for r in failed) or None,
        sum(_run_seconds(instance, r.run_id) for r in runs),
        f"tenants: {len(tenant_ids)}",
    )


def _wait_for_runs(instance, flow_id, timeout) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout
    while True:
        runs = instance.get_runs(dg.RunsFilter(tags={flow.FLOW_TAG: flow_id}))
        if runs and all(r.status in TERMINAL for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise FlowError(f"runs of {flow_id} not finished after {timeout:.0f}s")
        time.sleep(0.5)


def follow_flow(
    instance: dg.DagsterInstance, flow_id: str, stage_timeout_seconds: float
) -> Iterator[StageRun]:
    """Each run of the flow as it ends, until one fails or the sensor ends the flow. A run must
    start within `stage_timeout_seconds` of the previous one's end, and end within as long."""
    reported: set[str] = set()
    waited_since = time.monotonic()
    while True:
        runs = instance.get_runs(dg.RunsFilter(tags={flow.FLOW_TAG: flow_id}))
        finished = [r for r in reversed(runs) if r.status in TERMINAL and r.run_id not in reported]
        for run in finished:
            reported.add(run.run_id)
            waited_since = time.monotonic()
            success = run.status == dg.DagsterRunStatus.SUCCESS
            yield StageRun(
                flow.STAGE_BY_JOB[run.job_name].name,
                (run.run_id,),
                success,
                None if success else run_failure(instance, run.run_id),
                _run_seconds(instance, run.run_id),
                describe_run(run),
            )
            if not success:
                return
        newest = runs[0] if runs else None  # get_runs lists the newest first
        decided = (newest.tags.get(flow.NEXT_TAG) or "") if newest else ""
        if newest is not None and newest.status == dg.DagsterRunStatus.SUCCESS:
            if decided.startswith(flow.END):
                return
        if time.monotonic() - waited_since > stage_timeout_seconds:
            raise FlowError(_stalled(instance, flow_id, newest, stage_timeout_seconds))
        time.sleep(0.5)


def _stalled(instance, flow_id: str, newest, timeout: float) -> str:
    running = "a daemon is running" if daemon_is_running(instance) else "no daemon is running"
    if newest is None:
        where = "its first run was never created"
    elif newest.status == dg.DagsterRunStatus.QUEUED:
        where = f"run {newest.run_id} ({newest.job_name}) is still queued"
    elif newest.status == dg.DagsterRunStatus.SUCCESS:
        where = (
            f"flow_sensor did not launch the stage after run {newest.run_id} ({newest.job_name}): "
            "is it on (Automation page of the UI)?"
        )
    else:
        where = f"run {newest.run_id} ({newest.job_name}) is still {newest.status.value}"
    return f"flow {flow_id} made no progress for {timeout:.0f}s: {where}; {running}"


def describe_run(run: dg.DagsterRun) -> str:
    """What a run covered, in the words the CLI prints: `job <name> (<what>)`."""
    tags = run.tags
    what = []
    if flow.PARTITION_RANGE_START in tags:
        what.append(f"{tags[flow.PARTITION_RANGE_START]}..{tags[flow.PARTITION_RANGE_END]}")
    elif "dagster/partition" in tags:
        what.append(tags["dagster/partition"])
    if run.job_name == flow.LAND.job:
        chosen = landing_run_tenants(run.run_config)
        named = ", ".join(chosen[:5]) + (f" and {len(chosen) - 5} more" if len(chosen) > 5 else "")
        what.append(f"tenants: {named}" if chosen else "all tenants")
        if tags.get(flow.LANDING_FAILED_TAG):
            what.append(f"NOT LANDED, the others went on: {tags[flow.LANDING_FAILED_TAG]}")
    if run.job_name == flow.DBT.job:
        config = dbt_run_config_of(run.run_config)
        since = config.test_rows_synced_since
        what.append(f"tests: rows synced since {since}" if since else "tests: every row")
        if config.history_tenants:
            what.append(
                f"every day for {', '.join(config.history_tenants)}, "
                f"the others from {config.recent_from}"
            )
        if config.changed_tenants_only:
            rebuilt = tags.get(flow.TENANTS_REBUILT_TAG)
            what.append(
                "every tenant (a land of every tenant came before, or most tenants changed)"
                if rebuilt == flow.ALL_TENANTS
                else f"the {rebuilt or 'some'} tenants landed since their last build"
            )
    return f"job {run.job_name} ({'; '.join(what) or 'unpartitioned'})"


def _run_seconds(instance: dg.DagsterInstance, run_id: str) -> float:
    [record] = instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))
    if record.start_time is None or record.end_time is None:
        return 0.0
    return record.end_time - record.start_time


def run_failure(instance: dg.DagsterInstance, run_id: str) -> str:
    """Why the run failed: each failed step (or the run itself, when it failed before or around
    its steps) with the exception our code raised and its causes, not Dagster's wrapper ("Error
    occurred while executing op ..."). A Failure's description is the text, as written."""

    def cause_chain(error) -> str:
        while error.cause is not None and error.cls_name.startswith("Dagster"):
            error = error.cause  # the wrapper around what our code raised
        texts = [error.message.strip()]
        while error.cause is not None or error.context is not None:
            how = "caused by" if error.cause is not None else "raised while handling"
            error = error.cause or error.context
            texts.append(f"({how} {error.message.strip()})")
        return " ".join(texts)

    failures = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = entry.dagster_event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            failures.append(f"{entry.step_key}: {data.user_failure_data.description.strip()}")
        elif data.error is not None:
            failures.append(f"{entry.step_key}: {cause_chain(data.error)}")
    if not failures:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE):
            error = getattr(entry.dagster_event.event_specific_data, "error", None)
            failures.append(cause_chain(error) if error is not None else entry.message)
    return "; ".join(failures) or f"run {run_id} did not succeed"
