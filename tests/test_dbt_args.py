"""The dbt command lines of the flow's three dbt steps, as the dbt assets and the bench build them."""

import datetime as dt
import json

from tenantpulse.transform import dbt_args
from tenantpulse.transform.dbt_args import daily_args, selected, tables_args, views_args


def test_the_views_test_every_row_until_told_a_first_sync_day():
    assert views_args() == ["build"]
    args = views_args(dt.date(2026, 11, 18))
    assert args[:2] == ["build", "--vars"]
    assert json.loads(args[2]) == {"test_synced_since": "2026-11-18"}


def test_the_daily_marts_rebuild_their_window_open_ended_when_it_reaches_the_newest_day():
    args = daily_args(dt.date(2026, 11, 19), dt.date(2026, 11, 21), reaches_newest=False)
    assert args[:2] == ["build", "--vars"]
    assert json.loads(args[2]) == {"start_date": "2026-11-19", "end_date": "2026-11-21"}
    newest = daily_args(dt.datetime(2026, 11, 19), dt.datetime(2026, 11, 21), reaches_newest=True)
    assert json.loads(newest[2]) == {"start_date": "2026-11-19", "end_date": "9999-12-31"}


def test_without_dagster_the_caller_adds_the_selection_dagster_dbt_adds():
    assert tables_args() == ["build"]
    assert selected(views_args(), dbt_args.VIEWS) == [
        "build",
        "--select",
        "fqn:staging fqn:intermediate",
    ]
    assert selected(tables_args(), dbt_args.MARTS, exclude=dbt_args.INCREMENTAL) == [
        "build",
        "--select",
        "fqn:marts",
        "--exclude",
        "config.materialized:incremental",
    ]
