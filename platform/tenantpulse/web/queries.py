"""What the dashboard and the API read for one tenant: plain functions over a warehouse
`Connection` (web.db gives one scoped to the tenant). Every query also filters on `tenant_id = %s`
with the tenant bound as a parameter: on DuckDB that filter is the only isolation there is."""

from __future__ import annotations

import datetime as dt
import decimal
import math

import pandas as pd

from tenantpulse.analysis.document import DOCUMENT_TABLES, analysis_document
from tenantpulse.analysis.tables import ANALYSIS_SCHEMA
from tenantpulse.insights.deterministic import STALE_DAYS
from tenantpulse.sources.sync_history import SUCCEEDED
from tenantpulse.warehouse import Connection, qualified

# The marts a tenant reads through the API and the CSV export, with the order of their rows.
MARTS: dict[str, tuple[str, ...]] = {
    "revenue_daily": ("date", "currency"),
    "revenue_analytics": ("month", "currency"),
    "developer_activity": ("date",),
    "developer_activity_monthly": ("month",),
    "website_analytics": ("date",),
    "website_traffic": ("date", "dimension", "dimension_value"),
    "tenant_daily_metrics": ("date",),
    "unified_customers": ("customer_key",),
    "user_dashboard_summary": ("tenant_id",),
}
MARTS_SCHEMA = "analytics"


class UnknownMartError(LookupError):
    pass


def existing_tables(conn: Connection) -> set[tuple[str, str]]:
    """(schema, table) of what the app may read and is there: one query per request instead of
    one per table."""
    rows = conn.fetch_all(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema in ('analytics', 'analysis', 'ops')"
    )
    return {(schema, table) for schema, table in rows}


def _read(
    conn: Connection,
    tables: set[tuple[str, str]],
    schema: str,
    table: str,
    columns: str,
    tenant_id: str,
    order: str,
    where: str = "",
    params: tuple = (),
) -> pd.DataFrame:
    if (schema, table) not in tables:
        return pd.DataFrame()
    return conn.read_frame(
        f"select {columns} from {qualified(schema, table)} "
        f"where tenant_id = %s {where}" + (f" order by {order}" if order else ""),
        (tenant_id, *params),
    )


def mart_rows(conn: Connection, tenant_id: str, mart: str) -> pd.DataFrame:
    """Every row of `analytics.<mart>` for the tenant, in its key order."""
    if mart not in MARTS:
        raise UnknownMartError(f"no mart {mart!r}; allowed: {', '.join(MARTS)}")
    order = ", ".join(f'"{c}"' for c in MARTS[mart])
    return _read(conn, existing_tables(conn), MARTS_SCHEMA, mart, "*", tenant_id, order)


def report(conn: Connection, tenant_id: str, tables: set | None = None) -> dict | None:
    """The analysis document of the tenant's newest analysed day (what `tenantpulse report`
    prints for that day), or None before any analysis. The tables are read as
    analysis.tables.read_days does, with one catalog query instead of one per table."""
    tables = existing_tables(conn) if tables is None else tables
    if (ANALYSIS_SCHEMA, "health_scores") not in tables:
        return None
    day = conn.fetch_value(
        "select max(as_of) from analysis.health_scores where tenant_id = %s", (tenant_id,)
    )
    if day is None:
        return None
    frames = {
        name: _read(
            # In stored order, as read_days reads them: the writer's order of recommendations.
            conn,
            tables,
            ANALYSIS_SCHEMA,
            name,
            "*",
            tenant_id,
            "",
            "and as_of = %s",
            (day,),
        )
        for name in DOCUMENT_TABLES
    }
    return analysis_document(tenant_id, pd.Timestamp(day).date(), frames)


def dashboard(conn: Connection, tenant_id: str) -> dict:
    """Everything the dashboard page shows, as plain values (charts as labels and series)."""
    tables = existing_tables(conn)
    tenant = _read(conn, tables, "ops", "tenants", "name, sources", tenant_id, "tenant_id")
    summary = _read(
        conn, tables, MARTS_SCHEMA, "user_dashboard_summary", "*", tenant_id, "tenant_id"
    )
    summary_row = json_rows(summary)[0] if not summary.empty else {}
    currency = summary_row.get("currency")
    health = _read(
        conn,
        tables,
        ANALYSIS_SCHEMA,
        "health_scores",
        "as_of, health_score, days_since_data",
        tenant_id,
        "as_of",
    )
    churn = _read(
        conn,
        tables,
        ANALYSIS_SCHEMA,
        "churn_risk",
        "as_of, churn_probability",
        tenant_id,
        "as_of",
    )
    revenue = (
        _read(
            conn,
            tables,
            MARTS_SCHEMA,
            "revenue_analytics",
            "month, mrr, new_mrr, expansion_mrr, contraction_mrr, churned_mrr, "
            "reactivation_mrr, net_revenue",
            tenant_id,
            "month",
            "and currency = %s",
            (currency,),
        )
        if currency
        else pd.DataFrame()
    )
    developer = _read(
        conn,
        tables,
        MARTS_SCHEMA,
        "developer_activity",
        "date, prs_opened, prs_merged, commits",
        tenant_id,
        "date",
    )
    traffic = _read(
        conn,
        tables,
        MARTS_SCHEMA,
        "website_analytics",
        "date, sessions, total_users, conversions",
        tenant_id,
        "date",
    )
    days_since_data = _value(health["days_since_data"].iloc[-1]) if not health.empty else None
    document = report(conn, tenant_id, tables)
    return {
        "tenant_id": tenant_id,
        "name": tenant["name"].iloc[0] if not tenant.empty else tenant_id,
        "as_of": document["as_of"] if document else None,
        "days_since_data": days_since_data,
        "stale": days_since_data is None or days_since_data >= STALE_DAYS,
        "summary": summary_row,
        "currency": currency,
        "document": document,
        "charts": {
            "health": _chart(
                health,
                "as_of",
                {"Health score (0-100)": "health_score"},
                extra=_aligned(health, churn, "as_of", "churn_probability", 100.0),
                extra_label="Churn probability (%)",
            ),
            "mrr": _chart(
                revenue,
                "month",
                {
                    "MRR": "mrr",
                    "New": "new_mrr",
                    "Expansion": "expansion_mrr",
                    "Contraction": "contraction_mrr",
                    "Churned": "churned_mrr",
                    "Reactivation": "reactivation_mrr",
                },
            ),
            "revenue": _chart(revenue, "month", {"Net revenue": "net_revenue"}),
            "developer": _chart(
                developer,
                "date",
                {"PRs opened": "prs_opened", "PRs merged": "prs_merged", "Commits": "commits"},
            ),
            "traffic": _chart(
                traffic,
                "date",
                {"Sessions": "sessions", "Users": "total_users", "Conversions": "conversions"},
            ),
        },
        "connections": connections(conn, tables, tenant_id, tenant),
    }


def connections(conn, tables, tenant_id: str, tenant: pd.DataFrame) -> list[dict]:
    """Each of the tenant's sources: its Airbyte connection's status when it has one, and its
    newest sync and newest successful sync."""
    sources = [s for s in (tenant["sources"].iloc[0] if not tenant.empty else "").split(",") if s]
    status = {}
    if ("ops", "tenant_connections") in tables:
        rows = conn.fetch_all(
            "select source, status from ops.tenant_connections where tenant_id = %s",
            (tenant_id,),
        )
        status = dict(rows)
    syncs = {}
    if ("ops", "airbyte_sync_history") in tables:
        for source, last_at, last_ok_at, last_status in conn.fetch_all(
            "select source, max(finished_at), "
            "max(case when status = %s then finished_at end), "
            "max(status) filter (where finished_at = latest) "
            "from (select *, max(finished_at) over (partition by source) as latest "
            "      from ops.airbyte_sync_history where tenant_id = %s) s "
            "group by source",
            (SUCCEEDED, tenant_id),
        ):
            syncs[source] = (last_at, last_ok_at, last_status)
    result = []
    for source in sources:
        last_at, last_ok_at, last_status = syncs.get(source, (None, None, None))
        result.append(
            {
                "source": source,
                "status": status.get(source, "connected (simulated)" if syncs else "unknown"),
                "last_sync_at": last_at,
                "last_sync_status": last_status,
                "last_success_at": last_ok_at,
            }
        )
    return result


def _chart(
    frame: pd.DataFrame,
    label_column: str,
    series: dict[str, str],
    extra: list | None = None,
    extra_label: str | None = None,
) -> dict:
    if frame.empty:
        return {"labels": [], "datasets": []}
    datasets = [
        {"label": name, "data": [_value(v) for v in frame[c]]} for name, c in series.items()
    ]
    if extra is not None:
        datasets.append({"label": extra_label, "data": extra})
    return {"labels": [_label(v) for v in frame[label_column]], "datasets": datasets}


def _aligned(left, right, key: str, column: str, scale: float) -> list:
    """`right[column]` x scale on `left`'s `key` values (None where it has none)."""
    if left.empty:
        return []
    values = {} if right.empty else dict(zip(right[key].map(_label), right[column], strict=True))
    return [
        None if (v := _value(values.get(_label(k)))) is None else round(v * scale, 1)
        for k in left[key]
    ]


def _label(value) -> str:
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return pd.Timestamp(value).date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _value(value):
    """A JSON value: NaN, NA and None as None, numbers as int or float, times as ISO text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (dt.datetime, pd.Timestamp, dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_rows(frame: pd.DataFrame) -> list[dict]:
    return [{k: _value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
