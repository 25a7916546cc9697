"""`tenantpulse connect-demo` end to end, as a new user runs it: the command as a subprocess, a
real browser (Debian's chromium) signing in with the printed link and connecting Shopify through
the stand-in provider; then nothing but the daemon the command started: the Airbyte source,
connection and first sync (the stand-in's), the sync recorded, the flow's runs to act_job. The
Connect page's phase is followed on the way; Ctrl-C then stops every process. No request leaves
127.0.0.1. Prints the click-to-first-sync time (the numbers are reported, never asserted)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb

from browserkit import CHROMIUM, browser_or_skip
from deploy_harness import BIN, clean_environment, free_port
from tenantpulse import flow
from tenantpulse.standins.connect_demo import DEMO_TENANT
from test_web_dashboard import CHROMIUM_ARGS

FLOW_TIMEOUT = 1500  # seconds from the click to act_job's success (a loaded 2-core machine)
LIVE_PHASES = {"provisioning", "first_sync_running", "synced"}


class Command:
    """The demo as a user's terminal runs it: its output collected line by line."""

    def __init__(self, home: Path, port: int):
        self.lines: list[str] = []
        self.interrupted = False
        self.process = subprocess.Popen(
            [str(BIN / "tenantpulse"), "connect-demo", "--home", str(home), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=clean_environment(),
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, seconds: float) -> re.Match:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in self.lines:
                if found := re.search(pattern, line):
                    return found
            assert self.process.poll() is None, "connect-demo exited:\n" + self.output()
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} in connect-demo's output:\n{self.output()}")

    def output(self) -> str:
        return "\n".join(self.lines)

    def interrupt(self) -> int:
        """Ctrl-C, as the terminal sends it."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=120)
        self.interrupted = True
        return code

    def stop(self, home: Path):
        """After a failure: Ctrl-C, then kill what is left (the daemon is in its own session);
        nothing after a clean `interrupt`, whose result the test checks."""
        if self.interrupted:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        for pid in demo_processes(home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def flow_state(home: Path) -> tuple[list, str | None]:
    """The flow's runs, and what failed: a run that failed (with its error) or a flow that ended
    before act_job."""
    instance = dg.DagsterInstance.from_config(str(home / "dagster_home"))
    try:
        runs = [r for r in instance.get_run_records() if flow.FLOW_TAG in r.dagster_run.tags]
        for record in runs:
            run = record.dagster_run
            if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
                errors = [
                    e.dagster_event.event_specific_data.error.to_string()
                    for e in instance.all_logs(run.run_id)
                    if e.dagster_event
                    and getattr(e.dagster_event.event_specific_data, "error", None)
                ]
                return runs, f"{run.job_name} {run.status.value}: {' '.join(errors)[-3000:]}"
            ended = run.tags.get(flow.NEXT_TAG, "").startswith(flow.END)
            if ended and run.job_name != flow.STAGES[-1].job:
                return runs, f"the flow ended after {run.job_name}: {run.tags[flow.NEXT_TAG]}"
        return runs, None
    finally:
        instance.dispose()


def flow_done(runs: list) -> bool:
    return any(
        r.dagster_run.job_name == flow.STAGES[-1].job
        and r.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        for r in runs
    )


def demo_processes(home: Path) -> dict[int, str]:
    """The processes still running for this demo home: their ids and command lines."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(home) in cmdline:
            found[int(proc.name)] = cmdline
    return found


def test_connect_demo_from_the_click_to_the_flow(tmp_path):
    sync_playwright = browser_or_skip()
    home, port = tmp_path / "demo", free_port()
    base = f"http://127.0.0.1:{port}"
    command = Command(home, port)
    seen: list[str] = []
    phases: list[tuple[float, str]] = []
    try:
        link = command.wait_for(rf"({re.escape(base)}/signin\?token=\S+)", 300).group(1)
        command.wait_for(r"Ctrl-C stops everything", 60)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                context = browser.new_context()
                context.on("request", lambda request: seen.append(request.url))
                page = context.new_page()
                page.goto(link)
                assert page.url == f"{base}/t/{DEMO_TENANT}/"  # a dashboard without data yet
                page.goto(f"{base}/connect/shopify")
                page.fill("input[name=shop]", "demo-store")
                clicked = time.monotonic()
                clicked_at = dt.datetime.now(dt.UTC)
                page.click("#connect")
                page.wait_for_selector("[data-outcome=connected]")
                phases.append((0.0, page.get_attribute("#phase", "data-phase")))

                runs, failed = [], None
                while not flow_done(runs) and failed is None:
                    assert time.monotonic() - clicked < FLOW_TIMEOUT, (
                        f"no flow after {FLOW_TIMEOUT} s; phases {phases}\n{command.output()}"
                    )
                    time.sleep(5)  # the instance's SQLite files are shared with the daemon
                    # The page until the first sync is recorded: after it, the flow's runs
                    # write the DuckDB file, which takes one process at a time.
                    if phases[-1][1] != "synced":
                        page.goto(f"{base}/connect/shopify")
                        shown = page.locator("#phase")  # none on a 503 (DuckDB busy)
                        phase = shown.get_attribute("data-phase") if shown.count() else None
                        if phase not in (None, phases[-1][1]):
                            phases.append((time.monotonic() - clicked, phase))
                    runs, failed = flow_state(home)
                flow_seconds = time.monotonic() - clicked
                assert failed is None, failed
                page.goto(f"{base}/connect/shopify")
                if page.get_attribute("#phase", "data-phase") != phases[-1][1]:
                    phases.append((flow_seconds, page.get_attribute("#phase", "data-phase")))
                assert re.fullmatch(
                    r"Status: synced \d{4}-\d\d-\d\d \d\d:\d\d UTC", page.inner_text("#phase")
                )
                page.click("#disconnect")
                page.wait_for_selector("[data-outcome=disconnected]")
                revoked = page.inner_text("#phase")
            finally:
                browser.close()
        assert command.interrupt() == 0, command.output()
    finally:
        command.stop(home)
    assert "stopping the daemon and its runs, then the stand-ins" in command.output()
    assert demo_processes(home) == {}  # the daemon, its code server and runs stopped with it

    assert [url for url in seen if not url.startswith("http://127.0.0.1:")] == []
    assert phases[0][1] == "provisioning" and phases[-1][1] == "synced", phases
    assert {p for _, p in phases} <= LIVE_PHASES, phases
    assert revoked == "Status: disconnected; its token is revoked at shopify"
    jobs = [r.dagster_run.job_name for r in sorted(runs, key=lambda r: r.create_timestamp)]
    assert jobs == [stage.job for stage in flow.STAGES[: len(jobs)]]
    assert len(jobs) == len(flow.STAGES)

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        [(synced_rows, recorded_at)] = db.execute(
            "select records, recorded_at from ops.airbyte_sync_history"
            " where tenant_id = ? and source = 'shopify' and status = 'succeeded'",
            [DEMO_TENANT],
        ).fetchall()
        events = [
            e
            for (e,) in db.execute(
                "select event from ops.connection_events where tenant_id = ?"
                " order by occurred_at, event_id",
                [DEMO_TENANT],
            ).fetchall()
        ]
        built = db.execute(
            "select count(*) from analytics.tenant_daily_metrics where tenant_id = ?",
            [DEMO_TENANT],
        ).fetchone()[0]
    assert synced_rows > 0 and built > 0  # landed and through dbt
    assert events[:2] == ["connected", "provisioned"] and "revoked" in events
    first_sync = (recorded_at - clicked_at).total_seconds()
    print(
        f"\nconnect-demo: click to first sync recorded {first_sync:.1f} s, to the flow's "
        f"act_job success {flow_seconds:.1f} s (load average "
        f"{os.getloadavg()[0]:.1f}); runs {jobs}; phases seen "
        + ", ".join(f"{p} at {t:.0f} s" for t, p in phases)
    )
