"""Disconnect revokes the token at the provider (RFC 7009 against the stand-in; the request shapes
of Google, GitHub and Shopify), never waits on it, retries a failing provider with backoff and
gives up after MAX_ATTEMPTS; the queued ciphertext is deleted once done; the event log says so."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from cryptography.fernet import Fernet

from tenantpulse.config import load_connect_settings
from tenantpulse.connect import events, revocation
from tenantpulse.connect.oauth import connect_pasted_key, disconnect, finish, start
from tenantpulse.connect.providers import GITHUB_APP_TOKEN, RFC7009, SHOPIFY_UNINSTALL
from tenantpulse.connect.revocation import (
    MAX_ATTEMPTS,
    RevocationFailed,
    revoke_due,
    send_revocation,
)
from tenantpulse.connect.status import connection_phase
from tenantpulse.connect.vault import Tokens, Vault, get_state, read_tokens, rotate_keys
from tenantpulse.standins.oauth_provider import OAuthStandIn
from tenantpulse.tenants.registry import add_tenant

KEY = Fernet.generate_key().decode()
CALLBACK = "http://127.0.0.1:9/connect/callback"


@pytest.fixture
def standin():
    with OAuthStandIn() as running:
        yield running


def settings_for(url: str):
    env = {"TENANTPULSE_VAULT_KEYS": KEY, "TENANTPULSE_CONNECT_PROVIDER_URL": url}
    for provider in ("shopify", "github", "google_analytics"):
        env[f"TENANTPULSE_CONNECT_{provider.upper()}_CLIENT_ID"] = "tp-client"
        env[f"TENANTPULSE_CONNECT_{provider.upper()}_CLIENT_SECRET"] = "tp-secret-not-real"
    return load_connect_settings(env)


def connect_shopify(warehouse, standin, tenant="acme") -> Tokens:
    """The OAuth flow through the stand-in's consent page; the tokens the vault holds."""
    settings, now = settings_for(standin.url), dt.datetime.now(dt.UTC)
    with warehouse.connect() as conn:
        add_tenant(conn, tenant, tenant.title(), "shopify,stripe")
        url = start(conn, settings, Vault([KEY]), tenant, "ann", "shopify", CALLBACK,
                    {"shop": f"{tenant}-store"}, now)  # fmt: skip
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    query = dict(p.split("=", 1) for p in location.split("?", 1)[1].split("&"))
    with warehouse.connect() as conn:
        finish(conn, settings, Vault([KEY]), tenant, "ann", "shopify", query, now)
        return read_tokens(conn, Vault([KEY]), tenant, "shopify")


def queued(warehouse) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.fetch_all(
            "select tenant_id, provider, failures from ops.token_revocations order by tenant_id"
        )


def phase(warehouse, tenant="acme", provider="shopify"):
    with warehouse.connect() as conn:
        return connection_phase(conn, tenant, provider, dt.datetime.now(dt.UTC), airbyte=True)


def test_disconnect_revokes_the_grant_at_the_provider(warehouse, standin):
    tokens = connect_shopify(warehouse, standin)
    connect_shopify(warehouse, standin, tenant="globex")
    settings = settings_for(standin.url)
    with warehouse.connect() as conn:
        assert disconnect(conn, settings, "acme", "shopify", dt.datetime.now(dt.UTC))
        assert get_state(conn, "acme", "shopify").status == "disconnected"
        assert (
            conn.fetch_value(
                "select ciphertext from ops.connection_tokens where tenant_id = 'acme'"
            )
            is None
        )
    assert queued(warehouse) == [("acme", "shopify", 0)]
    assert phase(warehouse).text == "disconnected; revoking its token at shopify"

    [done] = revoke_due(warehouse, Vault([KEY]), settings, only=("acme", "shopify"))
    assert (done.tenant_id, done.result) == ("acme", revocation.REVOKED)
    # RFC 7009 with the refresh token: the grant is gone at the provider, the copy here too.
    assert standin.state.revoked == [tokens.refresh_token]
    assert tokens.refresh_token not in standin.state.refresh_tokens
    assert queued(warehouse) == []
    assert phase(warehouse).text == "disconnected; its token is revoked at shopify"
    with warehouse.connect() as conn:
        assert [e.event for e in events.events_of(conn, "acme")][-2:] == ["disconnected", "revoked"]
        # globex's connection is untouched: still connected, its token still live.
        assert get_state(conn, "globex", "shopify").status == "connected"
        globex = read_tokens(conn, Vault([KEY]), "globex", "shopify")
    assert globex.refresh_token in standin.state.refresh_tokens


def test_a_failing_revocation_is_retried_with_backoff_and_shown(warehouse, standin):
    connect_shopify(warehouse, standin)
    settings = settings_for(standin.url)
    standin.behave("shopify", revoke_failures=2)
    t0 = dt.datetime.now(dt.UTC)
    with warehouse.connect() as conn:
        assert disconnect(conn, settings, "acme", "shopify", t0)  # the disconnect itself is done
    [first] = revoke_due(warehouse, Vault([KEY]), settings, now=lambda: t0)
    assert first.result == revocation.FAILED and "HTTP 503; attempt 1" in first.detail
    assert queued(warehouse) == [("acme", "shopify", 1)]
    shown = phase(warehouse)
    assert (
        shown.text == "disconnected; revoking its token at shopify failed 1 time(s) and is retried"
    )
    assert (shown.reason, shown.in_progress) == ("HTTP 503", True)
    # Not due again before the backoff (30 s), then 1 min after the second failure.
    assert (
        revoke_due(warehouse, Vault([KEY]), settings, now=lambda: t0 + dt.timedelta(seconds=29))
        == []
    )
    later = t0 + dt.timedelta(seconds=31)
    assert revoke_due(warehouse, Vault([KEY]), settings, now=lambda: later)[0].result == "failed"
    last = later + dt.timedelta(seconds=61)
    [done] = revoke_due(warehouse, Vault([KEY]), settings, now=lambda: last)
    assert (
        done.result == revocation.REVOKED
        and done.detail == "revoked at shopify after 2 failed attempt(s)"
    )
    assert queued(warehouse) == []
    with warehouse.connect() as conn:
        kinds = [e.event for e in events.events_of(conn, "acme")]
    assert kinds[-4:] == ["disconnected", "revoke_failed", "revoke_failed", "revoked"]


def test_revocation_gives_up_after_max_attempts_and_deletes_the_token(warehouse, standin):
    connect_shopify(warehouse, standin)
    settings = settings_for(standin.url)
    standin.behave("shopify", revoke_failures=100)
    at = dt.datetime.now(dt.UTC)
    with warehouse.connect() as conn:
        disconnect(conn, settings, "acme", "shopify", at)
    results = []
    for _ in range(MAX_ATTEMPTS):
        tried = revoke_due(warehouse, Vault([KEY]), settings, now=lambda at=at: at)
        results += [o.result for o in tried]
        at += dt.timedelta(hours=2)  # past any backoff
    assert results == ["failed"] * (MAX_ATTEMPTS - 1) + ["abandoned"]
    assert queued(warehouse) == []
    shown = phase(warehouse)
    assert shown.text.startswith("disconnected; its token was not revoked at shopify")
    assert "gave up after 8 attempts" in shown.reason and not shown.in_progress


def test_stripe_keys_are_deleted_by_the_tenant(warehouse, standin):
    settings = settings_for(standin.url)
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        now = dt.datetime.now(dt.UTC)
        connect_pasted_key(
            conn, Vault([KEY]), "acme", "stripe", "rk_test_X", {"account_id": "acct_1"}, now
        )
        assert not disconnect(conn, settings, "acme", "stripe", now)
    assert queued(warehouse) == []
    assert "delete the key in your Stripe Dashboard" in phase(warehouse, provider="stripe").text


def test_rotate_keys_reencrypts_the_queued_tokens(warehouse, standin):
    connect_shopify(warehouse, standin)
    settings = settings_for(standin.url)
    with warehouse.connect() as conn:
        disconnect(conn, settings, "acme", "shopify", dt.datetime.now(dt.UTC))
    new = Fernet.generate_key().decode()
    with warehouse.connect() as conn:
        assert rotate_keys(conn, Vault([new, KEY])) == 1  # the disconnected row has no token
    [done] = revoke_due(warehouse, Vault([new]), settings)  # the old key is no longer needed
    assert done.result == revocation.REVOKED


class Recorder:
    """requests.post / requests.delete, recorded; answers with `status` and `body`."""

    def __init__(self, status=200, body=None):
        self.calls, self.status, self.body = [], status, body or {}

    def __call__(self, method):
        def send(url, **kwargs):
            self.calls.append((method, url, kwargs))
            response = requests.Response()
            response.status_code = self.status
            response._content = requests.compat.json.dumps(self.body).encode()
            return response

        return send


@pytest.fixture
def recorder(monkeypatch):
    recorded = Recorder()
    monkeypatch.setattr(revocation.requests, "post", recorded("POST"))
    monkeypatch.setattr(revocation.requests, "delete", recorded("DELETE"))
    return recorded


def real_settings():
    env = {"TENANTPULSE_VAULT_KEYS": KEY}
    for provider in ("shopify", "github", "google_analytics"):
        env[f"TENANTPULSE_CONNECT_{provider.upper()}_CLIENT_ID"] = f"{provider}-client"
        env[f"TENANTPULSE_CONNECT_{provider.upper()}_CLIENT_SECRET"] = f"{provider}-secret"
    return load_connect_settings(env)


def test_each_real_providers_revocation_request(recorder):
    from tenantpulse.connect.providers import PROVIDERS, endpoint

    settings = real_settings()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
    google = endpoint(settings, PROVIDERS["google_analytics"], "revoke", None)
    send_revocation(RFC7009, settings, "google_analytics", google, Tokens("ga-at", "ga-rt"))
    github = endpoint(settings, PROVIDERS["github"], "revoke", None)
    send_revocation(GITHUB_APP_TOKEN, settings, "github", github, Tokens("gh-at"))
    shopify = endpoint(settings, PROVIDERS["shopify"], "revoke", "acme-store")
    send_revocation(SHOPIFY_UNINSTALL, settings, "shopify", shopify, Tokens("sh-at", "sh-rt", soon))
    (m1, u1, k1), (m2, u2, k2), (m3, u3, k3) = recorder.calls
    assert (m1, u1) == ("POST", "https://oauth2.googleapis.com/revoke")
    assert k1["data"]["token"] == "ga-rt" and k1["data"]["token_type_hint"] == "refresh_token"
    assert (m2, u2) == ("DELETE", "https://api.github.com/applications/github-client/token")
    assert k2["auth"] == ("github-client", "github-secret") and k2["json"] == {
        "access_token": "gh-at"
    }
    assert (m3, u3) == (
        "DELETE",
        "https://acme-store.myshopify.com/admin/api_permissions/current.json",
    )
    assert k3["headers"] == {"X-Shopify-Access-Token": "sh-at"}
    # A token never travels in a URL.
    assert not any(secret in url for _, url, _ in recorder.calls for secret in ("-at", "-rt"))


def test_what_counts_as_already_revoked(recorder):
    settings = real_settings()
    recorder.status = 404  # GitHub: no such token
    send_revocation(GITHUB_APP_TOKEN, settings, "github", "https://x.test/t", Tokens("gh"))
    recorder.status, recorder.body = 400, {"error": "invalid_token"}  # Google
    send_revocation(RFC7009, settings, "google_analytics", "https://x.test/r", Tokens("a", "r"))
    recorder.status, recorder.body = 503, {}
    with pytest.raises(RevocationFailed, match="HTTP 503"):
        send_revocation(RFC7009, settings, "google_analytics", "https://x.test/r", Tokens("a"))
    expired = Tokens("sh", "rt", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    with pytest.raises(RevocationFailed, match="expired"):
        send_revocation(SHOPIFY_UNINSTALL, settings, "shopify", "https://x.test/s", expired)
