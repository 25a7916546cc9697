"""The window a dbt run rebuilds, written as one row of `ops.dbt_run_window` that the models read
(dbt_project/macros/run_window.sql), not passed as dbt `--vars`: vars that differ from the ones
of the saved parse make dbt parse the whole project again (3.3 s -> 7.7-9.2 s per invocation,
issue 19), while a row in the warehouse changes nothing dbt parses. The run names its row with
the environment variable RUN_ID_ENV; a dbt run without it (`tenantpulse dbt build`, a full
refresh) covers every date and tests every row.

A run can also rebuild only the tenants whose landing tables changed since their marts were last
built: the land runs mark the tenants they land in `ops.dbt_pending_tenants`, a run with
`changed_tenants_only` takes the marked tenants as its scope (`ops.dbt_run_tenants`, read by
macros/run_tenants.sql), and clears the marks it took once it has succeeded. Every model's rows of
a tenant are built from that tenant's rows alone, except a tenant's day spine, which reaches the
newest day of any tenant: the tenants whose spine moved join the scope as it runs, and once the
scope is most tenants the rest of the run covers every tenant (its row is marked `widened`), but
for the models whose rows follow their tenant's own inputs only (`follows_day_analysed=false`),
which keep to the marked tenants."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tenantpulse.flow import ALL_TENANTS
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.warehouse import Connection

RUN_ID_ENV = "TENANTPULSE_DBT_RUN_ID"
# The macro accepts the same (it writes the id into its query as a literal).
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A window that reaches the newest partition stays open: rows dated after it (a source's clock
# ahead of ours, or simulated days past today) are built with the newest day, not left out.
OPEN_END = dt.date(9999, 12, 31)
_MARKS_PER_STATEMENT = 500  # tenants marked for a build per insert (its bound parameters)


@dataclass(frozen=True)
class RunWindow:
    """What one dbt run rebuilds and tests. Dates in [start_date, end_date) of the daily marts
    (None: every date); with `history_tenants`, every other tenant's dates only from
    `recent_from` on; the staging tests check the rows synced on or after `tests_since` (None:
    every row). With `changed_tenants_only`, only the tenants marked for a build (and those whose
    day spine moved) are rebuilt, unless a land run over every tenant marked them all."""

    start_date: dt.date | None = None
    end_date: dt.date | None = None
    history_tenants: tuple[str, ...] = ()
    recent_from: dt.date | None = None
    tests_since: dt.date | None = None
    changed_tenants_only: bool = False

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
    changed_tenants_only: bool = False,
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
        changed_tenants_only,
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
    # Added after the table: a warehouse made before has them without. `widened`: set by the run
    # when its tenants became most tenants (macros/run_tenants.sql, run_scope_widened).
    for column in ("changed_tenants_only", "widened"):
        conn.execute(f"alter table ops.dbt_run_window add column if not exists {column} boolean")
    # A tenant (or ALL_TENANTS) whose landing tables a land run changed, or whose day spine a dbt
    # run moved, once per mark: its marts are rebuilt by the next run with changed_tenants_only
    # (or any run over every tenant).
    conn.execute(
        "create table if not exists ops.dbt_pending_tenants ("
        " tenant_id varchar not null,"
        " marked_at timestamptz not null)"
    )
    # A run's scope: the marks it took, and the tenants whose spine moved as it ran (spine_moved,
    # marked by the run itself: macros/run_tenants.sql).
    conn.execute(
        "create table if not exists ops.dbt_run_tenants ("
        " run_id varchar not null,"
        " tenant_id varchar not null,"
        " marked_at timestamptz)"
    )
    conn.execute("alter table ops.dbt_run_tenants add column if not exists spine_moved boolean")
    # Each tenant's day spine before the run rebuilt it (macros/run_tenants.sql).
    conn.execute(
        "create table if not exists ops.dbt_run_spines ("
        " run_id varchar not null,"
        " tenant_id varchar not null,"
        " first_date date,"
        " through_date date)"
    )


def mark_for_build(conn: Connection, tenant_ids: Sequence[str] | None) -> None:
    """Mark tenants whose landing tables a land run changes (None: every tenant) for the next
    dbt run over the changed tenants. The warehouse's clock stamps the marks, so marks made by
    several machines compare."""
    ensure_run_window_table(conn)
    marked = [ALL_TENANTS] if tenant_ids is None else [validate_tenant_id(t) for t in tenant_ids]
    for start in range(0, len(marked), _MARKS_PER_STATEMENT):
        chunk = marked[start : start + _MARKS_PER_STATEMENT]
        conn.execute(
            "insert into ops.dbt_pending_tenants (tenant_id, marked_at) values "
            + ", ".join(["(%s, current_timestamp)"] * len(chunk)),
            tuple(chunk),
        )


def write_run_window(conn: Connection, run_id: str, window: RunWindow) -> None:
    """The row dbt reads for the run `run_id` (written again when the run is retried), and the
    marks it takes: its scope with `changed_tenants_only`, else what it clears when it succeeds.
    A mark of every tenant makes it a run over every tenant."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"not a dbt run id: {run_id!r} (letters, digits, _ and -, at most 64)")
    ensure_run_window_table(conn)
    for table in ("dbt_run_window", "dbt_run_tenants", "dbt_run_spines"):
        conn.execute(f"delete from ops.{table} where run_id = %s", (run_id,))
    conn.execute(
        "insert into ops.dbt_run_tenants (run_id, tenant_id, marked_at)"
        " select %s, tenant_id, marked_at from ops.dbt_pending_tenants",
        (run_id,),
    )
    every_tenant = conn.fetch_value(
        "select count(*) from ops.dbt_run_tenants where run_id = %s and tenant_id = %s",
        (run_id, ALL_TENANTS),
    )
    conn.execute(
        "insert into ops.dbt_run_window (run_id, written_at, start_date, end_date,"
        " history_tenants, recent_from, tests_since, changed_tenants_only, widened)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, false)",
        (
            run_id,
            dt.datetime.now(dt.UTC),
            window.start_date,
            window.end_date,
            ",".join(window.history_tenants) or None,
            window.recent_from,
            window.tests_since,
            window.changed_tenants_only and not every_tenant,
        ),
    )


def run_tenants(conn: Connection, run_id: str) -> list[str] | None:
    """The tenants the run rebuilt: its scope (None: a run over every tenant)."""
    scoped = conn.fetch_value(
        "select changed_tenants_only and not widened from ops.dbt_run_window where run_id = %s",
        (run_id,),
    )
    if not scoped:
        return None
    found = conn.fetch_all(
        "select distinct tenant_id from ops.dbt_run_tenants where run_id = %s order by tenant_id",
        (run_id,),
    )
    return [tenant_id for (tenant_id,) in found]


def finish_run_window(conn: Connection, run_id: str) -> None:
    """After the run succeeded: clear the marks it took (not those made since), and its scope."""
    conn.execute(
        "delete from ops.dbt_pending_tenants where exists (select 1 from ops.dbt_run_tenants"
        " where dbt_run_tenants.run_id = %s"
        " and dbt_run_tenants.tenant_id = dbt_pending_tenants.tenant_id"
        " and dbt_run_tenants.marked_at = dbt_pending_tenants.marked_at)",
        (run_id,),
    )
    for table in ("dbt_run_tenants", "dbt_run_spines"):
        conn.execute(f"delete from ops.{table} where run_id = %s", (run_id,))
