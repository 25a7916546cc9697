"""The flow's three dbt steps as command lines: what each selects and the arguments it runs with.
The dbt assets (defs/dbt.py) hand the arguments to dagster-dbt, which adds the selection; a run
without Dagster (the bench's direct path) adds it with `selected`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from tenantpulse.transform.windows import window_vars

VIEWS = "fqn:staging fqn:intermediate"
INCREMENTAL = "config.materialized:incremental"
MARTS = "fqn:marts"


def views_args(test_rows_synced_since: dt.date | None = None) -> list[str]:
    """Build the staging and intermediate views; their tests check only the rows synced on or
    after `test_rows_synced_since` when it is given, else every row."""
    if test_rows_synced_since is None:
        return ["build"]
    return [
        "build",
        "--vars",
        json.dumps({"test_synced_since": test_rows_synced_since.isoformat()}),
    ]


def daily_args(
    start: dt.date | dt.datetime,
    end: dt.date | dt.datetime,
    reaches_newest: bool,
    history_tenants: Sequence[str] = (),
    recent_from: dt.date | None = None,
) -> list[str]:
    """Build the daily incremental marts over the days [start, end) (open-ended when the window
    reaches the newest partition), for `history_tenants` only before `recent_from` (window_vars)."""
    return [
        "build",
        "--vars",
        window_vars(start, end, reaches_newest, history_tenants, recent_from),
    ]


def tables_args() -> list[str]:
    """Build the mart tables (every mart that is not a daily incremental one)."""
    return ["build"]


def selected(args: list[str], select: str, exclude: str | None = None) -> list[str]:
    """`args` with the selection dagster-dbt adds for a whole dbt asset group."""
    return [*args, "--select", select, *(["--exclude", exclude] if exclude else [])]
