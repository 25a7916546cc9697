"""One table over every scale's results: `python -m bench.summary` prints it (Markdown), from the
n<N>.json files in bench/results/."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import incremental_day_seconds

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The dbt stage, or the three stages it was before it ran as one (earlier results).
FULL_BUILD = (("dbt",), ("dbt views", "dbt daily marts", "dbt mart tables"))


def stage_seconds(
    section: dict, phase: str, names: tuple[str, ...], *alternatives: tuple[str, ...]
) -> float | str | None:
    """Seconds of these stages (or of the first alternative measured) of the phase through
    Dagster, else without it (marked direct)."""
    for measured, mark in ((phase, ""), (f"{phase} (direct)", " (direct)")):
        found = {s["stage"]: s["seconds"] for s in section["stages"] if s["phase"] == measured}
        for stages in (names, *alternatives):
            if all(name in found for name in stages):
                total = round(sum(found[name] for name in stages), 1)
                return f"{total:,.1f}{mark}" if mark else total
    return None


def summary_rows(results_dir: Path = RESULTS_DIR) -> list[str]:
    lines = [
        "| tenants | warehouse | simulate s | first load: land s | first load: dbt s | "
        "incremental day s | of which land s | dashboard p95 ms | with index p95 ms | "
        "naive view p95 ms | naive dbt per tenant, daily s (extrapolated) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    files = sorted(results_dir.glob("n*.json"), key=lambda p: int(p.stem[1:]))
    for path in files:
        data = json.loads(path.read_text())
        for kind, section in data["warehouses"].items():
            dashboard = section.get("dashboard", {})
            cells = [
                f"[{data['tenants']:,}]({path.stem}.md)",
                kind,
                _cell(stage_seconds(section, "first load", ("simulate",))),
                _cell(stage_seconds(section, "first load", ("land",))),
                _cell(stage_seconds(section, "first load", *FULL_BUILD)),
                _cell(incremental_day_seconds(section)),
                _cell(stage_seconds(section, "incremental day", ("land",))),
                _cell(dashboard.get("p95_ms"))
                + (" (replicated marts)" if dashboard.get("replicated") else ""),
                _cell(dashboard.get("with_index", {}).get("p95_ms")),
                section.get("naive_union_view", {}).get("error")
                or _cell(section.get("naive_union_view", {}).get("p95_ms")),
                _cell(section.get("naive_dbt_per_tenant", {}).get("daily_all_tenants_seconds")),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


if __name__ == "__main__":
    print("\n".join(summary_rows()))
