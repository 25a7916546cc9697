"""The benchmark harness's own pieces, at a tiny scale (no timing is asserted)."""

import datetime as dt
import importlib
import json

from bench import flow
from bench.day import batches
from bench.direct import time_direct
from bench.queries import percentiles, union_view_probe
from bench.report import (
    DAY_FLOW,
    DAY_FLOW_WALL_CLOCK,
    Results,
    day_measures,
    day_targets_markdown,
    incremental_day_seconds,
)
from bench.scale import (
    bench_settings,
    bench_tenants,
    first_sync_day,
    register_tenants,
)


def test_bench_tenants_cycle_through_the_demo_mix():
    tenants = bench_tenants(7)
    assert [t.tenant_id for t in tenants[:2]] == ["bench_00000", "bench_00001"]
    assert [t.profile for t in tenants] == [
        "steady_growth",
        "churning",
        "seasonal",
        "anomalous",
        "slowing_team",
        "steady_growth",
        "steady_growth",
    ]
    assert tenants[5].sources == ("stripe",)


def test_a_normal_days_batches_interleave_the_tenants():
    tenant_ids = [f"t{n:02}" for n in range(10)]
    assert batches(tenant_ids, 4) == [
        ["t00", "t04", "t08"],
        ["t01", "t05", "t09"],
        ["t02", "t06"],
        ["t03", "t07"],
    ]
    assert batches(tenant_ids[:2], 4) == [["t00"], ["t01"]]


def test_percentiles_are_in_milliseconds():
    measured = percentiles([0.001 * i for i in range(1, 101)])
    assert (measured["queries"], measured["p50_ms"], measured["p95_ms"], measured["p99_ms"]) == (
        100,
        51.0,
        96.0,
        100.0,
    )


def test_union_view_probe_queries_a_view_over_every_schema(tmp_path):
    settings = bench_settings(
        "duckdb", tmp_path, f"duckdb:///{tmp_path / 'probe.duckdb'}", dt.date(2026, 11, 1)
    )
    probed = union_view_probe(settings, [3, 5], budget_seconds=10)
    assert [(p["schemas"], p["queries"], "error" in p) for p in probed] == [
        (3, 5, False),
        (5, 5, False),
    ]


def test_results_are_written_as_json_and_markdown(tmp_path):
    results = Results(tmp_path, 10, {"history_days": 180, "volume": 1.0, "mix": "demo mix"})
    section = results.start_warehouse("duckdb")
    for stage in ("land", "dbt", "analyse"):
        section["stages"].append(
            {"phase": "incremental day", "stage": stage, "seconds": 2.0, "rows": 10, "unit": "rows"}
        )
    results.save()
    assert incremental_day_seconds(section) is None  # act not measured yet
    text = (tmp_path / "n10.md").read_text()
    assert "| incremental day | dbt | 2.0 |" in text
    section["stages"].append({"phase": "incremental day", "stage": "act", "seconds": 1.5})
    assert incremental_day_seconds(section) == 7.5
    assert first_sync_day(dt.date(2026, 11, 26)).isoformat() == "2026-11-25"
    assert (tmp_path / "n10.json").exists()


def test_results_of_the_earlier_finer_stages_still_add_up_to_an_incremental_day():
    earlier = ("land", "dbt views", "dbt daily marts", "dbt mart tables", "analyse", "insights")
    section = {
        "stages": [{"phase": "incremental day", "stage": s, "seconds": 1.0} for s in earlier]
        + [{"phase": "incremental day", "stage": "act", "seconds": 0.5}]
    }
    assert incremental_day_seconds(section) == 6.5


def test_the_day_flow_is_judged_by_its_runs_and_by_its_wall_clock():
    runs = {"dbt": 3.0, "analyse": 1.0, "act": 0.5}
    section = {
        "stages": [{"phase": DAY_FLOW, "stage": s, "seconds": v} for s, v in runs.items()]
        + [{"phase": DAY_FLOW, "stage": DAY_FLOW_WALL_CLOCK, "seconds": 7.25}]
    }
    measures = day_measures(section)
    assert (measures["day_flow"], measures["day_flow_wall_clock"]) == (4.5, 7.2)
    lines = day_targets_markdown({"tenants": 1000, "warehouses": {"duckdb": section}})
    assert (
        "| normal day: dbt + analyse + act after the last sync, s | 4.5 | < 6 | duckdb: yes |"
        in lines
    )
    assert (
        "| normal day: the same, land's end to act's end (wall clock), s | 7.2 | < 6 | duckdb: no |"
        in lines
    )


def test_the_direct_path_lands_with_the_functions_the_land_asset_calls(tmp_path):
    # Up to land only: the dbt stage's three invocations take about a minute even for two tenants.
    first_day = first_sync_day(dt.datetime.now(dt.UTC).date())
    settings = bench_settings(
        "duckdb", tmp_path, f"duckdb:///{tmp_path / 'warehouse.duckdb'}", first_day, 28
    )
    register_tenants(settings, bench_tenants(2))
    simulated = flow.simulate(settings, workers=1)
    records = []
    time_direct(settings, "first load (direct)", True, records.append, until="land")
    [land] = records
    assert (land["phase"], land["stage"], land["path"], land["success"]) == (
        "first load (direct)",
        "land",
        "direct",
        True,
    )
    assert land["rows"] == simulated["rows"] > 0  # a first load reads every raw row
    assert land["unit"] == "raw rows read"


def test_every_bench_entry_point_imports():
    for module in (
        "bench.run",
        "bench.replay",
        "bench.catalog_probe",
        "bench.summary",
        "bench.dbt_times",
    ):
        importlib.import_module(module)


def test_analysis_probe_appends_a_labelled_run_of_every_step(tmp_path):
    from bench import analysis_probe

    output = tmp_path / "probe.json"
    for label in ("before", "after"):
        analysis_probe.main(
            ["--tenants", "8", "--days", "2", "--label", label, "--output", str(output)]
        )
    report = json.loads(output.read_text())
    assert report["tenants"] == 8
    assert [run["label"] for run in report["runs"]] == ["before", "after"]
    newest = dt.date(2026, 6, 29)  # synthetic histories run 180 days from 2026-01-01
    assert [step["step"] for step in report["runs"][1]["steps"]] == [
        "normalise the history",
        "train the churn model",
        f"analyse {newest - dt.timedelta(days=1)}",
        f"analyse {newest}",
        "analyse the 2 days as analyse_days does",
    ]
    # The holes: 3% of the 8 x 180 tenant-days removed.
    assert 0 < 8 * 180 - report["runs"][0]["history_rows"] < 8 * 180 * 0.1
