"""Starting and stopping the production processes locally (dagster api grpc, dagster-daemon,
dagster-webserver) for tests/test_deployment_processes.py, and reading runs through the
webserver's GraphQL API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent  # the virtualenv's scripts: dagster, dagster-daemon, ...
# Variables of the developer's shell that would change what the processes do (an OPENAI_API_KEY
# would switch the LLM writer on, a DAGSTER_HOME would point at another instance).
OWN_PREFIXES = ("TENANTPULSE_", "DAGSTER_", "OPENAI_", "PG")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    return env | values


def write_dagster_home(home: Path, grpc_port: int) -> Path:
    """DAGSTER_HOME with deploy/dagster.yaml as is, and deploy/workspace.yaml pointed at the local
    code server (the only change: host and port). Returns the workspace file."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    entry["grpc_server"] |= {"host": "127.0.0.1", "port": grpc_port}
    path = home / "workspace.yaml"
    path.write_text(yaml.safe_dump(workspace))
    return path


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise AssertionError(f"{self.name} exited with {code}:\n{self.tail()}")


@dataclass
class Processes:
    """The processes a test started; `stop` ends each one's process group."""

    env: dict[str, str]
    logs: Path
    started: list[Process] = field(default_factory=list)

    def start(self, name: str, args: list[str]) -> Process:
        log = self.logs / f"{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            args,
            env=self.env,
            cwd=self.logs,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: runs and steps are its children
        )
        handle.close()
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def stop(self, grace_seconds: float = 20.0) -> None:
        for process in reversed(self.started):
            _signal_group(process.popen, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for process in reversed(self.started):
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # The group may hold a run's or a step's process after its leader has gone.
            _signal_group(process.popen, signal.SIGKILL)
            try:
                process.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def check_alive(self) -> None:
        for process in self.started:
            process.check_alive()


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(popen.pid, sig)  # start_new_session: the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(
        [str(BIN / "tenantpulse"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"tenantpulse {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def wait_for(
    what: str,
    check: Callable[[], object],
    timeout: float,
    interval: float = 1.0,
    on_timeout: Callable[[], str] = lambda: "",
    alive: Callable[[], None] = lambda: None,
):
    """Call `check` until it returns something truthy (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        alive()
        try:
            result = check()
            if result:
                return result
        except AssertionError as error:  # the check found something wrong: no point waiting
            raise AssertionError(f"{error}\n{on_timeout()}") from None
        except (OSError, urllib.error.URLError, ValueError) as error:  # not up yet
            last_error = error
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}"
        + (f" (last error: {last_error})" if last_error else "")
        + f"\n{on_timeout()}"
    )


def grpc_server_ready(port: int, env: dict[str, str]) -> bool:
    done = subprocess.run(
        [
            str(BIN / "dagster"),
            "api",
            "grpc-health-check",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


def server_info(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as response:
        return json.loads(response.read())


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise AssertionError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


LOCATIONS_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              name
              jobs { name }
              sensors { name sensorState { status } }
            }
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

RUNS_QUERY = """
query Runs($limit: Int) {
  runsOrError(limit: $limit) {
    __typename
    ... on Runs {
      results {
        runId
        jobName
        status
        creationTime
        startTime
        endTime
        runConfig
        tags { key value }
      }
    }
    ... on PythonError { message }
  }
}
"""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    job: str
    status: str
    created: float
    ended: float | None
    tags: dict[str, str]
    run_config: dict

    def describe(self) -> str:
        flow = self.tags.get("tenantpulse/flow", "-")
        after = self.tags.get("tenantpulse/next", "")
        return f"{self.job} {self.status} flow={flow} run={self.run_id[:8]}" + (
            f" next={after}" if after else ""
        )


def runs_via_webserver(port: int, limit: int = 200) -> list[RunRecord]:
    data = graphql(port, RUNS_QUERY, {"limit": limit})["runsOrError"]
    if data["__typename"] != "Runs":
        raise AssertionError(f"runsOrError: {data}")
    return sorted(
        (
            RunRecord(
                run_id=r["runId"],
                job=r["jobName"],
                status=r["status"],
                created=r["creationTime"],
                ended=r["endTime"],
                tags={t["key"]: t["value"] for t in r["tags"]},
                run_config=r["runConfig"] or {},
            )
            for r in data["results"]
        ),
        key=lambda r: r.created,
    )


FAILURE_QUERY = """
query Failure($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message }
        ... on ErrorEvent { error { message causes { message } } }
      }
    }
  }
}
"""


def failure_messages(port: int, run_id: str, chars: int = 3000) -> str:
    """What the run's failure events say (step failures, the run failure), read through the
    webserver: the error messages, not the whole log."""
    data = graphql(port, FAILURE_QUERY, {"runId": run_id})["logsForRun"]
    lines = []
    for event in data.get("events", []):
        if event["__typename"] not in ("ExecutionStepFailureEvent", "RunFailureEvent"):
            continue
        lines.append(f"{event['__typename']}: {event.get('message', '')}")
        error = event.get("error") or {}
        if error.get("message"):
            lines.append(error["message"])
        lines.extend(cause["message"] for cause in error.get("causes") or [])
    return "\n".join(lines)[-chars:]


INSTANCE_QUERY = """
query {
  instance {
    info
    runLauncher { name }
    runQueuingSupported
    runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml }
    daemonHealth { allDaemonStatuses { daemonType required healthy } }
  }
}
"""
