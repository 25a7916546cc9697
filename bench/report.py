"""The results of a benchmark run: a JSON file and a Markdown table in bench/results/, rewritten
after every measurement so an interrupted run keeps what it measured."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from importlib.metadata import version
from pathlib import Path

# Targets of issue 7, reported against (not tests).
INCREMENTAL_DAY_TARGET_SECONDS = 120  # N = 1,000, DuckDB
DASHBOARD_P95_TARGET_MS = 20  # N = 10,000, Postgres
INCREMENTAL_STAGES = ("land", "dbt", "analyse", "act")  # tenantpulse.flow.STAGES
# Results written before the flow ran as one run per stage of tenantpulse.flow name finer stages.
EARLIER_INCREMENTAL_STAGES = (
    "land",
    "dbt views",
    "dbt daily marts",
    "dbt mart tables",
    "analyse",
    "insights",
    "act",
)


def machine() -> dict:
    memory_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "versions": {
            name: version(name)
            for name in ("dagster", "dbt-core", "dbt-duckdb", "dbt-postgres", "duckdb", "pandas")
        },
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Results:
    """One scale's results; each warehouse's section is replaced as it is measured, so separate
    runs for DuckDB and Postgres at the same scale end up in the same files."""

    def __init__(self, results_dir: Path, tenants: int, settings: dict):
        self.json_path = results_dir / f"n{tenants}.json"
        self.markdown_path = results_dir / f"n{tenants}.md"
        previous = json.loads(self.json_path.read_text()) if self.json_path.exists() else {}
        self.data = {
            "tenants": tenants,
            "settings": settings or previous.get("settings", {}),
            "machine": machine(),
            "warehouses": previous.get("warehouses", {}),
        }
        self.measured_here: set[str] = set()

    def start_warehouse(self, kind: str, **facts) -> dict:
        section = {
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "load_average_start": load_average(),
            **facts,
            "stages": [],
        }
        self.data["warehouses"][kind] = section
        self.measured_here.add(kind)
        self.save()
        return section

    def save(self) -> None:
        """Write both files; sections another process wrote meanwhile (a run of the other
        warehouse at the same scale) are kept."""
        if self.json_path.exists():
            on_disk = json.loads(self.json_path.read_text()).get("warehouses", {})
            for kind, section in on_disk.items():
                if kind not in self.measured_here:
                    self.data["warehouses"][kind] = section
        self.data["written_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        self.markdown_path.write_text(markdown(self.data))


def incremental_day_seconds(section: dict, phase: str = "incremental day") -> float | None:
    """The seconds of every stage of the phase (None until each has been measured)."""
    stages = {s["stage"]: s for s in section["stages"] if s["phase"] == phase}
    for names in (INCREMENTAL_STAGES, EARLIER_INCREMENTAL_STAGES):
        if all(name in stages for name in names):
            return round(sum(stages[name]["seconds"] for name in names), 1)
    return None


# Targets of issue 19 at 10,000 tenants; at 1,000 tenants the times are a tenth of these.
DAY_TARGETS_AT_10000 = {
    "simulate": 600,  # the first syncs of every tenant
    "first_load": 1800,  # land, dbt, analyse, act of the first syncs
    "land_batch": 20,  # each batch of syncs (a 24th of the tenants)
    "day_flow": 60,  # dbt, analyse, act after the day's last sync
    "day_flow_wall_clock": 60,  # the same, from the land run's end to the act run's end
    "worst_day": 300,  # every tenant's sync at once: land, dbt, analyse, act
}
MEMORY_TARGET_MIB = 8192
DAY_FLOW = "normal day, flow after the last sync"
DAY_FLOW_STAGES = ("dbt", "analyse", "act")
# The same flow as a user waits for it (bench/day.py): the runs' launches and the sensor's ticks
# between them included, which the stages' own seconds leave out.
DAY_FLOW_WALL_CLOCK = "land's end to act's end (wall clock, sensor ticks and run launches included)"


def day_measures(section: dict) -> dict[str, float | None]:
    """The --days run's measures against DAY_TARGETS_AT_10000 (None: not measured)."""
    stages = section["stages"]

    def of(phase: str, names=INCREMENTAL_STAGES) -> float | None:
        found = {s["stage"]: s["seconds"] for s in stages if s["phase"] == phase}
        return round(sum(found[n] for n in names), 1) if all(n in found for n in names) else None

    batches = [
        s["seconds"]
        for s in stages
        if s["phase"] == "normal day" and s["stage"].startswith("land batch")
    ]
    simulated = [
        s["seconds"] for s in stages if (s["phase"], s["stage"]) == ("first load", "simulate")
    ]
    return {
        "simulate": simulated[0] if simulated else None,
        "first_load": of("first load"),
        "land_batch": max(batches) if batches else None,
        "day_flow": of(DAY_FLOW, DAY_FLOW_STAGES),
        "day_flow_wall_clock": of(DAY_FLOW, (DAY_FLOW_WALL_CLOCK,)),
        "worst_day": of("worst day"),
    }


def peak_memory_by_phase(section: dict) -> dict[str, int]:
    peaks: dict[str, int] = {}
    for stage in section["stages"]:
        if "peak_tree_rss_mib" in stage:
            peaks[stage["phase"]] = max(peaks.get(stage["phase"], 0), stage["peak_tree_rss_mib"])
    return peaks


def day_targets_markdown(data: dict) -> list[str]:
    sections = data["warehouses"]
    kinds = [k for k in sections if any(day_measures(sections[k]).values())]
    if not kinds:
        return []
    scale = 1.0 if data["tenants"] >= 10_000 else 0.1
    at = "10,000" if scale == 1.0 else "1,000"
    labels = {
        "simulate": "simulate the first syncs, s",
        "first_load": "first load: land + dbt + analyse + act, s",
        "land_batch": "normal day: the slowest batch of syncs (a 24th of the tenants) landed, s",
        "day_flow": "normal day: dbt + analyse + act after the last sync, s",
        "day_flow_wall_clock": "normal day: the same, land's end to act's end (wall clock), s",
        "worst_day": "worst day: every sync at once, land + dbt + analyse + act, s",
    }
    measures = {k: day_measures(sections[k]) for k in kinds}
    lines = [
        "",
        f"## Against the targets of issue 19 at {at} tenants (this run: {data['tenants']:,})",
        "",
    ]
    lines += [
        "| measure | " + " | ".join(kinds) + " | target | met |",
        "|---|" + "---:|" * len(kinds) + "---|---|",
    ]
    for key, label in labels.items():
        target = DAY_TARGETS_AT_10000[key] * scale
        values = [measures[k][key] for k in kinds]
        met = ", ".join(
            f"{k}: {'yes' if v <= target else 'no'}"
            for k, v in zip(kinds, values, strict=True)
            if v is not None
        )
        lines.append(
            f"| {label} | "
            + " | ".join(_number(v, ".1f") for v in values)
            + f" | < {target:g} | {met} |"
        )
    peaks = {k: peak_memory_by_phase(sections[k]) for k in kinds}
    for phase in sorted({p for k in kinds for p in peaks[k]}):
        values = [peaks[k].get(phase) for k in kinds]
        met = ", ".join(
            f"{k}: {'yes' if v < MEMORY_TARGET_MIB else 'no'}"
            for k, v in zip(kinds, values, strict=True)
            if v
        )
        lines.append(
            f"| peak memory of the process tree, {phase}, MiB | "
            + " | ".join(_number(v) for v in values)
            + f" | < {MEMORY_TARGET_MIB:,} | {met} |"
        )
    disks = [sections[k].get("disk_mib_per_tenant") for k in kinds]
    if any(disks):
        lines.append(
            "| disk per tenant (warehouse file and raw files), MiB | "
            + " | ".join(_number(d, ".2f") for d in disks)
            + " | | |"
        )
    return lines


def markdown(data: dict) -> str:
    kinds = list(data["warehouses"])
    sections = data["warehouses"]
    m = data["machine"]
    lines = [
        f"# Benchmark: {data['tenants']:,} tenants",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB memory, {m['os']}, Python "
        f"{m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        f"Data: {data['settings']['mix']}; {data['settings']['history_days']} days of history, "
        f"simulator volume {data['settings']['volume']}. Written {data.get('written_at')}.",
        "",
    ]
    for kind in kinds:
        s = sections[kind]
        lines.append(
            f"- {kind}: started {s['started_at']}, load average at start "
            f"{s['load_average_start']}, at end {s.get('load_average_end', 'not reached')}"
            + (f"; {s['note']}" if s.get("note") else "")
        )
    failures = [
        (k, name, text) for k in kinds for name, text in sections[k].get("failures", {}).items()
    ]
    if failures:
        lines += ["", "## Where a run stopped or failed", ""]
        lines += [f"- {kind}, {name}: {text.splitlines()[0]}" for kind, name, text in failures]
    lines += ["", "## Stages", ""]
    lines += [
        "Wall clock of each stage (`run_flow`: one Dagster run per stage, all tenants, start to "
        "end), of which the time inside Dagster steps (the rest is Dagster's fixed cost per run), "
        "and rows per second; phases marked (direct): the same functions without Dagster.",
        "",
        "| phase | stage | "
        + " | ".join(f"{k} s | {k} in steps s | {k} rows | {k} rows/s" for k in kinds)
        + " | unit |",
        "|---|---|" + "---:|---:|---:|---:|" * len(kinds) + "---|",
    ]
    order = []
    for kind in kinds:
        for stage in sections[kind]["stages"]:
            if (stage["phase"], stage["stage"]) not in order:
                order.append((stage["phase"], stage["stage"]))
    for phase, name in order:
        cells, unit = [], ""
        for kind in kinds:
            found = [
                s for s in sections[kind]["stages"] if (s["phase"], s["stage"]) == (phase, name)
            ]
            if not found:
                cells += ["-"] * 4
                continue
            s = found[0]
            unit = s.get("unit", "")
            failed = "" if s.get("success", True) else " FAILED"
            cells += [
                f"{s['seconds']:,.1f}{failed}",
                _number(s.get("step_seconds"), ".1f"),
                _number(s.get("rows")),
                _number(s.get("rows_per_second")),
            ]
        lines.append(f"| {phase} | {name} | " + " | ".join(cells) + f" | {unit} |")
    lines += day_targets_markdown(data)
    lines += ["", "## Incremental day and dashboard, against the targets", ""]
    lines += [
        "| measure | " + " | ".join(kinds) + " | target |",
        "|---|" + "---:|" * len(kinds) + "---|",
    ]
    lines.append(
        "| incremental day: land + dbt (views, the daily marts' window, tables) + analyse (and "
        "insights) + act, s | "
        + " | ".join(_number(incremental_day_seconds(sections[k]), ".1f") for k in kinds)
        + f" | < {INCREMENTAL_DAY_TARGET_SECONDS} s at 1,000 tenants, DuckDB |"
    )
    for phase in ("incremental day (direct)", "incremental day, no new rows (direct)"):
        if any(incremental_day_seconds(sections[k], phase) for k in kinds):
            lines.append(
                f"| {phase}: the same stages without Dagster, s | "
                + " | ".join(
                    _number(incremental_day_seconds(sections[k], phase), ".1f") for k in kinds
                )
                + " | |"
            )
    for label, key in (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms")):
        target = (
            f"< {DASHBOARD_P95_TARGET_MS} ms at 10,000 tenants, Postgres" if label == "p95" else ""
        )
        lines.append(
            f"| dashboard query {label}, ms (summary row + 90 days) | "
            + " | ".join(_number(sections[k].get("dashboard", {}).get(key), ".2f") for k in kinds)
            + f" | {target} |"
        )
    with_index = [sections[k].get("dashboard", {}).get("with_index") for k in kinds]
    if any(with_index):
        lines.append(
            "| dashboard query p95, ms, with an index on (tenant_id, date) | "
            + " | ".join(_number((w or {}).get("p95_ms"), ".2f") for w in with_index)
            + " | |"
        )
    lines += ["", "## Naive designs (reference)", ""]
    lines += ["| measure | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    naive = [sections[k].get("naive_union_view", {}) for k in kinds]
    lines.append(
        "| (a) UNION ALL view over every `user_<id>.stripe_charges`: create, s | "
        + " | ".join(_number(n.get("create_seconds"), ".2f") for n in naive)
        + " |"
    )
    for label, key in (("p50", "p50_ms"), ("p95", "p95_ms")):
        lines.append(
            f"| (a) one tenant's 90 days through the view, {label} ms | "
            + " | ".join(n.get("error") or _number(n.get(key), ".1f") for n in naive)
            + " |"
        )
    per_tenant = [sections[k].get("naive_dbt_per_tenant", {}) for k in kinds]
    for label, key, total in (
        ("first build", "first_build_seconds", "first_build_all_tenants_seconds"),
        ("daily build", "daily_build_seconds", "daily_all_tenants_seconds"),
    ):
        lines.append(
            f"| (b) one dbt invocation per tenant, {label}: sample s (each) | "
            + " | ".join(", ".join(f"{x:.1f}" for x in p.get(key, [])) or "-" for p in per_tenant)
            + " |"
        )
        lines.append(
            f"| (b) {label} for all {data['tenants']:,} tenants, s (**extrapolated**: mean x N) | "
            + " | ".join(_number(p.get(total)) for p in per_tenant)
            + " |"
        )
    probes = {
        k: sections[k].get("union_view_probe") for k in kinds if sections[k].get("union_view_probe")
    }
    if probes:
        lines += ["", "### Where the UNION ALL view breaks (synthetic schemas, 10 rows each)", ""]
        lines += [
            "| warehouse | schemas | create view s | query p50 ms | error |",
            "|---|---:|---:|---:|---|",
        ]
        for kind, rows in probes.items():
            for row in rows:
                lines.append(
                    f"| {kind} | {row['schemas']:,} | {_number(row.get('create_seconds'), '.2f')} | "
                    f"{_number(row.get('p50_ms'), '.1f')} | {row.get('error', '')} |"
                )
    return "\n".join(lines) + "\n"


def _number(value, spec: str = ",") -> str:
    if value is None:
        return "-"
    return format(value, spec if spec != "," else ",.0f")
