"""The benchmark harness's own pieces, at a tiny scale (no timing is asserted)."""

import datetime as dt
import sys
from pathlib import Path

# bench/ sits beside the package's source, not inside it: `make bench` runs it from the checkout.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench.queries import percentiles, union_view_probe  # noqa: E402
from bench.report import Results, incremental_day_seconds  # noqa: E402
from bench.scale import bench_settings, bench_tenants, first_sync_day  # noqa: E402


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
    for stage in ("land", "dbt views", "dbt daily marts", "dbt mart tables", "analyse"):
        section["stages"].append(
            {"phase": "incremental day", "stage": stage, "seconds": 2.0, "rows": 10, "unit": "rows"}
        )
    results.save()
    assert incremental_day_seconds(section) is None  # insights and act not measured yet
    text = (tmp_path / "n10.md").read_text()
    assert "| incremental day | dbt views | 2.0 |" in text
    assert first_sync_day(dt.date(2026, 11, 26)).isoformat() == "2026-11-25"
    assert (tmp_path / "n10.json").exists()
