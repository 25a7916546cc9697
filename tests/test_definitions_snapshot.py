"""The whole code location as one reviewed text file: every asset with its group, partitions,
dependencies, checks and kinds; every job's selection; every sensor and schedule. A change to the
graph (a dropped dependency, a renamed job, a sensor turned off by default) fails this test until
the snapshot is regenerated and the diff reviewed:

    TENANTPULSE_UPDATE_SNAPSHOT=1 .venv/bin/pytest tests/test_definitions_snapshot.py
"""

import os
from pathlib import Path

import dagster as dg
import pytest

from tenantpulse.definitions import build_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.txt"


def _partitions(definition) -> str:
    if definition is None:
        return "-"
    if isinstance(definition, dg.DailyPartitionsDefinition):
        return "daily"
    return getattr(definition, "name", None) or type(definition).__name__


def describe(defs: dg.Definitions) -> str:
    graph = defs.resolve_asset_graph()
    lines = [
        "# assets: key | group | partitions | backfill | kinds",
        "#   <- dependencies",
        "#   check",
    ]
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        backfill = node.backfill_policy.policy_type.value if node.backfill_policy else "-"
        kinds = ",".join(sorted(node.kinds)) or "-"
        kind = "observable source" if node.is_observable else "asset"
        lines.append(
            f"{key.to_user_string()} | {kind} | {node.group_name} | "
            f"{_partitions(node.partitions_def)} | {backfill} | {kinds}"
        )
        lines += [f"  <- {p.to_user_string()}" for p in sorted(node.parent_keys)]
        lines += [f"  check {c.name}" for c in sorted(node.check_keys, key=lambda c: c.name)]
    lines.append("# jobs: name | partitions | selected assets")
    for job in sorted(defs.jobs, key=lambda j: j.name):
        resolved = defs.resolve_job_def(job.name)
        selected = sorted(k.to_user_string() for k in resolved.asset_layer.selected_asset_keys)
        lines.append(f"{job.name} | {_partitions(resolved.partitions_def)} | {len(selected)}")
        lines += [f"  {k}" for k in selected]
    lines.append("# sensors: name | default status | minimum interval | job")
    for sensor in sorted(defs.sensors, key=lambda s: s.name):
        jobs = ",".join(sorted(t.job_name for t in sensor.targets)) or "-"
        lines.append(
            f"{sensor.name} | {sensor.default_status.value} | "
            f"{sensor.minimum_interval_seconds} | {jobs}"
        )
    lines.append("# schedules: name | default status | cron | job")
    for schedule in sorted(defs.schedules, key=lambda s: s.name):
        lines.append(
            f"{schedule.name} | {schedule.default_status.value} | {schedule.cron_schedule} | "
            f"{schedule.job_name}"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_the_code_location_matches_its_reviewed_snapshot(settings):
    current = describe(build_definitions(settings))
    if os.environ.get("TENANTPULSE_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), f"no snapshot: run with TENANTPULSE_UPDATE_SNAPSHOT=1 ({__doc__})"
    assert current == SNAPSHOT.read_text(), (
        "the code location changed: review the diff, then regenerate the snapshot "
        "(TENANTPULSE_UPDATE_SNAPSHOT=1)"
    )


def test_the_snapshot_notices_a_dropped_dependency(settings):
    """The snapshot would fail if the actions stopped depending on the insights."""
    text = describe(build_definitions(settings))
    block = text.split("actions/action_log |", 1)[1].split("\n", 1)[1]
    deps = [line for line in block.splitlines() if line.startswith("  <- ")]
    assert "  <- analysis/insights" in deps
