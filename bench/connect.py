"""Click-to-first-sync: from a tenant's Connect click to its first sync recorded and its land run
requested, for N tenants connecting Shopify at once, against the OAuth and Airbyte stand-ins.

    python -m bench.connect [--tenants 20] [--warehouse-url postgresql://...]

Per tenant, in process and in this order (each step timed):

1. connect: the OAuth flow (oauth.start, the stand-in's consent redirect, oauth.finish: token
   exchange, vault, registry, the `provisioning` mark);
2. provision: one airbyte_provision_sensor tick over every pending connection (POST /sources,
   POST /connections, POST /jobs per tenant);
3. sync: the stand-in runs each first sync (the local simulator writes the raw tables: not a real
   connector's time);
4. record: one airbyte_jobs_sensor tick (ops.airbyte_sync_history, raw observations);
5. land request: one new_syncs_sensor tick, whose run request names the tenants;

and then the tokens' upkeep: 49 minutes later every tenant's 1 h Shopify token is due, and one
refresher renews them all (`refresh_seconds`, `refreshes_per_second`; keeping 10,000 such tokens
alive takes about 3.5 refreshes a second).

A deployment adds the waits between sensor ticks (the daemon evaluates airbyte_provision_sensor
every 30 s, airbyte_jobs_sensor every 60 s, new_syncs_sensor every 15 s: up to 105 s) and the real
connector's sync time. Results: bench/results/connect_<dialect>_n<N>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import requests
from cryptography.fernet import Fernet

from tenantpulse.config import AIRBYTE_CLIENT_SECRET, load_connect_settings, load_settings
from tenantpulse.connect.oauth import finish, start
from tenantpulse.connect.provision import DESTINATION_ID
from tenantpulse.connect.refresher import REFRESHED, refresh_due
from tenantpulse.connect.vault import Vault
from tenantpulse.definitions import build_definitions
from tenantpulse.defs.airbyte import airbyte_workspace, build_jobs_sensor
from tenantpulse.defs.connect import build_provision_sensor
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.flow_runs import dagster_instance
from tenantpulse.standins.airbyte_api import AirbyteStandIn, JobPlan
from tenantpulse.standins.oauth_provider import OAuthStandIn
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import open_warehouse

RESULTS = Path(__file__).parent / "results"
REFRESH_AFTER = dt.timedelta(minutes=49)  # past 80% of a 1 h token: every one is due
WAITED_FOR = ("airbyte_provision_sensor", "airbyte_jobs_sensor", "new_syncs_sensor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--warehouse-url", help="default: a new DuckDB file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = run(Path(folder), args.tenants, args.warehouse_url)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"connect_{result['dialect']}_n{args.tenants}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written: {out}")


def run(folder: Path, tenants: int, warehouse_url: str | None) -> dict:
    key = Fernet.generate_key().decode()
    base = {
        "TENANTPULSE_HOME": str(folder / "home"),
        "TENANTPULSE_WAREHOUSE_URL": warehouse_url or f"duckdb:///{folder / 'warehouse.duckdb'}",
        "TENANTPULSE_SIM_END_DATE": dt.date.today().isoformat(),
        "TENANTPULSE_SIM_HISTORY_DAYS": "60",
    }
    local = load_settings(base)
    warehouse = open_warehouse(local.warehouse)
    ids = [f"bench{i:04d}" for i in range(tenants)]
    with OAuthStandIn() as oauth, AirbyteStandIn(warehouse, local.simulator) as airbyte:
        os.environ.update(
            {
                "TENANTPULSE_VAULT_KEYS": key,
                "TENANTPULSE_CONNECT_PROVIDER_URL": oauth.url,
                "TENANTPULSE_CONNECT_SHOPIFY_CLIENT_ID": oauth.client_id,
                "TENANTPULSE_CONNECT_SHOPIFY_CLIENT_SECRET": oauth.client_secret,
                AIRBYTE_CLIENT_SECRET: airbyte.client_secret,
                DESTINATION_ID: "d0000000-0000-4000-8000-000000000001",
            }
        )
        settings = load_settings(
            base
            | {
                "TENANTPULSE_AIRBYTE_URL": airbyte.url,
                "TENANTPULSE_AIRBYTE_WORKSPACE_ID": airbyte.workspace_id,
                "TENANTPULSE_AIRBYTE_CLIENT_ID": airbyte.client_id,
                "TENANTPULSE_AIRBYTE_CLIENT_SECRET": airbyte.client_secret,
            }
        )
        connect = load_connect_settings()
        airbyte.default_plan = JobPlan(polls=1)  # each sync runs when step 3 polls it
        with warehouse.connect() as conn:
            for tenant in ids:
                add_tenant(conn, tenant, tenant, "shopify")
        timings: dict[str, float] = {}

        started = time.perf_counter()
        for tenant in ids:
            now = dt.datetime.now(dt.UTC)
            with warehouse.connect() as conn:
                url = start(
                    conn,
                    connect,
                    Vault([key]),
                    tenant,
                    "owner",
                    "shopify",
                    "http://127.0.0.1:9/cb",
                    {"shop": f"{tenant}-store"},
                    now,
                )
            location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
            query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
            with warehouse.connect() as conn:
                finish(conn, connect, Vault([key]), tenant, "owner", "shopify", query, now)
        timings["connect"] = time.perf_counter() - started

        instance = dagster_instance(settings)
        resources = {
            "airbyte_workspace": airbyte_workspace(settings.airbyte),
            "warehouse": WarehouseResource(url=settings.warehouse.url),
        }
        step = time.perf_counter()
        provisioned = build_provision_sensor(settings)(
            dg.build_sensor_context(instance=instance, resources=resources)
        )
        timings["provision"] = time.perf_counter() - step

        step = time.perf_counter()
        for job in list(airbyte.jobs.values()):
            job.polls += 1
            airbyte.job_response(job)  # the stand-in's sync: the simulator writes the raw rows
        timings["sync"] = time.perf_counter() - step

        step = time.perf_counter()
        build_jobs_sensor(settings.airbyte)(
            dg.build_sensor_context(instance=instance, resources=resources)
        )
        timings["record"] = time.perf_counter() - step

        step = time.perf_counter()
        defs = build_definitions(settings)
        landing = defs.resolve_sensor_def("new_syncs_sensor")(
            dg.build_sensor_context(instance=instance, definitions=defs)
        )
        timings["land_request"] = time.perf_counter() - step
        total = time.perf_counter() - started
        requested = sorted(
            t
            for r in landing.run_requests
            for t in r.run_config["ops"]["land"]["config"]["tenants"]
        )

        # Then the tokens' upkeep: 49 minutes on, every 1 h Shopify token is due, and one
        # refresher (the token_refresh_sensor's call, without its time budget) renews them all.
        later = dt.datetime.now(dt.UTC) + REFRESH_AFTER
        step = time.perf_counter()
        refreshed = refresh_due(warehouse, Vault([key]), connect, now=lambda: later)
        refresh_seconds = time.perf_counter() - step
    assert requested == ids, f"land run requested for {requested}, expected {ids}"
    results = sorted({o.result for o in refreshed})
    assert len(refreshed) == tenants and results == [REFRESHED], (len(refreshed), results)
    return {
        "dialect": settings.warehouse.dialect,
        "tenants": tenants,
        "provision_sensor": provisioned.skip_message,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "seconds_per_tenant": {k: round(v / tenants, 3) for k, v in timings.items()},
        "total_seconds": round(total, 3),
        "total_seconds_per_tenant": round(total / tenants, 3),
        # Each sensor's interval as the code location defines it, the longest wait for its tick.
        "deployment_adds_up_to_seconds": {
            name: defs.resolve_sensor_def(name).minimum_interval_seconds for name in WAITED_FOR
        },
        "refresh_seconds": round(refresh_seconds, 3),
        "refreshes_per_second": round(tenants / refresh_seconds, 1),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg()[0],
    }


if __name__ == "__main__":
    main()
