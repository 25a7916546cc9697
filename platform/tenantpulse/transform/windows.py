"""The window a dbt run rebuilds, written as one row of `ops.dbt_run_window` that the models read
(dbt_project/macros/run_window.sql), not passed as dbt `--vars`: vars that differ from the ones
of the saved parse make dbt parse the whole project again (3.3 s -> 7.7-9.2 s per invocation,
issue 19), while a row in the warehouse changes nothing dbt parses. The run names its row with
the environment variable RUN_ID_ENV; a dbt run without it (`tenantpulse dbt build`, a full
refresh) covers every date and tests every row."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.warehouse import Connection

RUN_ID_ENV = "TENANTPULSE_DBT_RUN_ID"
# The macro accepts the same (it writes the id into its query as a literal).
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A window that reaches the newest partition stays open: rows dated after it (a source's clock
# ahead of ours, or simulated days past today) are built with the newest day, not left out.
OPEN_END = dt.date(9999, 12, 31)


@dataclass(frozen=True)
class RunWindow:
    """What one dbt run rebuilds and tests. Dates in [start_date, end_date) of the daily marts
    (None: every date); with `history_tenants`, every other tenant's dates only from
    `recent_from` on; the staging tests check the rows synced on or after `tests_since` (None:
    every row)."""

    start_date: dt.date | None = None
    end_date: dt.date | None = None
    history_tenants: tuple[str, ...] = ()
    recent_from: dt.date | None = None
    tests_since: dt.date | None = None

    def __post_init__(self) -> None:
        if (self.start_date is None) != (self.end_date is None):
            raise ValueError("a dbt window needs both its start and its end, or neither")
        if self.start_date and self.end_date and self.end_date <= self.start_date:
            raise ValueError(
                f"empty dbt window: end {self.end_date} is not after start {self.start_date}"
            )
        if self.history_tenants and self.recent_from is None:
            raise ValueError("a window with history tenants needs the day the others start from")
        for tenant_id in self.history_tenants:
            validate_tenant_id(tenant_id)


def daily_window(
    start: dt.date | dt.datetime,
    end: dt.date | dt.datetime,
    reaches_newest: bool = False,
    history_tenants: Sequence[str] = (),
    recent_from: dt.date | None = None,
    tests_since: dt.date | None = None,
) -> RunWindow:
    """The window of a run over the daily partitions [start, end), open-ended when it reaches
    the newest partition."""
    start_day = start.date() if isinstance(start, dt.datetime) else start
    end_day = end.date() if isinstance(end, dt.datetime) else end
    if end_day <= start_day:
        raise ValueError(f"empty dbt window: end {end_day} is not after start {start_day}")
    return RunWindow(
        start_day,
        OPEN_END if reaches_newest else end_day,
        tuple(history_tenants),
        recent_from if history_tenants else None,
        tests_since,
    )


def ensure_run_window_table(conn: Connection) -> None:
    conn.ensure_schema("ops")
    conn.execute(
        "create table if not exists ops.dbt_run_window ("
        " run_id varchar primary key,"
        " written_at timestamptz not null,"
        " start_date date,"
        " end_date date,"
        " history_tenants varchar,"  # comma-separated tenant ids
        " recent_from date,"
        " tests_since date)"
    )


def write_run_window(conn: Connection, run_id: str, window: RunWindow) -> None:
    """The row dbt reads for the run `run_id` (written again when the run is retried)."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"not a dbt run id: {run_id!r} (letters, digits, _ and -, at most 64)")
    ensure_run_window_table(conn)
    conn.execute("delete from ops.dbt_run_window where run_id = %s", (run_id,))
    conn.execute(
        "insert into ops.dbt_run_window (run_id, written_at, start_date, end_date,"
        " history_tenants, recent_from, tests_since) values (%s, %s, %s, %s, %s, %s, %s)",
        (
            run_id,
            dt.datetime.now(dt.UTC),
            window.start_date,
            window.end_date,
            ",".join(window.history_tenants) or None,
            window.recent_from,
            window.tests_since,
        ),
    )
