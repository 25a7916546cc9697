"""`tenantpulse demo` as a new user runs it, in one test, in order: the demo (every demo tenant
through the flow, the planted signals found), the demo again (the next simulated day), a land run
with nothing new; the reports; a backfill of the analysis; then the Dagster UI in a real browser:
Playwright driving Debian's chromium (`make test` installs it) against `dagster-webserver` on
127.0.0.1. One demo serves the CLI's checks and the UI's: each flow through a daemon costs minutes
of the suite.

Screenshots are saved in tests/artifacts/ (not committed) as evidence of what was asserted. No
request may leave 127.0.0.1: the browser's others are aborted and listed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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
from click.testing import CliRunner

from browserkit import CHROMIUM, browser_or_skip
from conftest import DAILY_PARTITIONS_END, SIM_END_DATE
from tenantpulse import flow
from tenantpulse.analysis.checks import CHECKS
from tenantpulse.cli import main
from tenantpulse.config import child_environment, load_settings
from tenantpulse.definitions import build_definitions, daily_partitions
from tenantpulse.flow_runs import dagster_instance, workspace_file
from tenantpulse.simulator import DEMO_TENANTS, planted_anomaly_dates

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


def test_a_new_user_runs_the_demo_and_sees_it_in_the_reports_and_the_dagster_ui(
    tmp_path, monkeypatch
):
    home = {
        "TENANTPULSE_HOME": str(tmp_path / "home"),
        "TENANTPULSE_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "TENANTPULSE_SIM_END_DATE": SIM_END_DATE,
        # The simulator's default volume and history enough for the planted signals.
        "TENANTPULSE_SIM_HISTORY_DAYS": "120",
        "TENANTPULSE_SIM_VOLUME": "1.0",
        "TENANTPULSE_DAILY_PARTITIONS_START": "2026-07-01",
        "TENANTPULSE_DAILY_PARTITIONS_END": DAILY_PARTITIONS_END,
    }
    for name, value in home.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the deterministic writer
    settings = load_settings()
    dagster_instance(settings)  # dagster.yaml, so the webserver can start alongside the demo
    log = tmp_path / "webserver.log"
    timings, started = {}, time.monotonic()

    def lap(name: str) -> None:
        timings[name] = round(time.monotonic() - started - sum(timings.values()), 1)

    def run_cli(*args: str):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    ARTIFACTS.mkdir(exist_ok=True)
    with _webserver(settings, child_environment(settings), log) as (base, server):
        _first_and_second_demo(run_cli, settings)
        lap("two demos")
        # The flow again with no new syncs: a land run that merges nothing.
        no_op = run_cli("run", "--until", "land")
        assert no_op.exit_code == 0 and "[land]" in no_op.output, no_op.output
        lap("no-op land")
        _reports_find_the_planted_signals(run_cli)
        _backfill_of_the_analysis_is_one_run(settings)
        lap("reports and backfill")
        sync_playwright = browser_or_skip()  # after the demo's own checks, which need none
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
    # Where the test's time goes (the demos' flows, mostly), kept with the screenshots.
    (ARTIFACTS / "demo_timings.json").write_text(json.dumps(timings, indent=2))


def _first_and_second_demo(run_cli, settings) -> None:
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
    # Each of the demo's runs was launched from the code location, as the UI's job pages list
    # them, and says which stage came next (or why the flow ended).
    runs = dagster_instance(settings).get_runs()
    assert sorted(r.job_name for r in runs) == sorted(FLOW_JOBS)
    for run in runs:
        assert run.tags[flow.TRIGGER_TAG] == "cli"
        assert run.remote_job_origin.location_name == "tenantpulse"
        assert run.tags[flow.NEXT_TAG] in FLOW_JOBS or run.tags[flow.NEXT_TAG].startswith(flow.END)

    second = run_cli("demo")
    assert second.exit_code == 0, second.output
    assert "fired now" not in second.output  # the next day: the 30-day cooldown holds them back
    assert "churn_rescue/offer_discount" in second.output and "fired earlier" in second.output
    assert "[simulate] 18 syncs" in second.output
    # The second sync is dated Nov 2: the marts are rebuilt from Oct 30 for the demo's tenants,
    # the ones its land run named (all of them: more than half, so the run covers every tenant),
    # and the staging tests check the rows of that sync, the only one landed since they passed.
    assert (
        "[dbt] job dbt_job (2026-10-30..2026-11-03; tests: rows synced since 2026-11-02;"
        " every tenant (a land of every tenant came before, or most tenants changed))"
        in second.output
    )
    assert "[analyse] job analyse_job (2026-10-30..2026-11-03)" in second.output


def _reports_find_the_planted_signals(run_cli) -> None:
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


def _backfill_of_the_analysis_is_one_run(settings) -> None:
    """A backfill of 30 days of analysis is one run."""
    job = build_definitions(settings).resolve_job_def("analyse_job")
    instance = dagster_instance(settings)
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2026-10-01",
            "dagster/asset_partition_range_end": "2026-10-30",
        },
    )
    assert result.success
    materialized = instance.get_materialized_partitions(dg.AssetKey(["analysis", "health_scores"]))
    assert {f"2026-10-{d:02d}" for d in range(1, 31)} <= materialized


def _expectations(settings) -> dict:
    """What the instance holds, for the UI to show: the share of analysis partitions filled."""
    keys = daily_partitions(settings).get_partition_keys()
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        analysed = instance.get_materialized_partitions(dg.AssetKey(["analysis", "health_scores"]))
        runs = {job: instance.get_runs(dg.RunsFilter(job_name=job)) for job in FLOW_JOBS}
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for rs in runs.values() for r in rs)
    assert [len(runs[job]) for job in FLOW_JOBS] == [3, 2, 3, 2]  # the backfill: one more
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
