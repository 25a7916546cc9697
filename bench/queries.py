"""The dashboard query, run many times, and the naive design's version of it.

The dashboard reads one tenant's `analytics.user_dashboard_summary` row and its last 90 days of
`analytics.tenant_daily_metrics`. The naive design (the original write-up) has no landing layer:
a view UNION ALLs every tenant's `user_<id>` schema and the dashboard filters it by tenant.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time

from tenantpulse.config import Settings
from tenantpulse.sources.contracts import raw_schema
from tenantpulse.warehouse import Connection, open_warehouse, qualified, quote_ident

HISTORY_DAYS_SHOWN = 90
SUMMARY_SQL = "select * from {schema}.user_dashboard_summary where tenant_id = %s"
HISTORY_SQL = (
    "select * from {schema}.tenant_daily_metrics where tenant_id = %s and date > %s order by date"
)
# The same 90 days of revenue, read the naive way: through a view over every tenant's raw charges.
NAIVE_SCHEMA = "naive"
NAIVE_SQL = (
    f"select floor(created / 86400) as day, count(*) as charges, sum(amount) as amount "
    f"from {NAIVE_SCHEMA}.{{table}} where tenant_id = %s and created > %s "
    "and status = 'succeeded' group by 1 order by 1"
)
# The indexes dbt declares on the two marts (marts_postgres_indexes), for the replicated copies.
POSTGRES_INDEXES = (
    "create index bench_tenant_daily_metrics_tenant_date "
    "on analytics.tenant_daily_metrics (tenant_id, date)",
    "create index bench_user_dashboard_summary_tenant on analytics.user_dashboard_summary (tenant_id)",
)


def percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 3)

    return {
        "queries": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def dashboard_query(settings: Settings, tenant_ids: list[str], as_of: dt.date, runs: int) -> dict:
    """p50/p95/p99 of the dashboard's two reads for random tenants, on one open connection (as a
    dashboard's connection pool would hold), over the marts as dbt built them (on Postgres with
    their indexes); on Postgres the query plan is kept."""
    since = as_of - dt.timedelta(days=HISTORY_DAYS_SHOWN)
    chooser = random.Random(7)
    chosen = [chooser.choice(tenant_ids) for _ in range(runs)]
    with open_warehouse(settings.warehouse).connect() as conn:
        result = {"as_of": as_of.isoformat(), **_timed_dashboard(conn, chosen, since)}
        if settings.warehouse.dialect == "postgres":
            result["plan"] = _explain(conn, chosen[0], since)
    return result


def _timed_dashboard(
    conn: Connection, tenant_ids: list[str], since: dt.date, schema: str = "analytics"
) -> dict:
    summary_sql = SUMMARY_SQL.format(schema=schema)
    history_sql = HISTORY_SQL.format(schema=schema)
    conn.fetch_all(summary_sql, (tenant_ids[0],))  # warm the cache and the connection
    seconds, history_rows = [], 0
    for tenant_id in tenant_ids:
        started = time.perf_counter()
        conn.fetch_all(summary_sql, (tenant_id,))
        history_rows += len(conn.fetch_all(history_sql, (tenant_id, since)))
        seconds.append(time.perf_counter() - started)
    return {**percentiles(seconds), "history_rows_per_query": history_rows // len(tenant_ids)}


def _explain(conn: Connection, tenant_id: str, since: dt.date, schema: str = "analytics") -> str:
    rows = conn.fetch_all(
        "explain analyze " + HISTORY_SQL.format(schema=schema), (tenant_id, since)
    )
    return "\n".join(r[0] for r in rows)


def naive_union_view(
    settings: Settings, tenant_ids: list[str], as_of: dt.date, runs: int, budget_seconds: float
) -> dict:
    """Create the view over every tenant's `user_<id>.stripe_charges`, then query one tenant's
    90 days through it `runs` times (fewer if the budget runs out); an error is the result."""
    since_epoch = int(
        dt.datetime.combine(
            as_of - dt.timedelta(days=HISTORY_DAYS_SHOWN), dt.time(), dt.UTC
        ).timestamp()
    )
    schemas = [raw_schema(t) for t in tenant_ids]
    with open_warehouse(settings.warehouse).connect() as conn:
        return measure_union_view(
            conn, schemas, "stripe_charges", tenant_ids, since_epoch, runs, budget_seconds
        )


def measure_union_view(
    conn: Connection,
    schemas: list[str],
    table: str,
    tenant_ids: list[str],
    since_epoch: int,
    runs: int,
    budget_seconds: float,
) -> dict:
    result: dict = {"schemas": len(schemas)}
    branches = " union all ".join(
        f"select {_literal(tenant)} as tenant_id, created, amount, status "
        f"from {qualified(schema, table)}"
        for tenant, schema in zip(tenant_ids, schemas, strict=True)
    )
    conn.ensure_schema(NAIVE_SCHEMA)
    started = time.perf_counter()
    try:
        conn.execute(f"drop view if exists {NAIVE_SCHEMA}.{table}")
        conn.execute(f"create view {NAIVE_SCHEMA}.{quote_ident(table)} as {branches}")
    except Exception as error:  # noqa: BLE001 - the failure is the measurement
        return {
            **result,
            "create_seconds": round(time.perf_counter() - started, 3),
            "error": _short(error),
        }
    result["create_seconds"] = round(time.perf_counter() - started, 3)
    chooser = random.Random(7)
    seconds = []
    deadline = time.perf_counter() + budget_seconds
    try:
        while len(seconds) < runs and time.perf_counter() < deadline:
            started = time.perf_counter()
            conn.fetch_all(NAIVE_SQL.format(table=table), (chooser.choice(tenant_ids), since_epoch))
            seconds.append(time.perf_counter() - started)
    except Exception as error:  # noqa: BLE001
        result["error"] = _short(error)
    if seconds:
        result |= percentiles(seconds)
    if "error" not in result:  # after an error the transaction is aborted and rolls back
        conn.execute(f"drop view if exists {NAIVE_SCHEMA}.{table}")
    return result


PROBE_TABLES_PER_TRANSACTION = 500


def union_view_probe(settings: Settings, schema_counts: list[int], budget_seconds: float) -> list:
    """Where the naive view breaks, on synthetic schemas: `count` schemas of one small charges
    table each (10 rows), a view over all of them, and the same one-tenant query. Run in a
    warehouse of its own; every count adds to the schemas made for the previous one."""
    results = []
    made = 0
    warehouse = open_warehouse(settings.warehouse)
    for count in sorted(schema_counts):
        started = time.perf_counter()
        # In batches: one transaction creating thousands of tables runs out of Postgres locks.
        for batch in range(made, count, PROBE_TABLES_PER_TRANSACTION):
            with warehouse.connect() as conn:
                for i in range(batch, min(count, batch + PROBE_TABLES_PER_TRANSACTION)):
                    schema = f"probe_{i:05d}"
                    conn.ensure_schema(schema)
                    conn.execute(
                        f"create table {schema}.charges as select cast(1700000000 + g * 86400 "
                        "as bigint) as created, cast(100 as bigint) as amount, "
                        "cast('succeeded' as varchar) as status from generate_series(1, 10) as s(g)"
                    )
        made = count
        setup = time.perf_counter() - started
        names = [f"probe_{i:05d}" for i in range(count)]
        with warehouse.connect() as conn:
            measured = measure_union_view(
                conn, names, "charges", [f"p{i}" for i in range(count)], 0, 5, budget_seconds
            )
        results.append({**measured, "setup_seconds": round(setup, 3)})
        print(f"  union probe {count} schemas: {measured}", flush=True)
        if "error" in measured:
            break
    return results


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _short(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"


REPLICA_SCHEMA = "bench_replica"
DASHBOARD_TABLES = ("user_dashboard_summary", "tenant_daily_metrics")


def replicated_dashboard(
    settings: Settings, tenant_ids: list[str], copies: int, as_of: dt.date, runs: int
) -> dict:
    """The dashboard query over marts of `copies` x the measured tenants: each tenant's rows of
    the two tables the dashboard reads, copied under new ids (`<id>_c<k>`), in their own schema.
    A stand-in for the marts at a scale that was not simulated, labelled as such."""
    with open_warehouse(settings.warehouse).connect() as conn:
        conn.execute(f"drop schema if exists {REPLICA_SCHEMA} cascade")
        conn.ensure_schema(REPLICA_SCHEMA)
        started = time.perf_counter()
        for table in DASHBOARD_TABLES:
            columns = [c for c in conn.table_columns("analytics", table) if c != "tenant_id"]
            listed = ", ".join(quote_ident(c) for c in columns)
            conn.execute(
                f"create table {REPLICA_SCHEMA}.{table} as select * from analytics.{table} "
                "where 1 = 0"
            )
            conn.execute(
                f"insert into {REPLICA_SCHEMA}.{table} (tenant_id, {listed}) "
                f"select tenant_id || '_c' || cast(k as varchar), {listed} "
                f"from analytics.{table} cross join generate_series(1, {copies}) as copies(k)"
            )
        rows = conn.fetch_value(f"select count(*) from {REPLICA_SCHEMA}.tenant_daily_metrics")
        build_seconds = time.perf_counter() - started
    replica_ids = [f"{t}_c{k}" for t in tenant_ids for k in range(1, copies + 1)]
    since = as_of - dt.timedelta(days=HISTORY_DAYS_SHOWN)
    chooser = random.Random(7)
    chosen = [chooser.choice(replica_ids) for _ in range(runs)]
    with open_warehouse(settings.warehouse).connect() as conn:
        result = {
            "replicated": True,
            "tenants": len(replica_ids),
            "tenant_daily_metrics_rows": int(rows),
            "build_seconds": round(build_seconds, 1),
            **_timed_dashboard(conn, chosen, since, REPLICA_SCHEMA),
        }
        if settings.warehouse.dialect == "postgres":
            result["plan"] = _explain(conn, chosen[0], since, REPLICA_SCHEMA)
            for statement in POSTGRES_INDEXES:
                conn.execute(statement.replace("analytics.", f"{REPLICA_SCHEMA}."))
            conn.execute(f"analyze {REPLICA_SCHEMA}.tenant_daily_metrics")
            result["with_index"] = _timed_dashboard(conn, chosen, since, REPLICA_SCHEMA)
            result["with_index"]["plan"] = _explain(conn, chosen[0], since, REPLICA_SCHEMA)
        conn.execute(f"drop schema {REPLICA_SCHEMA} cascade")
    return result
