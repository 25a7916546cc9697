"""The analysis stage's pure work at N tenants, without a warehouse: train the churn model, then
analyse each of the newest days, timed.

    python -m bench.analysis_probe --tenants 10000 [--days 3] [--label "after: abc123"] [--output FILE]

The history is analysis.synthetic_tenants' population (180 days, every source for most tenants;
SYNTHETIC curves, not the simulator's tenants) under real-looking ids, with 5% of each flow
metric's values and 3% of the tenant-days removed so that the medians' paths for missing values
run too. What is timed is what `analyse_days` does between reading the history and writing the
rows: `normalise_history`, `train_churn_model` (a daily run pays it only when the saved model is
due), `analyse_day` for each day in this process, then the days together as `analyse_days` runs
them (`analyse_tenant_days`: the tenants split among processes when there are many). Each step
records wall seconds, CPU seconds (this process's and its finished children's) and the load
average. Each run is appended to the output file's `runs` under its --label, so that two code
versions can be compared on the same machine, one after the other.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import load_average, machine
from tenantpulse.analysis import daily
from tenantpulse.analysis.synthetic_tenants import synthetic_training_history

BENCH_DIR = Path(__file__).resolve().parent
HISTORY_DAYS = 180
FLOW_METRICS = ("revenue", "new_customers", "prs_merged", "median_hours_to_merge", "sessions")


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def probe_history(tenants: int, seed: int = 3) -> pd.DataFrame:
    """The synthetic population as tenant_daily_metrics rows of ordinary tenant ids, with holes."""
    history = synthetic_training_history(tenants, HISTORY_DAYS, seed=seed)
    history["tenant_id"] = history["tenant_id"].str.replace("syn-", "t_").str.replace("-", "_")
    history["last_synced_at"] = (history["date"] + pd.Timedelta(hours=20)).dt.tz_localize("UTC")
    rng = np.random.default_rng(seed)
    for metric in FLOW_METRICS:
        history.loc[rng.random(len(history)) < 0.05, metric] = np.nan
    return history[rng.random(len(history)) > 0.03].reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--days", type=int, default=3, help="the newest days analysed (default 3)")
    parser.add_argument(
        "--output", type=Path, help="default bench/results/analysis_probe_n<N>.json"
    )
    parser.add_argument("--label", default="", help="what this run measures, e.g. the code version")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    output = args.output or BENCH_DIR / "results" / f"analysis_probe_n{args.tenants}.json"

    steps = []

    def timed(name: str, work):
        before = load_average()
        wall, cpu = time.perf_counter(), _cpu()
        result = work()
        steps.append(
            {
                "step": name,
                "seconds": round(time.perf_counter() - wall, 2),
                "cpu_seconds": round(_cpu() - cpu, 2),
                "load_average_before": before,
            }
        )
        print(f"{name}: {steps[-1]['seconds']} s ({steps[-1]['cpu_seconds']} s CPU)", flush=True)
        return result

    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="minutes")
    raw = probe_history(args.tenants)
    history = timed("normalise the history", lambda: daily.normalise_history(raw))
    newest = history["date"].max().date()
    model = timed(
        "train the churn model",
        lambda: daily.train_churn_model(
            history, newest - dt.timedelta(days=daily.MODEL_LABEL_LAG_DAYS)
        ),
    )
    days = [newest - dt.timedelta(days=back) for back in range(args.days - 1, -1, -1)]
    for day in days:
        timed(f"analyse {day}", lambda day=day: daily.analyse_day(history, day, model))
    tenants = set(history["tenant_id"])
    timed(
        f"analyse the {args.days} days as analyse_days does",
        lambda: daily.analyse_tenant_days(history, [(day, tenants) for day in days], model),
    )

    code = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH_DIR
    ).stdout.strip()
    run = {
        "label": args.label,
        "code": code,
        "days": args.days,
        "history_rows": len(history),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "started_at": started_at,
        "note": args.note,
        "steps": steps,
    }
    report = json.loads(output.read_text()) if output.exists() else {}
    report = {
        "probe": "python -m bench.analysis_probe --tenants N [--days D] --label L",
        "tenants": args.tenants,
        "machine": machine(),
        "runs": [*report.get("runs", []), run],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {output}")


if __name__ == "__main__":
    main()
