"""From a click to synced data: a tenant connects Shopify through the stand-in OAuth provider,
the refresher rotates its token, and each Airbyte sync step first pushes the fresh access token
into the tenant's Airbyte source (the Airbyte stand-in), while a tenant whose grant was revoked is
paused. Then every token is looked for where it must not be: the warehouse's other tables, the
Dagster instance's storage and the logs."""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.fernet import Fernet

from conftest import make_settings
from rawdata import raw_relation
from tenantpulse.config import AIRBYTE_CLIENT_SECRET, load_connect_settings
from tenantpulse.connect import events
from tenantpulse.connect.oauth import finish, start
from tenantpulse.connect.refresher import refresh_due
from tenantpulse.connect.vault import Vault, get_state, read_tokens, set_status
from tenantpulse.defs.connect import build_connect_sensors
from tenantpulse.flow_runs import dagster_instance
from tenantpulse.standins.airbyte_api import AirbyteStandIn
from tenantpulse.standins.oauth_provider import OAuthStandIn
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import open_warehouse
from test_airbyte import SECRET, sync

KEY = Fernet.generate_key().decode()


@pytest.fixture
def oauth():
    with OAuthStandIn() as running:
        yield running


def connect_env(oauth) -> dict[str, str]:
    return {
        "TENANTPULSE_VAULT_KEYS": KEY,
        "TENANTPULSE_CONNECT_PROVIDER_URL": oauth.url,
        "TENANTPULSE_CONNECT_SHOPIFY_CLIENT_ID": oauth.client_id,
        "TENANTPULSE_CONNECT_SHOPIFY_CLIENT_SECRET": oauth.client_secret,
    }


def connect_shopify(warehouse, oauth, tenant_id: str, now: dt.datetime) -> None:
    settings = load_connect_settings(connect_env(oauth))
    with warehouse.connect() as conn:
        url = start(
            conn,
            settings,
            Vault([KEY]),
            tenant_id,
            "owner",
            "shopify",
            "http://127.0.0.1:9/cb",
            {"shop": f"{tenant_id}-store"},
            now,
        )
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    with warehouse.connect() as conn:
        finish(conn, settings, Vault([KEY]), tenant_id, "owner", "shopify", query, now)


def test_connect_refresh_push_sync_and_no_token_anywhere_else(
    tmp_path, warehouse_url, oauth, monkeypatch, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    for name, value in connect_env(oauth).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(AIRBYTE_CLIENT_SECRET, SECRET)
    local = make_settings(tmp_path, warehouse_url)
    warehouse = open_warehouse(local.warehouse)
    with AirbyteStandIn(warehouse, local.simulator) as airbyte:
        settings = make_settings(
            tmp_path,
            warehouse_url,
            TENANTPULSE_AIRBYTE_URL=airbyte.url,
            TENANTPULSE_AIRBYTE_WORKSPACE_ID=airbyte.workspace_id,
            TENANTPULSE_AIRBYTE_CLIENT_ID=airbyte.client_id,
            TENANTPULSE_AIRBYTE_CLIENT_SECRET=SECRET,
            TENANTPULSE_AIRBYTE_POLL_INTERVAL_SECONDS="0.05",
        )
        now = dt.datetime.now(dt.UTC)
        with warehouse.connect() as conn:
            for tenant in ("acme", "globex"):
                add_tenant(conn, tenant, tenant.title(), "stripe")
        for tenant in ("acme", "globex"):
            connect_shopify(warehouse, oauth, tenant, now - dt.timedelta(hours=1))
        acme = airbyte.add_connection("acme", "shopify")
        airbyte.add_connection("globex", "shopify")
        source_of_acme = airbyte.config_connection(airbyte.connections[acme])["sourceId"]

        # The refresher (through its sensor) rotates both tokens; then globex's store revokes
        # the app and the next refresh finds out.
        instance = dagster_instance(settings)
        sensor = {s.name: s for s in build_connect_sensors(settings)}["token_refresh_sensor"]
        import dagster as dg

        sensor(dg.build_sensor_context(instance=instance))
        assert oauth.state.refreshes == 2
        with warehouse.connect() as conn:
            fresh = read_tokens(conn, Vault([KEY]), "acme", "shopify")
            set_status(conn, "globex", "shopify", "reconnect_required", now)

        result = sync(settings, instance)
        assert result.success
        # acme's Airbyte source got the fresh access token before its sync; globex was paused.
        pushed = airbyte.source_configurations[source_of_acme]
        assert pushed["credentials"]["api_password"] == fresh.access_token
        assert pushed["shop"] == "acme-store"
        assert len(airbyte.source_configurations) == 1
        assert [j.connection_id for j in airbyte.jobs.values()] == [acme]
        with warehouse.connect() as conn:
            assert get_state(conn, "globex", "shopify").status == "reconnect_required"
            assert events.PUSHED_TO_AIRBYTE in [e.event for e in events.events_of(conn, "acme")]
            orders = raw_relation(conn, "acme", "shopify_orders")
            assert conn.fetch_value(f"select count(*) from {orders}") > 0

        # A second round: rotated again, pushed again.
        with warehouse.connect() as conn:
            conn.execute("update ops.connection_tokens set next_refresh_at = %s", (now,))
        refresh_due(warehouse, Vault([KEY]), load_connect_settings(connect_env(oauth)))
        assert sync(settings, instance, ["acme"]).success
        with warehouse.connect() as conn:
            newest = read_tokens(conn, Vault([KEY]), "acme", "shopify")
        assert newest.access_token != fresh.access_token
        assert airbyte.source_configurations[source_of_acme]["credentials"]["api_password"] == (
            newest.access_token
        )

    secrets = [*oauth.state.issued_access_tokens, *oauth.state.refresh_tokens]
    secrets += list(oauth.state.used_refresh_tokens)
    assert len(secrets) >= 8
    leaks = [
        f"warehouse {where}" for where in warehouse_text(warehouse) if contains(where, secrets)
    ]
    for path in settings.dagster_home.rglob("*"):
        if path.is_file() and contains(path.read_bytes().decode(errors="replace"), secrets):
            leaks.append(f"Dagster storage {path}")
    captured = capfd.readouterr()
    for name, text in [
        ("log records", caplog.text),
        ("stdout", captured.out),
        ("stderr", captured.err),
    ]:
        if contains(text, secrets):
            leaks.append(name)
    assert leaks == []


def contains(text: str, secrets: list[str]) -> bool:
    return any(secret in text for secret in secrets)


def warehouse_text(warehouse) -> list[str]:
    """Every row of every table but the vault's, and of every raw file, as text (one string per
    table or file)."""
    with warehouse.connect() as conn:
        tables = conn.fetch_all(
            "select table_schema, table_name from information_schema.tables"
            " where table_type = 'BASE TABLE'"
            " and table_schema not in ('information_schema', 'pg_catalog')"
        )
        files = sorted(conn.raw_path.rglob("*.parquet")) if conn.dialect == "duckdb" else []
        return [
            f"{schema}.{table}: " + repr(conn.fetch_all(f'select * from "{schema}"."{table}"'))
            for schema, table in tables
            if (schema, table) != ("ops", "connection_tokens")
        ] + [f"{f}: " + repr(conn.fetch_all(f"select * from read_parquet('{f}')")) for f in files]
