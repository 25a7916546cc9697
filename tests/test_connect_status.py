"""The phase the Connect page shows, from the vault, the OAuth states, the provisioning row and the
sync history: each phase reached the way the platform reaches it, on both warehouses."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from cryptography.fernet import Fernet

from tenantpulse.config import load_connect_settings
from tenantpulse.connect.oauth import finish, start
from tenantpulse.connect.provision import PROVISIONED
from tenantpulse.connect.status import connection_phase
from tenantpulse.connect.vault import Vault, set_status
from tenantpulse.sources.sync_history import SyncRecord, record_sync
from tenantpulse.standins.oauth_provider import OAuthStandIn
from tenantpulse.tenants.registry import add_tenant

KEY = Fernet.generate_key().decode()
T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def standin():
    with OAuthStandIn() as running:
        yield running


def phase(warehouse, at=T0, airbyte=True):
    with warehouse.connect() as conn:
        shown = connection_phase(conn, "acme", "shopify", at, airbyte=airbyte)
    return shown.kind, shown.text


def sync(warehouse, finished: dt.datetime, status="succeeded", error=None, job="1"):
    with warehouse.connect() as conn:
        record_sync(
            conn,
            SyncRecord("acme", "c-1", "shopify", job, finished, finished, 10, status, error),
        )


def test_each_phase_of_a_connection(warehouse, standin):
    env = {
        "TENANTPULSE_VAULT_KEYS": KEY,
        "TENANTPULSE_CONNECT_PROVIDER_URL": standin.url,
        "TENANTPULSE_CONNECT_SHOPIFY_CLIENT_ID": standin.client_id,
        "TENANTPULSE_CONNECT_SHOPIFY_CLIENT_SECRET": standin.client_secret,
    }
    settings = load_connect_settings(env)
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "shopify")
    assert phase(warehouse) == ("not_connected", "not connected")

    with warehouse.connect() as conn:
        url = start(conn, settings, Vault([KEY]), "acme", "ann", "shopify", "http://127.0.0.1:9/cb",
                    {"shop": "acme-store"}, T0)  # fmt: skip
    assert phase(warehouse)[0] == "connecting"
    assert phase(warehouse, at=T0 + dt.timedelta(minutes=11))[0] == "not_connected"  # expired

    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    query = dict(p.split("=", 1) for p in location.split("?", 1)[1].split("&"))
    with warehouse.connect() as conn:
        finish(conn, settings, Vault([KEY]), "acme", "ann", "shopify", query, T0)
    assert phase(warehouse) == ("provisioning", "provisioning")
    # Local mode: nobody provisions; the simulator's syncs are what counts.
    assert phase(warehouse, airbyte=False) == (
        "waiting_for_sync",
        "connected; waiting for the first sync",
    )

    with warehouse.connect() as conn:
        conn.execute(
            "update ops.airbyte_provisioning set failures = 1, last_error = %s",
            ("creating the Airbyte connection failed: HTTP 500; attempt 1, next at 12:00:30Z",),
        )
    assert phase(warehouse) == (
        "failed",
        "failed: creating the Airbyte connection failed: HTTP 500 (retried automatically)",
    )

    provisioned_at = T0 + dt.timedelta(minutes=1)
    with warehouse.connect() as conn:
        conn.execute(
            "update ops.airbyte_provisioning set status = %s, failures = 0, last_error = null,"
            " provisioned_at = %s",
            (PROVISIONED, provisioned_at),
        )
    sync(warehouse, T0 - dt.timedelta(days=3), job="0")  # before this connection: not its sync
    assert phase(warehouse) == ("first_sync_running", "first sync running")

    sync(warehouse, provisioned_at + dt.timedelta(minutes=4, seconds=30))
    assert phase(warehouse) == ("synced", "synced 2026-12-01 12:05 UTC")
    sync(warehouse, T0 + dt.timedelta(days=1), "failed", "Shopify API returned 402", job="2")
    assert phase(warehouse) == ("failed", "failed: Shopify API returned 402")

    with warehouse.connect() as conn:
        set_status(conn, "acme", "shopify", "reconnect_required", T0)
    assert phase(warehouse) == ("reconnect_needed", "reconnect needed")
