"""The connect flow against the stand-in OAuth provider: PKCE, a single-use state bound to the
signed-in session, denial, expiry, reconnect, a pasted Stripe key, disconnect."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.fernet import Fernet

from tenantpulse.config import load_connect_settings
from tenantpulse.connect import events
from tenantpulse.connect.oauth import (
    AlreadyConnected,
    Denied,
    StateExpired,
    StateRefused,
    connect_pasted_key,
    disconnect,
    finish,
    start,
)
from tenantpulse.connect.vault import Vault, get_state, read_tokens, set_status
from tenantpulse.standins.oauth_provider import NON_EXPIRING, OAuthStandIn
from tenantpulse.tenants.connections import get_connection, list_connections
from tenantpulse.tenants.registry import add_tenant, get_tenant

KEY = Fernet.generate_key().decode()
T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
CALLBACK = "http://127.0.0.1:9/connect/callback"
SHOP = {"shop": "acme-store"}


@pytest.fixture
def standin():
    with OAuthStandIn() as running:
        yield running


def settings_for(standin):
    env = {"TENANTPULSE_VAULT_KEYS": KEY, "TENANTPULSE_CONNECT_PROVIDER_URL": standin.url}
    for provider in ("shopify", "github", "google_analytics"):
        env[f"TENANTPULSE_CONNECT_{provider.upper()}_CLIENT_ID"] = standin.client_id
        env[f"TENANTPULSE_CONNECT_{provider.upper()}_CLIENT_SECRET"] = standin.client_secret
    return load_connect_settings(env)


def begin(warehouse, standin, provider="shopify", user="ann", source_settings=SHOP, **kw):
    """Start the flow as `user` of acme and follow the provider's consent page (no browser):
    the query the provider redirects back with."""
    with warehouse.connect() as conn:
        url = start(
            conn,
            settings_for(standin),
            Vault([KEY]),
            "acme",
            user,
            provider,
            CALLBACK,
            source_settings,
            T0,
            **kw,
        )
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return url, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def complete(
    warehouse, standin, query, user="ann", at=T0 + dt.timedelta(minutes=1), provider="shopify"
):
    with warehouse.connect() as conn:
        return finish(conn, settings_for(standin), Vault([KEY]), "acme", user, provider, query, at)


@pytest.fixture
def acme(warehouse):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")


def test_connect_shopify_end_to_end_with_pkce(warehouse, standin, acme):
    url, query = begin(warehouse, standin)
    sent = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert sent["code_challenge_method"] == "S256" and sent["state"] == query["state"]
    with warehouse.connect() as conn:  # the challenge is the S256 of the verifier kept aside
        (sealed,) = conn.fetch_one("select verifier from ops.oauth_states")
    verifier = Vault([KEY]).open("acme", "shopify", sealed).access_token
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert sent["code_challenge"] == challenge.rstrip(b"=").decode()
    assert verifier not in url

    connected = complete(warehouse, standin, query)
    assert (connected.provider, connected.recovered) == ("shopify", False)
    with warehouse.connect() as conn:
        tokens = read_tokens(conn, Vault([KEY]), "acme", "shopify")
        state = get_state(conn, "acme", "shopify")
        connection = get_connection(conn, "acme", "shopify")
        tenant = get_tenant(conn, "acme")
        assert conn.fetch_value("select count(*) from ops.oauth_states") == 0
        kinds = [e.event for e in events.events_of(conn, "acme")]
    assert tokens.access_token == standin.state.issued_access_tokens[-1]
    assert tokens.expires_at == T0 + dt.timedelta(minutes=1, hours=1)
    # 48 minutes after the grant: refreshed by tenantpulse (the connector cannot).
    assert state.next_refresh_at == T0 + dt.timedelta(minutes=49)
    assert (connection.status, connection.settings) == ("connected", SHOP)
    assert tenant.sources == ("shopify", "stripe")
    assert kinds == [events.CONNECTED]


def test_the_state_works_once(warehouse, standin, acme):
    _, query = begin(warehouse, standin)
    complete(warehouse, standin, query)
    with pytest.raises(StateRefused, match="already used"):
        complete(warehouse, standin, query)


def test_a_forged_state_is_refused(warehouse, standin, acme):
    _, query = begin(warehouse, standin)
    with pytest.raises(StateRefused, match="already used or is not one this app started"):
        complete(warehouse, standin, query | {"state": "forged"})


def test_a_state_is_refused_at_another_providers_callback(warehouse, standin, acme):
    _, query = begin(warehouse, standin)
    with pytest.raises(StateRefused, match="was for shopify, not github"):
        complete(warehouse, standin, query, provider="github")


def test_the_state_is_bound_to_the_session_that_started_it(warehouse, standin, acme):
    _, query = begin(warehouse, standin, user="ann")
    with pytest.raises(StateRefused, match="started in another session"):
        complete(warehouse, standin, query, user="mallory")
    # ...and it is spent: the rightful user must start again, nothing was connected.
    with pytest.raises(StateRefused):
        complete(warehouse, standin, query, user="ann")
    with warehouse.connect() as conn:
        assert get_state(conn, "acme", "shopify") is None


def test_denial_stores_nothing(warehouse, standin, acme):
    standin.behave("shopify", deny=True)
    _, query = begin(warehouse, standin)
    assert query["error"] == "access_denied"
    with pytest.raises(Denied, match="access was denied"):
        complete(warehouse, standin, query)
    with warehouse.connect() as conn:
        assert get_state(conn, "acme", "shopify") is None
        assert list_connections(conn, include_disconnected=True) == []


def test_an_expired_state_is_refused(warehouse, standin, acme):
    _, query = begin(warehouse, standin)
    with pytest.raises(StateExpired, match="expired"):
        complete(warehouse, standin, query, at=T0 + dt.timedelta(minutes=10))


def test_already_connected_then_reconnect_after_a_revoked_grant(warehouse, standin, acme):
    _, query = begin(warehouse, standin)
    complete(warehouse, standin, query)
    with pytest.raises(AlreadyConnected, match="already connected for acme"):
        begin(warehouse, standin)
    with warehouse.connect() as conn:  # the refresher found the grant revoked
        set_status(conn, "acme", "shopify", "reconnect_required", T0)
    _, query = begin(warehouse, standin, reconnect=True)
    assert complete(warehouse, standin, query).recovered
    with warehouse.connect() as conn:
        assert get_state(conn, "acme", "shopify").status == "connected"
        kinds = [e.event for e in events.events_of(conn, "acme")]
    assert kinds == [events.CONNECTED, events.CONNECTED, events.RECOVERED]


def test_github_non_expiring_and_google_with_its_warning(warehouse, standin, acme):
    standin.behave("github", tokens=NON_EXPIRING)
    _, query = begin(warehouse, standin, "github", source_settings={"repositories": "acme/api"})
    assert complete(warehouse, standin, query, provider="github").warning is None
    _, query = begin(
        warehouse, standin, "google_analytics", source_settings={"property_ids": "123"}
    )
    assert "7 days" in complete(warehouse, standin, query, provider="google_analytics").warning
    with warehouse.connect() as conn:
        github = read_tokens(conn, Vault([KEY]), "acme", "github")
        assert (github.refresh_token, github.expires_at) == (None, None)
        # Neither is refreshed by tenantpulse (Google's connector refreshes its own token).
        assert get_state(conn, "acme", "github").next_refresh_at is None
        assert get_state(conn, "acme", "google_analytics").next_refresh_at is None
        assert read_tokens(conn, Vault([KEY]), "acme", "google_analytics").refresh_token


def test_stripe_pasted_key_and_disconnect(warehouse, standin, acme):
    with warehouse.connect() as conn:
        connect_pasted_key(
            conn, Vault([KEY]), "acme", "stripe", " rk_live_SECRET ", {"account_id": "acct_1"}, T0
        )
        assert read_tokens(conn, Vault([KEY]), "acme", "stripe").access_token == "rk_live_SECRET"
        assert get_connection(conn, "acme", "stripe").status == "connected"
        assert not disconnect(conn, settings_for(standin), "acme", "stripe", T0)  # by hand
        assert get_state(conn, "acme", "stripe").status == "disconnected"
        assert get_connection(conn, "acme", "stripe").status == "disconnected"
        assert conn.fetch_value("select ciphertext from ops.connection_tokens") is None
        assert [e.event for e in events.events_of(conn, "acme")] == ["connected", "disconnected"]


def test_settings_are_checked_before_the_provider_is_visited(warehouse, standin, acme):
    with pytest.raises(ValueError, match="shopify needs --setting shop"):
        begin(warehouse, standin, source_settings={})
    assert standin.state.requests == []
