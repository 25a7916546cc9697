"""Where the analysis is kept: one table per output in schema `analysis`, one row set per day
(`as_of`), replaced whole when a day is analysed again; and `ops.ai_workflow_analysis`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import pandas as pd

from tenantpulse.sources.raw_table_ddl import logical_type_of
from tenantpulse.warehouse import Connection, qualified, quote_ident

ANALYSIS_SCHEMA = "analysis"
# The input hash of each analysed tenant-day (analysis.daily): bookkeeping, kept in `ops`.
INPUTS_SCHEMA, INPUTS_TABLE = "ops", "analysed_inputs"


DELETE_BATCH = 500  # tenant ids per delete statement


def replace_days(
    conn: Connection, schema: str, table: str, frame: pd.DataFrame, days: list[dt.date]
) -> int:
    """Make `schema.table` hold exactly `frame`'s rows for `days` (column `as_of`)."""
    return replace_tenant_days(conn, schema, table, frame, dict.fromkeys(days))


def replace_tenant_days(
    conn: Connection,
    schema: str,
    table: str,
    frame: pd.DataFrame,
    tenants_by_day: Mapping[dt.date, Collection[str] | None],
) -> int:
    """Delete the rows of each day's tenants (None: the whole day) from `schema.table`, then
    append `frame`'s rows; the table is created from `frame`'s columns when missing."""
    types = {name: logical_type_of(frame[name]) for name in frame.columns}
    types["as_of"] = "date"
    conn.ensure_schema(schema)
    target = qualified(schema, table)
    if not conn.table_exists(schema, table):
        columns = ", ".join(f"{quote_ident(n)} {conn.sql_type(t)}" for n, t in types.items())
        conn.execute(f"create table {target} ({columns})")
    else:
        conn.add_missing_columns(schema, table, types)
    whole = [day for day, tenants in tenants_by_day.items() if tenants is None]
    if whole:
        placeholders = ", ".join(["%s"] * len(whole))
        conn.execute(f"delete from {target} where as_of in ({placeholders})", whole)
    for day, tenants in tenants_by_day.items():
        ids = sorted(tenants) if tenants is not None else []
        for start in range(0, len(ids), DELETE_BATCH):
            batch = ids[start : start + DELETE_BATCH]
            conn.execute(
                f"delete from {target} where as_of = %s and tenant_id in "
                f"({', '.join(['%s'] * len(batch))})",
                [day, *batch],
            )
    return conn.write_frame(schema, table, frame)


def stored_input_hashes(conn: Connection, days: list[dt.date]) -> pd.DataFrame:
    """(tenant_id, as_of, input_hash) of `ops.analysed_inputs` for `days` (none when missing)."""
    if not days or not conn.table_exists(INPUTS_SCHEMA, INPUTS_TABLE):
        return pd.DataFrame({"tenant_id": [], "as_of": [], "input_hash": []})
    frame = conn.read_frame(
        f"select tenant_id, as_of, input_hash from {qualified(INPUTS_SCHEMA, INPUTS_TABLE)} "
        f"where as_of in ({', '.join(['%s'] * len(days))})",
        list(days),
    )
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return frame


def read_days(
    conn: Connection, table: str, tenant_id: str | None, as_of: dt.date | None
) -> pd.DataFrame:
    """Rows of `analysis.<table>` for one tenant (or all) on one day (or the newest analysed)."""
    target = qualified(ANALYSIS_SCHEMA, table)
    if not conn.table_exists(ANALYSIS_SCHEMA, table):
        return pd.DataFrame()
    if as_of is None:
        as_of = conn.fetch_value(f"select max(as_of) from {target}")
    if tenant_id is None:
        return conn.read_frame(f"select * from {target} where as_of = %s", (as_of,))
    return conn.read_frame(
        f"select * from {target} where as_of = %s and tenant_id = %s", (as_of, tenant_id)
    )


@dataclass(frozen=True)
class OutputColumn:
    """A column of an analysis table: its logical type (sources.contracts' names, as replace_days
    creates it) and what it holds."""

    name: str
    type: str
    description: str


_TENANT = OutputColumn("tenant_id", "varchar", "The tenant (ops.tenants.tenant_id).")
_AS_OF = OutputColumn(
    "as_of", "date", "The day analysed: computed from rows dated on or before it only."
)
_METRIC = OutputColumn(
    "metric", "varchar", "A daily metric of analytics.tenant_daily_metrics (revenue, mrr, ...)."
)


def _cols(*columns: tuple[str, str, str]) -> tuple[OutputColumn, ...]:
    return (_TENANT, _AS_OF, *(OutputColumn(*c) for c in columns))


# The columns of each table, in order: what the UI shows as the asset's column schema, and what
# the frames of analysis.daily hold (tests/test_analysis_checks.py compares the two).
ANALYSIS_COLUMNS: dict[str, tuple[OutputColumn, ...]] = {
    "tenant_features": _cols(
        ("date", "timestamptz", "The tenant's latest day with data on or before as_of."),
        ("revenue_mom_growth", "decimal", "Revenue of the last 30 days / the 30 before - 1."),
        ("mrr_growth_30d", "decimal", "MRR on the day / MRR 30 days earlier - 1."),
        ("failed_charge_rate_30d", "decimal", "Failed / attempted Stripe charges, 30 days."),
        ("cancellation_rate_30d", "decimal", "Subscriptions canceled / mean active, 30 days."),
        ("new_customers_trend", "decimal", "Relative Theil-Sen slope of new customers, 28 days."),
        ("revenue_slope_28d", "decimal", "Relative Theil-Sen slope of revenue, 28 days."),
        ("prs_merged_trend", "decimal", "Relative Theil-Sen slope of PRs merged, 28 days."),
        ("sessions_trend", "decimal", "Relative Theil-Sen slope of GA sessions, 28 days."),
        ("failed_charge_rate_30d_missing", "decimal", "1 when there were no charges to rate."),
        ("cancellation_rate_30d_missing", "decimal", "1 when there were no subscriptions."),
    ),
    "trends": _cols(
        (_METRIC.name, _METRIC.type, _METRIC.description),
        ("slope_28d", "decimal", "Theil-Sen slope per day over the last 28 days."),
        ("slope_90d", "decimal", "Theil-Sen slope per day over the last 90 days."),
        ("relative_slope_28d", "decimal", "slope_28d x 30 / the window's mean level."),
        ("relative_slope_90d", "decimal", "slope_90d x 30 / the window's mean level."),
        (
            "mom_growth",
            "decimal",
            "Growth over 30 days: sum of the 30 days up to as_of / the 30 before - 1.",
        ),
        ("direction", "varchar", "up, down or flat (relative_slope_90d beyond +-0.03); unknown."),
    ),
    "seasonality": _cols(
        (_METRIC.name, _METRIC.type, _METRIC.description),
        ("weekly", "boolean", "Weekly pattern: enough evidence, strength >= 0.3, p_value < 0.01."),
        ("strength", "decimal", "Share of variance explained by the day of week (eta squared)."),
        ("p_value", "decimal", "Kruskal-Wallis test of the days of the week; NULL if not tested."),
        ("peak_day", "varchar", "The strongest day of the week when weekly (Mon..Sun)."),
        ("trough_day", "varchar", "The weakest day of the week when weekly."),
    ),
    "anomalies": _cols(
        (_METRIC.name, _METRIC.type, _METRIC.description),
        ("date", "timestamptz", "The anomalous day (within the 90 days up to as_of)."),
        ("value", "decimal", "The metric's value that day."),
        ("expected", "decimal", "Median of up to 3 days each side, seasonally adjusted."),
        ("robust_z", "decimal", "Residual / (1.4826 x MAD of residuals); |z| >= 3.5 reported."),
        ("kind", "varchar", "spike or drop."),
    ),
    "health_scores": _cols(
        (
            "health_score",
            "bigint",
            "0-100: weighted mean of the components the tenant has; NULL on a day none measured "
            "anything (components_used empty).",
        ),
        ("revenue", "decimal", "Component 0-100 (weight 0.35): revenue MoM growth, MRR slope."),
        ("payments", "decimal", "Component 0-100 (0.2): failed-charge and cancellation rates."),
        ("engineering", "decimal", "Component 0-100 (0.2): hours to merge, PR throughput trend."),
        ("web", "decimal", "Component 0-100 (0.15): sessions trend, bounce rate."),
        (
            "data_freshness",
            "decimal",
            "Component 0-100 (0.1): days since the newest successful sync.",
        ),
        ("components_used", "varchar", "The components the score is the weighted mean of."),
        ("override", "varchar", "Why the score was capped at 40 (failed charges >= 20%)."),
        ("failed_charge_rate_30d", "decimal", "Failed / attempted Stripe charges, 30 days."),
        ("cancellation_rate_30d", "decimal", "Subscriptions canceled / mean active, 30 days."),
        ("median_hours_to_merge_30d", "decimal", "Median hours to merge a PR, 30 days."),
        ("bounce_rate_30d", "decimal", "GA bounce rate weighted by sessions, 30 days."),
        (
            "days_since_data",
            "bigint",
            "Days from the tenant's newest successful sync at or before as_of to as_of.",
        ),
    ),
    "churn_risk": _cols(
        ("churn_probability", "decimal", "0-1 from the logistic model; NULL when unknown."),
        ("churn_risk", "varchar", "low (< 0.3), medium, high (>= 0.6) or unknown."),
        ("reason", "varchar", "The model and its strongest signals, or why it is unknown."),
    ),
    "recommendations": _cols(
        ("priority", "varchar", "high, medium or low: set by the rule, never by a model."),
        ("action", "varchar", "What to do."),
        ("impact", "varchar", "Why, with the numbers behind it."),
        ("evidence", "varchar", "JSON list of the `metric = value` facts the rule fired on."),
        ("rule", "varchar", "The rule that fired (docs/analysis.md)."),
    ),
}
