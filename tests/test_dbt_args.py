"""The dbt stage's command line and the window it reads from the warehouse instead of `--vars`."""

import datetime as dt

import pytest

from tenantpulse.tenants.ids import TenantIdError
from tenantpulse.transform.dbt_args import build_args
from tenantpulse.transform.windows import (
    OPEN_END,
    RunWindow,
    daily_window,
    write_run_window,
)


def test_the_dbt_stage_is_one_build_without_vars_or_unit_tests():
    assert build_args() == ["build", "--exclude-resource-type", "unit_test"]


def test_a_window_covers_start_inclusive_end_exclusive():
    assert daily_window(dt.date(2026, 11, 1), dt.date(2026, 11, 4)) == RunWindow(
        dt.date(2026, 11, 1), dt.date(2026, 11, 4)
    )
    midnight = dt.datetime(2026, 11, 4, tzinfo=dt.UTC)
    assert daily_window(midnight - dt.timedelta(days=1), midnight).start_date == dt.date(
        2026, 11, 3
    )


def test_a_window_reaching_the_newest_day_stays_open():
    window = daily_window(dt.date(2026, 11, 1), dt.date(2026, 11, 2), reaches_newest=True)
    assert window.end_date == OPEN_END


def test_bad_windows_are_rejected():
    with pytest.raises(ValueError, match="empty dbt window"):
        daily_window(dt.date(2026, 11, 2), dt.date(2026, 11, 2))
    with pytest.raises(ValueError, match="needs the day the others start from"):
        RunWindow(dt.date(2026, 11, 1), dt.date(2026, 11, 4), ("acme",))
    with pytest.raises(TenantIdError):
        RunWindow(dt.date(2026, 11, 1), dt.date(2026, 11, 4), ("x'; drop",), dt.date(2026, 11, 3))
    with pytest.raises(ValueError, match="both its start and its end"):
        RunWindow(start_date=dt.date(2026, 11, 1))


def test_the_window_is_one_row_per_run_written_again_on_a_retry(warehouse):
    window = daily_window(
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 4),
        True,
        ("acme", "beta"),
        dt.date(2026, 11, 3),
        dt.date(2026, 10, 30),
    )
    with warehouse.connect() as conn:
        write_run_window(conn, "run-1", RunWindow())
        write_run_window(conn, "run-1", window)
        with pytest.raises(ValueError, match="not a dbt run id"):
            write_run_window(conn, "run'1", window)
    with warehouse.connect() as conn:
        assert conn.fetch_all(
            "select run_id, start_date, end_date, history_tenants, recent_from, tests_since"
            " from ops.dbt_run_window"
        ) == [
            (
                "run-1",
                dt.date(2026, 11, 1),
                OPEN_END,
                "acme,beta",
                dt.date(2026, 11, 3),
                dt.date(2026, 10, 30),
            )
        ]
