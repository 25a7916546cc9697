"""The refresher against the stand-in OAuth provider: rotation, races, backoff, revocation."""

from __future__ import annotations

import datetime as dt
import threading

import dagster as dg
import pytest
from cryptography.fernet import Fernet

from tenantpulse.config import load_connect_settings
from tenantpulse.connect import events
from tenantpulse.connect.providers import PROVIDERS, next_refresh_at, tokens_from_response
from tenantpulse.connect.refresher import FAILED, REFRESHED, backoff, refresh_due, refresh_next
from tenantpulse.connect.vault import Vault, get_state, read_tokens, store_tokens
from tenantpulse.standins.oauth_provider import NON_EXPIRING, REVOKED, OAuthStandIn
from tenantpulse.tenants.connections import connect_source
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import open_warehouse

KEY = Fernet.generate_key().decode()
T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, at: dt.datetime = T0):
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


@pytest.fixture
def standin():
    with OAuthStandIn() as running:
        yield running


def connect_settings(standin, timeout: float = 10.0):
    return load_connect_settings(
        {
            "TENANTPULSE_VAULT_KEYS": KEY,
            "TENANTPULSE_CONNECT_PROVIDER_URL": standin.url,
            "TENANTPULSE_CONNECT_SHOPIFY_CLIENT_ID": standin.client_id,
            "TENANTPULSE_CONNECT_SHOPIFY_CLIENT_SECRET": standin.client_secret,
            "TENANTPULSE_CONNECT_TIMEOUT_SECONDS": str(timeout),
        }
    )


def connect_shopify(warehouse, standin, tenant_id: str, at: dt.datetime = T0) -> None:
    """A tenant with a connected Shopify store whose 1 h token was granted at `at`."""
    tokens = tokens_from_response(standin.grant("shopify"), at)
    with warehouse.connect() as conn:
        add_tenant(conn, tenant_id, tenant_id, "shopify")
        connect_source(conn, tenant_id, "shopify", {"shop": f"{tenant_id}-store"})
        due = next_refresh_at(PROVIDERS["shopify"], tokens, at)
        store_tokens(conn, Vault([KEY]), tenant_id, "shopify", tokens, due, at)


def test_the_next_refresh_is_at_80_percent_of_a_1h_token():
    tokens = tokens_from_response({"access_token": "a", "expires_in": 3600}, T0)
    assert next_refresh_at(PROVIDERS["shopify"], tokens, T0) == T0 + dt.timedelta(minutes=48)
    # GitHub (expiry opted out) and Google (the connector refreshes) are never refreshed here.
    assert next_refresh_at(PROVIDERS["github"], tokens, T0) is None
    assert next_refresh_at(PROVIDERS["google_analytics"], tokens, T0) is None


def test_backoff_doubles_up_to_an_hour():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 8, 20)] == [30, 60, 120, 3600, 3600]


def test_rotation_keeps_the_token_alive(warehouse, standin):
    settings, clock = connect_settings(standin), Clock()
    connect_shopify(warehouse, standin, "acme")
    assert refresh_next(warehouse, Vault([KEY]), settings, clock) is None  # not due yet
    for round_ in range(3):  # three rotations, each 48 minutes after the last
        clock.at += dt.timedelta(minutes=48)
        outcome = refresh_next(warehouse, Vault([KEY]), settings, clock)
        assert (outcome.tenant_id, outcome.result) == ("acme", REFRESHED)
        with warehouse.connect() as conn:
            tokens = read_tokens(conn, Vault([KEY]), "acme", "shopify")
            state = get_state(conn, "acme", "shopify")
        assert tokens.refresh_token in standin.state.refresh_tokens  # the live one
        assert tokens.access_token == standin.state.issued_access_tokens[-1]
        assert state.next_refresh_at == clock.at + dt.timedelta(minutes=48)
        assert state.version == 2 + round_
    assert (standin.state.refreshes, standin.state.reused) == (3, 0)
    with warehouse.connect() as conn:
        kinds = [e.event for e in events.events_of(conn, "acme")]
    assert kinds == [events.REFRESHED] * 3


def test_a_non_rotating_provider_keeps_its_refresh_token(warehouse, standin):
    settings, clock = connect_settings(standin), Clock()
    standin.behave("shopify", tokens=NON_EXPIRING)
    standin.behaviour["shopify"].tokens = "rotating_off"  # refreshes keep the same token
    granted = standin.grant("shopify")
    tokens = tokens_from_response(granted, T0)
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "acme", "shopify")
        store_tokens(conn, Vault([KEY]), "acme", "shopify", tokens, T0, T0)
    assert refresh_next(warehouse, Vault([KEY]), settings, clock).result == REFRESHED
    with warehouse.connect() as conn:
        assert (
            read_tokens(conn, Vault([KEY]), "acme", "shopify").refresh_token
            == (granted["refresh_token"])
        )


@pytest.mark.parametrize("status", [503, 429])
def test_transient_failures_back_off_then_recover(warehouse, standin, status):
    settings, clock = connect_settings(standin), Clock()
    connect_shopify(warehouse, standin, "acme")
    connect_shopify(warehouse, standin, "globex")
    standin.behave("shopify", failures=2, failure_status=status)
    clock.at += dt.timedelta(minutes=48)
    first = refresh_due(warehouse, Vault([KEY]), settings, now=clock)
    # Each tenant failed once; neither is tried again before its backoff.
    assert sorted((o.tenant_id, o.result) for o in first) == [("acme", FAILED), ("globex", FAILED)]
    with warehouse.connect() as conn:
        state = get_state(conn, "acme", "shopify")
    assert (state.failures, state.last_error, state.status) == (1, f"HTTP {status}", "connected")
    assert state.next_attempt_at == clock.at + dt.timedelta(seconds=30)
    clock.at += dt.timedelta(seconds=30)
    assert [o.result for o in refresh_due(warehouse, Vault([KEY]), settings, now=clock)] == [
        REFRESHED,
        REFRESHED,
    ]
    with warehouse.connect() as conn:
        state = get_state(conn, "acme", "shopify")
        kinds = [e.event for e in events.events_of(conn, "acme")]
    assert (state.failures, state.last_error, state.next_attempt_at) == (0, None, None)
    assert kinds == [events.REFRESH_FAILED, events.REFRESHED, events.RECOVERED]


def test_a_slow_token_endpoint_times_out_and_is_retried(warehouse, standin):
    settings, clock = connect_settings(standin, timeout=0.2), Clock()
    connect_shopify(warehouse, standin, "acme")
    standin.behave("shopify", delay_seconds=1.0)
    clock.at += dt.timedelta(minutes=48)
    outcome = refresh_next(warehouse, Vault([KEY]), settings, clock)
    assert (outcome.result, outcome.detail.split(";")[0]) == (FAILED, "timed out")


def test_invalid_grant_marks_reconnect_required_and_stops_refreshing(warehouse, standin):
    settings, clock = connect_settings(standin), Clock()
    connect_shopify(warehouse, standin, "acme")
    connect_shopify(warehouse, standin, "globex")
    standin.behave("shopify", tokens=REVOKED)
    clock.at += dt.timedelta(minutes=48)
    outcomes = refresh_due(warehouse, Vault([KEY]), settings, now=clock)
    assert sorted((o.tenant_id, o.result) for o in outcomes) == [
        ("acme", "reconnect_required"),
        ("globex", "reconnect_required"),
    ]
    clock.at += dt.timedelta(hours=5)
    assert refresh_due(warehouse, Vault([KEY]), settings, now=clock) == []
    with warehouse.connect() as conn:
        assert get_state(conn, "acme", "shopify").status == "reconnect_required"
        assert [e.event for e in events.events_of(conn, "acme")] == [events.RECONNECT_REQUIRED]


@pytest.mark.postgres
def test_two_refreshers_racing_never_lose_a_rotated_token(tmp_path, postgres_url, standin):
    """Four threads refresh 30 rotating connections over 3 rounds on Postgres: each refresh token
    is presented exactly once (the stand-in refuses a reused one), and every stored refresh token
    is the provider's live one."""
    from conftest import make_settings

    warehouse = open_warehouse(make_settings(tmp_path, postgres_url).warehouse)
    settings, clock = connect_settings(standin), Clock()
    tenants = [f"t{i:02d}" for i in range(30)]
    for tenant in tenants:
        connect_shopify(warehouse, standin, tenant)
    for _ in range(3):
        clock.at += dt.timedelta(minutes=48)
        results: list = []

        def refresher(into: list = results) -> None:
            into.extend(refresh_due(warehouse, Vault([KEY]), settings, now=clock))

        threads = [threading.Thread(target=refresher) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(o.tenant_id for o in results) == tenants
        assert {o.result for o in results} == {REFRESHED}
    assert (standin.state.refreshes, standin.state.reused) == (90, 0)
    with warehouse.connect() as conn:
        stored = {read_tokens(conn, Vault([KEY]), t, "shopify").refresh_token for t in tenants}
    assert stored == set(standin.state.refresh_tokens)


def test_the_sensor_refreshes_and_alerts_once_for_a_revoked_grant(
    tmp_path, warehouse_url, standin, monkeypatch
):
    from conftest import make_settings
    from tenantpulse.defs.connect import build_connect_sensors

    settings = make_settings(tmp_path, warehouse_url)
    warehouse = open_warehouse(settings.warehouse)
    monkeypatch.setenv("TENANTPULSE_VAULT_KEYS", KEY)
    monkeypatch.setenv("TENANTPULSE_CONNECT_PROVIDER_URL", standin.url)
    monkeypatch.setenv("TENANTPULSE_CONNECT_SHOPIFY_CLIENT_ID", standin.client_id)
    monkeypatch.setenv("TENANTPULSE_CONNECT_SHOPIFY_CLIENT_SECRET", standin.client_secret)
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    connect_shopify(warehouse, standin, "acme", an_hour_ago)
    connect_shopify(warehouse, standin, "globex", an_hour_ago)
    with warehouse.connect() as conn:  # globex's store revoked the app
        globex = read_tokens(conn, Vault([KEY]), "globex", "shopify").refresh_token
    del standin.state.refresh_tokens[globex]
    [sensor] = build_connect_sensors(settings)
    with dg.instance_for_test() as instance:
        for _ in range(2):  # the second tick finds nothing due and sends no second alert
            sensor(dg.build_sensor_context(instance=instance))
    with warehouse.connect() as conn:
        assert get_state(conn, "acme", "shopify").status == "connected"
        assert get_state(conn, "globex", "shopify").status == "reconnect_required"
        alerts = conn.fetch_all(
            "select tenant_id, playbook, subject, handler, status from ops.action_log"
        )
    assert alerts == [("globex", "reconnect_required", "shopify", "log", "done")]
    assert standin.state.refreshes == 1
