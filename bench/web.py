"""The tenants' web app at N tenants on Postgres: p50/p95/p99 of the dashboard page and the API,
served by uvicorn on 127.0.0.1 and read as the web role through row-level security.

    python -m bench.web --tenants 1000 [--requests 300] [--warehouse-url postgresql://...]

Without --warehouse-url it creates a database on the server of --postgres-url and runs
`tenantpulse demo` into it (the six demo tenants through the whole flow). Then every table the app
reads (the marts, the analysis, ops.tenants and the sync history) gets the demo tenants' rows
copied under new ids (`<id>__r<k>`) up to N tenants in all: a labelled stand-in for N tenants that
were not simulated, in the same tables with the indexes dbt declares. `tenantpulse web
setup-roles` protects them, then one client asks, one request at a time, for random tenants:
the dashboard page (`/t/<id>/`), the report (`/api/v1/tenants/<id>/report`) and one mart
(`/api/v1/tenants/<id>/marts/revenue_daily`). Results: bench/results/web_postgres_n<N>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import uvicorn

from bench.queries import percentiles
from tenantpulse.config import load_settings
from tenantpulse.warehouse import open_warehouse, quote_ident
from tenantpulse.web.api_tokens import create_api_token
from tenantpulse.web.app import create_app
from tenantpulse.web.roles import OPS_TABLES, PROTECTED_SCHEMAS, setup_roles
from tenantpulse.web.signin import SESSION, SESSION_COOKIE, sign

RESULTS = Path(__file__).parent / "results"
KEY = "bench-signing-key-" + "k" * 32
# Keys beside tenant_id that must stay unique in the copies.
EXTRA_KEYS = {"airbyte_sync_history": ("connection_id",)}
ENDPOINTS = {
    "page": "/t/{tenant}/",
    "api_report": "/api/v1/tenants/{tenant}/report",
    "api_mart": "/api/v1/tenants/{tenant}/marts/revenue_daily",
}


def _demo_warehouse(admin_url: str, home: Path) -> str:
    name = f"tenantpulse_bench_web_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"create database {quote_ident(name)}")
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    env = {**os.environ, "TENANTPULSE_HOME": str(home), "TENANTPULSE_WAREHOUSE_URL": url}
    cli = Path(sys.executable).parent / "tenantpulse"
    subprocess.run([str(cli), "demo"], env=env, check=True)
    return url


def _replicate(conn, seeds: list[str], copies: int) -> dict[str, int]:
    """Copy every tenant's rows of every table the app reads `copies` times under new ids."""
    tables = conn.fetch_all(
        "select c.table_schema, c.table_name from information_schema.columns c "
        "join information_schema.tables t using (table_schema, table_name) "
        "where c.column_name = 'tenant_id' and t.table_type = 'BASE TABLE' "
        "and (c.table_schema = any(%s) or (c.table_schema = 'ops' and c.table_name = any(%s))) "
        "order by 1, 2",
        (list(PROTECTED_SCHEMAS), list(OPS_TABLES)),
    )
    counts = {}
    for schema, table in tables:
        columns = [c for c in conn.table_columns(schema, table) if c != "tenant_id"]
        renamed = {"tenant_id", *EXTRA_KEYS.get(table, ())}
        selected = [
            f"{quote_ident(c)} || '__r' || cast(k as varchar)" if c in renamed else quote_ident(c)
            for c in ["tenant_id", *columns]
        ]
        target = f"{quote_ident(schema)}.{quote_ident(table)}"
        conn.execute(f"delete from {target} where position('__r' in tenant_id) > 0")  # a rerun
        conn.execute(
            f"insert into {target} (tenant_id, {', '.join(map(quote_ident, columns))}) "
            f"select {', '.join(selected)} from {target} "
            f"cross join generate_series(1, {copies}) as copies(k) "
            "where tenant_id = any(%s)",
            (seeds,),
        )
        conn.execute(f"analyze {target}")
        counts[f"{schema}.{table}"] = conn.fetch_value(f"select count(*) from {target}")
    return counts


def _serve(app):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300, help="per endpoint")
    parser.add_argument("--warehouse-url", help="a database `tenantpulse demo` has filled")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    home = Path(".tenantpulse/bench_web").resolve()
    url = args.warehouse_url or _demo_warehouse(args.postgres_url, home)
    print(f"warehouse: {url} (rerun with --warehouse-url to reuse it)", flush=True)
    settings = load_settings(
        {
            "TENANTPULSE_HOME": str(home),
            "TENANTPULSE_WAREHOUSE_URL": url,
            "TENANTPULSE_WEB_SIGNING_KEY": KEY,
        }
    )
    with open_warehouse(settings.warehouse).connect() as conn:
        seeds = [
            r[0]
            for r in conn.fetch_all(
                "select tenant_id from ops.tenants where position('__r' in tenant_id) = 0 "
                "order by 1"
            )
        ]
        copies = max(0, -(-args.tenants // len(seeds)) - 1)
        started = time.perf_counter()
        rows = _replicate(conn, seeds, copies)
        replicate_seconds = time.perf_counter() - started
        setup_roles(conn)
        tenants = [r[0] for r in conn.fetch_all("select tenant_id from ops.tenants")]
        chooser = random.Random(7)
        chosen = [chooser.choice(tenants) for _ in range(args.requests)]
        tokens = {t: create_api_token(conn, t) for t in set(chosen)}
    app = create_app(settings)
    server, thread, base = _serve(app)
    load_before = round(os.getloadavg()[0], 2)
    results = {}
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for name, path in ENDPOINTS.items():
                seconds = []
                for tenant in chosen:
                    if name == "page":
                        cookie = sign(
                            KEY.encode(), SESSION, tenant, "bench", int(time.time()) + 600
                        )
                        client.cookies.set(SESSION_COOKIE, cookie)
                        headers = {}
                    else:
                        headers = {"authorization": f"Bearer {tokens[tenant]}"}
                    began = time.perf_counter()
                    response = client.get(path.format(tenant=tenant), headers=headers)
                    seconds.append(time.perf_counter() - began)
                    assert response.status_code == 200, (path, response.text[:300])
                results[name] = percentiles(seconds)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    record = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "warehouse": "postgres",
        "tenants": len(tenants),
        "replicated": True,
        "seed_tenants": seeds,
        "copies_per_seed": copies,
        "replicate_seconds": round(replicate_seconds, 1),
        "rows": rows,
        "requests_per_endpoint": args.requests,
        "client": "one httpx client, one request at a time, uvicorn in the same process",
        "machine_cpus": os.cpu_count(),
        "load_average_1m_before_after": [load_before, round(os.getloadavg()[0], 2)],
        **results,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"web_postgres_n{len(tenants)}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    for name in ENDPOINTS:
        r = results[name]
        print(
            f"{name:<11} p50 {r['p50_ms']:.1f} ms  p95 {r['p95_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms"
        )
    print(f"written {out}")


if __name__ == "__main__":
    main()
