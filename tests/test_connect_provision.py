"""From a completed connect to the first sync with no other command: the connect marks the
connection `provisioning`; the provisioning sensor creates its Airbyte source and connection (the
Airbyte stand-in) and starts the first sync; the jobs sensor records it and new_syncs_sensor
lands it. The credential goes to Airbyte in the source request's body and nowhere else."""

from __future__ import annotations

import datetime as dt
import logging

import dagster as dg
import pytest

from conftest import make_settings
from flowkit import land
from tenantpulse.config import AIRBYTE_CLIENT_SECRET, load_connect_settings
from tenantpulse.connect import events
from tenantpulse.connect.oauth import connect_pasted_key, disconnect
from tenantpulse.connect.provision import (
    DESTINATION_ID,
    FAILED,
    PROVISIONED,
    PROVISIONING,
    REMOVED,
    REMOVING,
    SOURCE_DEFINITION_IDS,
    Target,
    connection_request,
    get_provisioning,
    load_target,
    provision_due,
)
from tenantpulse.connect.refresher import refresh_due
from tenantpulse.connect.vault import Vault, read_tokens
from tenantpulse.defs.airbyte import airbyte_workspace, build_jobs_sensor
from tenantpulse.defs.connect import build_connect_sensors
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.flow_runs import dagster_instance
from tenantpulse.sources.contracts import SOURCES
from tenantpulse.standins.airbyte_api import AirbyteStandIn
from tenantpulse.standins.oauth_provider import OAuthStandIn
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import open_warehouse
from terraform_module import expand, module_blocks, variable_defaults
from test_airbyte import SECRET, history, new_syncs
from test_connect_airbyte import KEY, connect_env, connect_shopify, contains, warehouse_text

DESTINATION = "d0000000-0000-4000-8000-000000000001"
STRIPE_KEY = "rk_test_51Provision0nlyInTheVault"
STRIPE_SETTINGS = {"account_id": "acct_1A2b3C"}


@pytest.fixture
def oauth():
    with OAuthStandIn() as running:
        yield running


def airbyte_mode(tmp_path, warehouse_url, airbyte, monkeypatch):
    monkeypatch.setenv(AIRBYTE_CLIENT_SECRET, SECRET)
    monkeypatch.setenv(DESTINATION_ID, DESTINATION)
    return make_settings(
        tmp_path,
        warehouse_url,
        TENANTPULSE_AIRBYTE_URL=airbyte.url,
        TENANTPULSE_AIRBYTE_WORKSPACE_ID=airbyte.workspace_id,
        TENANTPULSE_AIRBYTE_CLIENT_ID=airbyte.client_id,
        TENANTPULSE_AIRBYTE_CLIENT_SECRET=SECRET,
        TENANTPULSE_AIRBYTE_POLL_INTERVAL_SECONDS="0.05",
    )


def connect_stripe(warehouse, tenant_id: str, now: dt.datetime) -> None:
    with warehouse.connect() as conn:
        connect_pasted_key(
            conn, Vault([KEY]), tenant_id, "stripe", STRIPE_KEY, STRIPE_SETTINGS, now
        )


def test_a_completed_connect_is_provisioned_and_its_first_sync_lands_without_another_command(
    tmp_path, warehouse_url, oauth, monkeypatch, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    for name, value in connect_env(oauth).items():
        monkeypatch.setenv(name, value)
    local = make_settings(tmp_path, warehouse_url)
    warehouse = open_warehouse(local.warehouse)
    with AirbyteStandIn(warehouse, local.simulator) as airbyte:
        settings = airbyte_mode(tmp_path, warehouse_url, airbyte, monkeypatch)
        now = dt.datetime.now(dt.UTC)
        with warehouse.connect() as conn:
            for tenant in ("acme", "globex"):
                add_tenant(conn, tenant, tenant.title(), "stripe")
        connect_shopify(warehouse, oauth, "acme", now)
        connect_stripe(warehouse, "globex", now)
        with warehouse.connect() as conn:
            assert get_provisioning(conn, "acme", "shopify").status == PROVISIONING
            assert get_provisioning(conn, "globex", "stripe").status == PROVISIONING
            token = read_tokens(conn, Vault([KEY]), "acme", "shopify").access_token
        assert airbyte.requests == []  # the click itself asks Airbyte nothing

        instance = dagster_instance(settings)
        resources = {"airbyte_workspace": airbyte_workspace(settings.airbyte)}
        sensor = {s.name: s for s in build_connect_sensors(settings)}["airbyte_provision_sensor"]
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert result.skip_message == "2 provisioned, 0 removed, 0 failed (retried later)"

        # The sources: the workspace, the connector's definition, the settings and the credential.
        by_name = {body["name"]: body for body in airbyte.created_sources.values()}
        assert by_name == {
            "tenantpulse-acme-shopify": {
                "name": "tenantpulse-acme-shopify",
                "workspaceId": airbyte.workspace_id,
                "definitionId": SOURCE_DEFINITION_IDS["shopify"],
                "configuration": {
                    "shop": "acme-store",
                    "credentials": {"auth_method": "api_password", "api_password": token},
                },
            },
            "tenantpulse-globex-stripe": {
                "name": "tenantpulse-globex-stripe",
                "workspaceId": airbyte.workspace_id,
                "definitionId": SOURCE_DEFINITION_IDS["stripe"],
                "configuration": {"account_id": "acct_1A2b3C", "client_secret": STRIPE_KEY},
            },
        }
        # The connections: as the Terraform module sets them.
        acme_request, globex_request = sorted(airbyte.created_connections, key=lambda b: b["name"])
        source_ids = {body["name"]: sid for sid, body in airbyte.created_sources.items()}
        assert {k: v for k, v in acme_request.items() if k != "configurations"} == {
            "name": "tenantpulse-acme-shopify",
            "sourceId": source_ids["tenantpulse-acme-shopify"],
            "destinationId": DESTINATION,
            "namespaceDefinition": "custom_format",
            "namespaceFormat": "user_acme",
            "prefix": "shopify_",
            "nonBreakingSchemaUpdatesBehavior": "propagate_columns",
            "status": "active",
            "schedule": {"scheduleType": "cron", "cronExpression": "0 0 2 * * ?"},
        }
        assert acme_request["configurations"]["streams"][0] == {
            "name": "orders",
            "syncMode": "incremental_deduped_history",
            "cursorField": ["updated_at"],
            "primaryKey": [["id"]],
        }
        assert [s["name"] for s in acme_request["configurations"]["streams"]] == [
            "orders",
            "customers",
            "products",
        ]
        assert globex_request["namespaceFormat"] == "user_globex"
        assert globex_request["prefix"] == "stripe_"
        assert len(globex_request["configurations"]["streams"]) == 5

        # The first syncs were started, one per new connection.
        connection_of = {c.tenant_id: c.connection_id for c in airbyte.connections.values()}
        assert sorted(j.connection_id for j in airbyte.jobs.values()) == sorted(
            connection_of.values()
        )
        with warehouse.connect() as conn:
            state = get_provisioning(conn, "acme", "shopify")
            assert (state.status, state.connection_id, state.failures) == (
                PROVISIONED,
                connection_of["acme"],
                0,
            )
            assert state.source_id == source_ids["tenantpulse-acme-shopify"]
            assert [e.event for e in events.events_of(conn, "acme")] == [
                events.CONNECTED,
                events.PROVISIONED,
            ]

        # The next tick has nothing to do and asks Airbyte nothing.
        asked = len(airbyte.requests)
        again = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert again.skip_message == "nothing to provision"
        assert len(airbyte.requests) == asked

        # The jobs sensor records the finished first syncs; new_syncs_sensor lands both tenants.
        jobs = build_jobs_sensor(settings.airbyte)(
            dg.build_sensor_context(
                instance=instance,
                resources={**resources, "warehouse": WarehouseResource(url=settings.warehouse.url)},
            )
        )
        assert jobs.cursor
        assert [(t, s, status, rows) for t, s, _, status, rows, _ in history(warehouse)] == [
            ("acme", "shopify", "succeeded", True),
            ("globex", "stripe", "succeeded", True),
        ]
        assert new_syncs(settings, instance) == ["acme", "globex"]
        assert land(settings, instance, ["acme", "globex"]).success  # the run it requests
        with warehouse.connect() as conn:
            landed = conn.fetch_all(
                "select tenant_id, count(*) > 0 from landing.shopify__orders group by tenant_id"
            )
        assert landed == [("acme", True)]

    # The credentials were only in the source requests' bodies: not in a URL or header, not in
    # the warehouse outside the vault, the Dagster storage or the logs.
    secrets = [token, STRIPE_KEY, *oauth.state.issued_access_tokens, *oauth.state.refresh_tokens]
    assert [e for e in airbyte.exchanges if contains(repr(e), secrets)] == []
    leaks = [where for where in warehouse_text(warehouse) if contains(where, secrets)]
    for path in settings.dagster_home.rglob("*"):
        if path.is_file() and contains(path.read_bytes().decode(errors="replace"), secrets):
            leaks.append(f"Dagster storage {path}")
    captured = capfd.readouterr()
    for name, text in [("logs", caplog.text), ("stdout", captured.out), ("stderr", captured.err)]:
        if contains(text, secrets):
            leaks.append(name)
    assert leaks == []


def test_a_failed_provisioning_names_the_tenant_backs_off_keeps_the_source_and_recovers(
    tmp_path, warehouse_url, monkeypatch
):
    monkeypatch.setenv("TENANTPULSE_VAULT_KEYS", KEY)
    local = make_settings(tmp_path, warehouse_url)
    warehouse = open_warehouse(local.warehouse)
    now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    with AirbyteStandIn(warehouse, local.simulator) as airbyte:
        settings = airbyte_mode(tmp_path, warehouse_url, airbyte, monkeypatch)
        with warehouse.connect() as conn:
            for tenant in ("acme", "globex"):
                add_tenant(conn, tenant, tenant.title(), "stripe")
        connect_stripe(warehouse, "acme", now)
        connect_stripe(warehouse, "globex", now + dt.timedelta(seconds=1))
        # Every attempt of one POST /connections (the client tries 1 + 3 times) fails: acme's,
        # the older request. globex's comes after and succeeds.
        airbyte.refuse["POST /connections"] = 4
        client = airbyte_workspace(settings.airbyte).process_config_and_initialize().get_client()
        target = load_target(settings.airbyte)

        def provision(at: dt.datetime):
            return provision_due(
                warehouse, Vault([KEY]), load_connect_settings(), client, target, now=lambda: at
            )

        acme, globex = provision(now)
        assert (acme.tenant_id, acme.result) == ("acme", FAILED)
        assert acme.detail.startswith("creating the Airbyte connection failed: Max retries")
        assert acme.detail.endswith("attempt 1, next at 2026-12-03 12:00:30Z")
        assert (globex.tenant_id, globex.result) == ("globex", PROVISIONED)
        with warehouse.connect() as conn:
            failed = events.events_of(conn, "acme", "stripe")[-1]
            state = get_provisioning(conn, "acme", "stripe")
        assert (failed.event, failed.detail) == (events.PROVISION_FAILED, acme.detail)
        assert (state.status, state.failures, state.connection_id) == (PROVISIONING, 1, None)
        assert state.source_id in airbyte.created_sources  # kept for the retry

        assert provision(now + dt.timedelta(seconds=29)) == []  # backing off
        [retried] = provision(now + dt.timedelta(seconds=30))
        assert (retried.tenant_id, retried.result) == ("acme", PROVISIONED)
        # One source for acme: the retry updated the one made before the failure.
        assert [b["name"] for b in airbyte.created_sources.values()].count(
            "tenantpulse-acme-stripe"
        ) == 1
        assert airbyte.source_configurations[state.source_id]["client_secret"] == STRIPE_KEY
        with warehouse.connect() as conn:
            assert [e.event for e in events.events_of(conn, "acme", "stripe")][-2:] == [
                events.PROVISIONED,
                events.RECOVERED,
            ]
            assert get_provisioning(conn, "acme", "stripe").failures == 0
        assert sorted(c.tenant_id for c in airbyte.connections.values()) == ["acme", "globex"]


def test_a_connection_terraform_made_is_adopted_and_a_reconnect_updates_its_source(
    tmp_path, warehouse_url, monkeypatch
):
    monkeypatch.setenv("TENANTPULSE_VAULT_KEYS", KEY)
    local = make_settings(tmp_path, warehouse_url)
    warehouse = open_warehouse(local.warehouse)
    now = dt.datetime.now(dt.UTC)
    with AirbyteStandIn(warehouse, local.simulator) as airbyte:
        settings = airbyte_mode(tmp_path, warehouse_url, airbyte, monkeypatch)
        made = airbyte.add_connection("acme", "stripe")
        source_id = airbyte.config_connection(airbyte.connections[made])["sourceId"]
        with warehouse.connect() as conn:
            add_tenant(conn, "acme", "Acme", "stripe")
        connect_stripe(warehouse, "acme", now)
        client = airbyte_workspace(settings.airbyte).process_config_and_initialize().get_client()
        target = load_target(settings.airbyte)
        [outcome] = provision_due(warehouse, Vault([KEY]), load_connect_settings(), client, target)
        assert outcome.result == PROVISIONED
        assert airbyte.created_sources == {} and airbyte.created_connections == []
        assert airbyte.source_configurations[source_id]["client_secret"] == STRIPE_KEY
        assert [j.connection_id for j in airbyte.jobs.values()] == [made]

        with warehouse.connect() as conn:
            connect_pasted_key(
                conn, Vault([KEY]), "acme", "stripe", "rk_test_new", STRIPE_SETTINGS, now, True
            )
            assert get_provisioning(conn, "acme", "stripe").status == PROVISIONING
        [outcome] = provision_due(warehouse, Vault([KEY]), load_connect_settings(), client, target)
        assert outcome.result == PROVISIONED
        assert airbyte.source_configurations[source_id]["client_secret"] == "rk_test_new"
        assert airbyte.created_sources == {}


def test_the_provisioning_sensor_waits_for_the_destination_setting(
    tmp_path, warehouse_url, monkeypatch
):
    monkeypatch.setenv("TENANTPULSE_VAULT_KEYS", KEY)
    local = make_settings(tmp_path, warehouse_url)
    with AirbyteStandIn(open_warehouse(local.warehouse), local.simulator) as airbyte:
        settings = airbyte_mode(tmp_path, warehouse_url, airbyte, monkeypatch)
        monkeypatch.delenv(DESTINATION_ID)
        sensor = {s.name: s for s in build_connect_sensors(settings)}["airbyte_provision_sensor"]
        with dg.instance_for_test() as instance:
            result = sensor(
                dg.build_sensor_context(
                    instance=instance,
                    resources={"airbyte_workspace": airbyte_workspace(settings.airbyte)},
                )
            )
        assert f"{DESTINATION_ID} is not set" in result.skip_message
        assert airbyte.requests == []
    local_sensors = {s.name for s in build_connect_sensors(local)}
    assert local_sensors == {"token_refresh_sensor"}


def test_an_expired_shopify_token_is_not_provisioned_until_the_refresher_renews_it(
    tmp_path, warehouse_url, oauth, monkeypatch
):
    for name, value in connect_env(oauth).items():
        monkeypatch.setenv(name, value)
    local = make_settings(tmp_path, warehouse_url)
    warehouse = open_warehouse(local.warehouse)
    now = dt.datetime.now(dt.UTC)
    with AirbyteStandIn(warehouse, local.simulator) as airbyte:
        settings = airbyte_mode(tmp_path, warehouse_url, airbyte, monkeypatch)
        with warehouse.connect() as conn:
            add_tenant(conn, "acme", "Acme", "stripe")
        connect_shopify(warehouse, oauth, "acme", now - dt.timedelta(hours=2))  # 1 h token
        client = airbyte_workspace(settings.airbyte).process_config_and_initialize().get_client()
        target = load_target(settings.airbyte)
        connect = load_connect_settings()
        [failed] = provision_due(warehouse, Vault([KEY]), connect, client, target, now=lambda: now)
        assert failed.result == FAILED
        assert "its access token has expired" in failed.detail
        assert airbyte.created_sources == {}

        refresh_due(warehouse, Vault([KEY]), connect)
        later = now + dt.timedelta(seconds=30)
        [done] = provision_due(warehouse, Vault([KEY]), connect, client, target, now=lambda: later)
        assert done.result == PROVISIONED
        with warehouse.connect() as conn:
            fresh = read_tokens(conn, Vault([KEY]), "acme", "shopify").access_token
        [body] = airbyte.created_sources.values()
        assert body["configuration"]["credentials"]["api_password"] == fresh


def test_a_disconnect_deletes_the_airbyte_source_and_a_reconnect_provisions_anew(
    tmp_path, warehouse_url, monkeypatch
):
    monkeypatch.setenv("TENANTPULSE_VAULT_KEYS", KEY)
    local = make_settings(tmp_path, warehouse_url)
    warehouse = open_warehouse(local.warehouse)
    now = dt.datetime.now(dt.UTC)
    with AirbyteStandIn(warehouse, local.simulator) as airbyte:
        settings = airbyte_mode(tmp_path, warehouse_url, airbyte, monkeypatch)
        with warehouse.connect() as conn:
            for tenant in ("acme", "globex"):
                add_tenant(conn, tenant, tenant.title(), "stripe")
        connect_stripe(warehouse, "acme", now)
        connect_stripe(warehouse, "globex", now)
        client = airbyte_workspace(settings.airbyte).process_config_and_initialize().get_client()
        target = load_target(settings.airbyte)
        connect = load_connect_settings()
        provision_due(warehouse, Vault([KEY]), connect, client, target)
        with warehouse.connect() as conn:
            first = get_provisioning(conn, "acme", "stripe")
            disconnect(conn, connect, "acme", "stripe", dt.datetime.now(dt.UTC))
            assert get_provisioning(conn, "acme", "stripe").status == REMOVING

        [removed] = provision_due(warehouse, Vault([KEY]), connect, client, target)
        assert (removed.tenant_id, removed.result) == ("acme", REMOVED)
        assert airbyte.deleted_sources == [first.source_id]
        # Airbyte holds neither acme's credential nor its connection; globex is untouched.
        assert sorted(c.tenant_id for c in airbyte.connections.values()) == ["globex"]
        assert [b["name"] for b in airbyte.created_sources.values()] == [
            "tenantpulse-globex-stripe"
        ]
        with warehouse.connect() as conn:
            state = get_provisioning(conn, "acme", "stripe")
            assert (state.status, state.source_id, state.connection_id) == (REMOVED, None, None)
            assert [e.event for e in events.events_of(conn, "acme", "stripe")][-2:] == [
                events.DISCONNECTED,
                events.REMOVED_FROM_AIRBYTE,
            ]
        assert provision_due(warehouse, Vault([KEY]), connect, client, target) == []

        connect_stripe(warehouse, "acme", now)  # connected again: a new source and connection
        [again] = provision_due(warehouse, Vault([KEY]), connect, client, target)
        assert (again.tenant_id, again.result) == ("acme", PROVISIONED)
        assert sorted(c.tenant_id for c in airbyte.connections.values()) == ["acme", "globex"]
        assert len(airbyte.created_connections) == 3


def test_the_api_path_creates_what_the_terraform_module_creates():
    """Read from terraform/ (python-hcl2): definition ids, names, namespace, prefix, streams, cron."""
    target = Target("w0000000-0000-4000-8000-000000000001", DESTINATION)
    assert SOURCE_DEFINITION_IDS == module_blocks("locals")["source_definition_ids"]
    streams = module_blocks("locals")["streams"]
    for source in SOURCES:
        request = connection_request(target, "acme", source, "s-1")
        planned = expand(
            {"connections": {f"acme/{source}": {"tenant_id": "acme", "source": source}}}
        )
        made = planned[f'airbyte_connection.tenant["acme/{source}"]']
        assert (request["name"], request["namespaceFormat"], request["prefix"]) == (
            made["name"],
            made["namespace_format"],
            made["prefix"],
        )
        assert planned[f'airbyte_source.tenant["acme/{source}"]']["name"] == made["name"]
        assert request["configurations"]["streams"] == [
            {
                "name": s["name"],
                "syncMode": s["sync_mode"],
                "cursorField": s["cursor_field"],
                "primaryKey": s["primary_key"],
            }
            for s in streams[source]
        ]
        assert request["schedule"]["cronExpression"] == variable_defaults()["cron_expression"]
