"""What a new user sees in the Dagster UI after `tenantpulse demo`, in a real browser: Playwright
driving Debian's chromium (`make test` installs it) against `dagster-webserver` on 127.0.0.1.

One test, in order: the demo and a second, no-op land run; then the UI. Screenshots are saved in
tests/artifacts/ (not committed) as evidence of what was asserted. No request may leave
127.0.0.1: the browser's others are aborted and listed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg

from browserkit import CHROMIUM, browser_or_skip
from conftest import SIM_END_DATE, make_settings
from tenantpulse.analysis.checks import CHECKS
from tenantpulse.config import child_environment
from tenantpulse.definitions import daily_partitions
from tenantpulse.flow_runs import dagster_instance, workspace_file

CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
BIN = Path(sys.executable).parent
FLOW_JOBS = ("land_job", "dbt_job", "analyse_job", "act_job")
WAIT_MS = 120_000  # the machine may be busy with the rest of the suite


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "tenantpulse"), *args], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"tenantpulse {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextlib.contextmanager
def _webserver(settings, env: dict, log: Path):
    port = _free_port()
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", str(workspace_file(settings))]
            + ["-h", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server stops with it
        )
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["data"]


def _stale_status(base: str, group: str) -> dict[str, str]:
    """Asset name -> the UI's stale status (FRESH, STALE, MISSING) of each asset in `group`."""
    nodes = _graphql(base, "{ assetNodes { assetKey { path } groupName staleStatus } }")
    return {
        n["assetKey"]["path"][-1]: n["staleStatus"]
        for n in nodes["assetNodes"]
        if n["groupName"] == group
    }


def _wait_until_loaded(base: str, server: subprocess.Popen, log: Path) -> None:
    """Until the webserver answers and has loaded the code location."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert server.poll() is None, f"dagster-webserver exited:\n{log.read_text()[-3000:]}"
        with contextlib.suppress(OSError, KeyError, TypeError):
            entries = _graphql(base, query)["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        time.sleep(1)
    raise AssertionError(
        f"the webserver did not load the code location:\n{log.read_text()[-3000:]}"
    )


def test_a_new_user_sees_the_demo_flow_in_the_dagster_ui(tmp_path):
    sync_playwright = browser_or_skip()
    settings = make_settings(
        tmp_path,
        f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        TENANTPULSE_SIM_HISTORY_DAYS="28",  # the smallest history the simulator allows
        TENANTPULSE_SIM_VOLUME="0.1",
        TENANTPULSE_DAILY_PARTITIONS_START="",  # local mode's default: the simulated history
        TENANTPULSE_DAILY_PARTITIONS_END=SIM_END_DATE,
    )
    env = child_environment(settings)
    dagster_instance(settings)  # dagster.yaml, so the webserver can start alongside the demo
    log = tmp_path / "webserver.log"
    timings, started = {}, time.monotonic()

    def lap(name: str) -> None:
        timings[name] = round(time.monotonic() - started - sum(timings.values()), 1)

    ARTIFACTS.mkdir(exist_ok=True)
    with _webserver(settings, env, log) as (base, server):
        _cli(env, "demo")
        lap("demo")
        # The flow again with no new syncs: a land run that merges nothing.
        assert "[land]" in _cli(env, "run", "--until", "land")
        lap("no-op land")
        _wait_until_loaded(base, server, log)
        lap("webserver loaded")
        expected = _expectations(settings)
        # The land run that merged nothing left every staging view in sync (STALE is the UI's
        # "Unsynced").
        staging = _stale_status(base, "staging")
        assert len(staging) == 17 and set(staging.values()) == {"FRESH"}, staging
        with sync_playwright() as playwright:
            _look_at_the_ui(playwright, base, expected)
        lap("browser")
    # Where the test's time goes (the demo's dbt run, mostly), kept with the screenshots.
    (ARTIFACTS / "ui_timings.json").write_text(json.dumps(timings, indent=2))


def _expectations(settings) -> dict:
    """What the instance holds, for the UI to show: the share of analysis partitions filled."""
    keys = daily_partitions(settings).get_partition_keys()
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        analysed = instance.get_materialized_partitions(dg.AssetKey(["analysis", "health_scores"]))
        runs = {job: instance.get_runs(dg.RunsFilter(job_name=job)) for job in FLOW_JOBS}
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for rs in runs.values() for r in rs)
    assert [len(runs[job]) for job in FLOW_JOBS] == [2, 1, 1, 1]
    assert 0 < len(analysed) <= len(keys)
    return {"filled": f"{math.floor(len(analysed) / len(keys) * 100)}% filled"}


def _look_at_the_ui(playwright, base: str, expected: dict) -> None:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(f"{base}/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)

    def visit(path: str, wait_for: str) -> str:
        page.goto(f"{base}{path}")
        page.get_by_text(wait_for).first.wait_for()
        page.wait_for_load_state("networkidle")
        skip = page.get_by_role("button", name="Skip")  # the first visit's newsletter dialog
        if skip.count() and skip.first.is_visible():
            skip.first.click()
        return page.inner_text("body")

    try:
        # Each stage's run is on its job's own Runs tab, succeeded; the flow_sensor launched all
        # but the first.
        for job in FLOW_JOBS:
            text = visit(f"/locations/tenantpulse/jobs/{job}/runs", "Success")
            assert "Failure" not in text and "Canceled" not in text, job
            if job != "land_job":
                assert "flow_sensor" in text, job
            page.screenshot(path=ARTIFACTS / f"ui_runs_{job}.png")

        # An analysis asset: what it holds and how, its kinds and columns, its checks passed.
        text = visit("/assets/analysis/health_scores", "Each tenant's 0-100 health score")
        assert "weighted mean of the components" in text
        assert re.search(r"Kinds\s+DuckDB\s+pandas", text), text
        assert re.search(r"Columns.*health_score\s+bigint.*components_used\s+varchar", text, re.S)
        page.screenshot(path=ARTIFACTS / "ui_asset_health_scores.png", full_page=False)

        # The lineage above actions/action_log, zoomed in until the nodes show their facets:
        # analysis/insights is one of its direct parents, and the analysis partitions' share.
        visit("/assets/actions/action_log?view=lineage&lineageScope=upstream", "action_log")
        page.get_by_text("insights", exact=True).last.wait_for()
        zoom_in = page.locator("button:has([role='img'][aria-label='zoom_in'])")
        for _ in range(4):
            zoom_in.first.click()
            time.sleep(1)
        page.get_by_text(re.compile(r"\d+% filled")).first.wait_for()
        text = page.inner_text("body")
        filled = re.findall(r"\d+% filled", text)
        assert expected["filled"] in filled and "0% filled" not in filled, filled
        assert re.search(r"insights\s+Latest event", text), text
        checks = len(CHECKS["health_scores"])
        assert re.search(
            rf"health_scores\s+Latest event\s+.+\s+Asset checks\s+{checks} / {checks} Passed", text
        ), text
        page.screenshot(path=ARTIFACTS / "ui_lineage_action_log.png")

        # A staging view after a land run that merged nothing: in sync, not "Unsynced".
        text = visit("/assets/staging/stg_stripe__charges", "stg_stripe__charges")
        assert "Unsynced" not in text
    finally:
        page.screenshot(path=ARTIFACTS / "ui_last_page.png")
        browser.close()
    assert outside == [], f"requests that would have left 127.0.0.1: {outside}"
