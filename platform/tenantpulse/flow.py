"""The flow's stages and the windows each one runs over: pure decisions, no Dagster.

A flow is a chain of Dagster runs, one per stage, each launched when the one before it succeeds
(the `flow_sensor` in the code location). The CLI starts the same chain and follows it; neither
holds another copy of the order or the windows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

# Run tags every run of one flow carries; the sensor copies them from each run to the next.
FLOW_TAG = "tenantpulse/flow"  # the flow's id
TRIGGER_TAG = "tenantpulse/trigger"  # new_syncs, schedule, cli
UNTIL_TAG = "tenantpulse/until"  # the flow ends after this stage (CLI `--until`)
LOOKBACK_TAG = "tenantpulse/lookback_days"
# Set by a run on itself, or by the sensor on a finished run.
NEWEST_LANDED_TAG = "tenantpulse/newest_landed_day"  # landing: the day of the newest data landed
# landing: the day of the oldest sync whose rows the run merged (empty: it merged none)
OLDEST_SYNC_LANDED_TAG = "tenantpulse/oldest_sync_landed_day"
ROWS_LANDED_TAG = "tenantpulse/rows_landed"  # landing: rows merged or quarantined by the run
# landing: the tenants whose history the run brought (comma-separated, or ALL_TENANTS)
HISTORY_TENANTS_TAG = "tenantpulse/history_tenants"
ALL_TENANTS = "*"
HISTORY_TENANTS_NAMED = 100  # more tenants with new history than this: rebuild every tenant
# landing: the tenant streams that could not be landed (`<tenant>/<stream>`, the first few)
LANDING_FAILED_TAG = "tenantpulse/landing_failed"
FAILED_NAMED = 10
# dbt: how many tenants the run rebuilt, or ALL_TENANTS (set by the run on itself)
TENANTS_REBUILT_TAG = "tenantpulse/tenants_rebuilt"
NEXT_TAG = "tenantpulse/next"  # the sensor: the run it launched next, or "end: <why>"
END = "end: "
PROPAGATED_TAGS = (
    FLOW_TAG,
    TRIGGER_TAG,
    UNTIL_TAG,
    LOOKBACK_TAG,
    NEWEST_LANDED_TAG,
    HISTORY_TENANTS_TAG,
)
PARTITION_RANGE_START = "dagster/asset_partition_range_start"
PARTITION_RANGE_END = "dagster/asset_partition_range_end"

DEFAULT_LOOKBACK_DAYS = 3


class FlowError(RuntimeError):
    """The flow could not be started or followed (not: a stage failed, which is a StageRun of
    flow_runs.py)."""


@dataclass(frozen=True)
class Stage:
    name: str  # what the CLI prints and `--until` takes
    job: str


LAND = Stage("land", "land_job")
# dbt's views, daily marts (over the window of days) and mart tables, in one run.
DBT = Stage("dbt", "dbt_job")
ANALYSE = Stage("analyse", "analyse_job")  # the analysis, then the insights written from it
ACT = Stage("act", "act_job")
STAGES = (LAND, DBT, ANALYSE, ACT)
STAGE_BY_JOB = {stage.job: stage for stage in STAGES}


def stage_named(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise ValueError(f"unknown stage {name!r}; stages: {', '.join(s.name for s in STAGES)}")


def next_stage(finished_job: str) -> Stage | None:
    """The stage after the one whose job finished (None after the last, or for another job)."""
    stage = STAGE_BY_JOB.get(finished_job)
    if stage is None or stage is STAGES[-1]:
        return None
    return STAGES[STAGES.index(stage) + 1]


def tests_since(
    landed_since: Sequence[str | None] | None, newest_sync: dt.date | None
) -> dt.date | None:
    """The first sync day whose rows the staging tests check. `landed_since`: the
    OLDEST_SYNC_LANDED_TAG of each land run that ended after the last run of the tests started
    (None for a run without it), or None when no run of them has passed, or its last
    run failed. Every row (None) then, and when a land run does not say what it merged (a run
    stopped before it could); else the day of the oldest sync whose rows were landed since: rows
    that arrived late, or through several land runs between two test runs, are inside it, and
    rows tested before are not. When nothing was landed since, the newest sync's day."""
    if landed_since is None or None in landed_since:
        return None
    days = [parse_day(day) for day in landed_since if day]
    return min(days, default=newest_sync)


@dataclass(frozen=True)
class DailyWindow:
    """The daily partitions a run rebuilds, [first, last]. With `history_tenants`, only those
    tenants' rows are rebuilt from `first`; every other tenant's from `recent_from` on."""

    first: str
    last: str
    history_tenants: tuple[str, ...] = ()
    recent_from: str | None = None


def daily_window(
    day_keys: list[str],
    first_build: bool,
    newest_sync: dt.date | None,
    lookback_days: int,
    history_tenants: tuple[str, ...] = (),
) -> DailyWindow:
    """The daily partitions to rebuild: all of them on the first build; else from `lookback_days`
    before the newest sync's day (late updates: refunds, Google Analytics' revised days) to the
    newest partition, whose run also covers any later-dated rows. Tenants whose history was just
    landed (their first sync, a new source, a connector's refresh, the syncs of days before the
    recent ones) get every day, from the first partition; ALL_TENANTS among them rebuilds every
    tenant's days."""
    if not day_keys:
        raise ValueError("no daily partitions: check TENANTPULSE_DAILY_PARTITIONS_START/_END")
    if first_build or newest_sync is None or ALL_TENANTS in history_tenants:
        return DailyWindow(day_keys[0], day_keys[-1])
    start = recent_start(newest_sync, lookback_days).isoformat()
    recent = next((key for key in day_keys if key >= start), day_keys[-1])
    if history_tenants and recent != day_keys[0]:
        return DailyWindow(day_keys[0], day_keys[-1], tuple(sorted(history_tenants)), recent)
    return DailyWindow(recent, day_keys[-1])


def lookback_days(tags: dict) -> int:
    """The flow's lookback (its run tag, else the default)."""
    return int(tags.get(LOOKBACK_TAG, DEFAULT_LOOKBACK_DAYS))


def recent_start(newest_sync: dt.date, lookback_days: int) -> dt.date:
    """The first day a run after a land rebuilds for every tenant (daily_window)."""
    return newest_sync - dt.timedelta(days=lookback_days)


def history_tag(tenant_ids: set[str]) -> str:
    """The value of HISTORY_TENANTS_TAG for these tenants."""
    if len(tenant_ids) > HISTORY_TENANTS_NAMED:
        return ALL_TENANTS
    return ",".join(sorted(tenant_ids))


def failed_tag(names: list[str]) -> str:
    """The value of LANDING_FAILED_TAG for these `<tenant>/<stream>` names."""
    shown = ", ".join(names[:FAILED_NAMED])
    return shown + (f" and {len(names) - FAILED_NAMED} more" if len(names) > FAILED_NAMED else "")


def history_tenants(tags: dict) -> tuple[str, ...]:
    return tuple(t for t in tags.get(HISTORY_TENANTS_TAG, "").split(",") if t)


def parse_day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None
