"""The Connect pages of the web app, against the stand-in OAuth provider: start (CSRF), callback,
denied, expired, refused, already connected, reconnect needed, a pasted Stripe key, disconnect;
and the same clicked through in Debian's chromium, no request leaving 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.fernet import Fernet
from starlette.testclient import TestClient

from browserkit import CHROMIUM, browser_or_skip
from conftest import make_settings
from tenantpulse.connect import events
from tenantpulse.connect.vault import Vault, get_state, read_tokens, set_status
from tenantpulse.standins.oauth_provider import OAuthStandIn
from tenantpulse.tenants.connections import get_connection
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import open_warehouse
from tenantpulse.web.app import create_app
from tenantpulse.web.signin import signin_token
from test_web_dashboard import CHROMIUM_ARGS, _serving

KEY = "k" * 40
VAULT_KEY = Fernet.generate_key().decode()


@pytest.fixture
def standin():
    with OAuthStandIn() as running:
        yield running


@pytest.fixture
def app_settings(tmp_path, warehouse_url, standin):
    settings = make_settings(
        tmp_path,
        warehouse_url,
        TENANTPULSE_WEB_SIGNING_KEY=KEY,
        TENANTPULSE_VAULT_KEYS=VAULT_KEY,
        TENANTPULSE_CONNECT_PROVIDER_URL=standin.url,
        TENANTPULSE_CONNECT_SHOPIFY_CLIENT_ID=standin.client_id,
        TENANTPULSE_CONNECT_SHOPIFY_CLIENT_SECRET=standin.client_secret,
    )
    with open_warehouse(settings.warehouse).connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        if conn.dialect == "postgres":
            from tenantpulse.web.roles import setup_roles

            setup_roles(conn)
    return settings


@pytest.fixture
def client(app_settings):
    with TestClient(create_app(app_settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


def sign_in(client, user="ann@acme.example"):
    client.cookies.clear()
    token = signin_token(KEY.encode(), "acme", user, 5)
    assert client.get("/signin", params={"token": token}, follow_redirects=False).status_code == 303
    return client


def csrf(client, source="shopify") -> str:
    page = client.get(f"/connect/{source}")
    assert page.status_code == 200, page.text
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)


def outcome(response) -> str:
    return re.search(r'data-outcome="([a-z_]+)"', response.text).group(1)


def phase(response) -> tuple[str, str]:
    found = re.search(r'data-phase="([a-z_]+)"><strong>Status:</strong> ([^<\n]+)', response.text)
    return found.group(1), found.group(2).strip()


def test_a_provider_that_cannot_revoke_never_blocks_the_disconnect(client, app_settings, standin):
    sign_in(client)
    via_provider(client, start(client))
    standin.behave("shopify", revoke_failures=1)
    gone = client.post("/connect/shopify/disconnect", data={"csrf_token": csrf(client)})
    assert (gone.status_code, outcome(gone)) == (200, "disconnected")
    assert phase(gone) == (
        "disconnected",
        "disconnected; revoking its token at shopify failed 1 time(s) and is retried (HTTP 503)",
    )
    assert 'id="check-again"' in gone.text
    with open_warehouse(app_settings.warehouse).connect() as conn:
        assert get_state(conn, "acme", "shopify").status == "disconnected"
        assert [e.event for e in events.events_of(conn, "acme")][-2:] == [
            "disconnected",
            "revoke_failed",
        ]


def via_provider(client, response):
    """Follow the start's redirect to the stand-in provider and its redirect back to the app."""
    assert response.status_code == 303, response.text
    back = requests.get(response.headers["location"], allow_redirects=False, timeout=5)
    location = urlsplit(back.headers["Location"])
    return client.get(f"{location.path}?{location.query}")


def start(client, shop="acme-store", **extra):
    data = {"csrf_token": csrf(client), "shop": shop, **extra}
    return client.post("/connect/shopify/start", data=data, follow_redirects=False)


def test_connect_then_disconnect(client, app_settings, standin):
    sign_in(client)
    done = via_provider(client, start(client))
    assert (done.status_code, outcome(done)) == (200, "connected")
    warehouse = open_warehouse(app_settings.warehouse)
    with warehouse.connect() as conn:
        tokens = read_tokens(conn, Vault([VAULT_KEY]), "acme", "shopify")
        assert get_connection(conn, "acme", "shopify").settings == {"shop": "acme-store"}
    assert tokens.access_token == standin.state.issued_access_tokens[-1]
    assert tokens.access_token not in done.text
    # Local mode (no Airbyte): the phase waits for the simulator's first sync.
    assert phase(done) == ("waiting_for_sync", "connected; waiting for the first sync")

    again = start(client)
    assert (again.status_code, outcome(again)) == (409, "already_connected")
    gone = client.post("/connect/shopify/disconnect", data={"csrf_token": csrf(client)})
    assert outcome(gone) == "disconnected"
    # Revoked at the provider before the page answered (RFC 7009, the refresh token).
    assert phase(gone) == ("disconnected", "disconnected; its token is revoked at shopify")
    assert standin.state.revoked == [tokens.refresh_token]
    with warehouse.connect() as conn:
        assert get_state(conn, "acme", "shopify").status == "disconnected"
        assert get_connection(conn, "acme", "shopify").status == "disconnected"


def test_forms_need_the_sessions_csrf_token(client, app_settings):
    sign_in(client)
    for path in ("/connect/shopify/start", "/connect/shopify/disconnect"):
        for token in (None, "0" * 64):
            data = {"shop": "acme-store"} | ({"csrf_token": token} if token else {})
            refused = client.post(path, data=data, follow_redirects=False)
            assert refused.status_code == 403, path
    token = csrf(client)
    sign_in(client, user="bob@acme.example")  # another session: the old token is stale
    refused = client.post("/connect/shopify/start", data={"csrf_token": token, "shop": "x"})
    assert refused.status_code == 403
    client.cookies.clear()
    assert client.get("/connect/shopify").status_code == 401


def test_denied_expired_and_another_sessions_callback(client, app_settings, standin):
    sign_in(client)
    standin.behave("shopify", deny=True)
    denied = via_provider(client, start(client))
    assert outcome(denied) == "denied" and "access was denied" in denied.text
    standin.behave("shopify")

    redirect = start(client)
    with open_warehouse(app_settings.warehouse).connect() as conn:
        conn.execute(
            "update ops.oauth_states set expires_at = %s",
            (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),),
        )
    expired = via_provider(client, redirect)
    assert (expired.status_code, outcome(expired)) == (400, "expired")

    redirect = start(client)
    sign_in(client, user="mallory@acme.example")
    refused = via_provider(client, redirect)
    assert (refused.status_code, outcome(refused)) == (400, "refused")
    with open_warehouse(app_settings.warehouse).connect() as conn:
        assert get_state(conn, "acme", "shopify") is None


def test_reconnect_needed_then_reconnected(client, app_settings):
    sign_in(client)
    via_provider(client, start(client))
    with open_warehouse(app_settings.warehouse).connect() as conn:
        set_status(conn, "acme", "shopify", "reconnect_required", dt.datetime.now(dt.UTC))
    page = client.get("/connect/shopify")
    assert outcome(page) == "reconnect_required" and "Reconnect needed" in page.text
    done = via_provider(client, start(client, reconnect="1"))
    assert outcome(done) == "reconnected"
    with open_warehouse(app_settings.warehouse).connect() as conn:
        assert events.RECOVERED in [e.event for e in events.events_of(conn, "acme")]


def test_stripe_takes_a_pasted_key(client, app_settings):
    sign_in(client)
    data = {"csrf_token": csrf(client, "stripe"), "account_id": "acct_1", "key": "rk_test_X"}
    done = client.post("/connect/stripe/start", data=data)
    assert outcome(done) == "connected" and "rk_test_X" not in done.text
    with open_warehouse(app_settings.warehouse).connect() as conn:
        assert read_tokens(conn, Vault([VAULT_KEY]), "acme", "stripe").access_token == "rk_test_X"


def test_connect_in_a_real_browser(app_settings, standin, tmp_path):
    sync_playwright = browser_or_skip()
    outside: list[str] = []
    seen: list[str] = []
    with _serving(create_app(app_settings)) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context()

            # Every request, redirects included (a route handler does not see those).
            context.on("request", lambda request: seen.append(request.url))

            def only_local(route, request):
                if request.url.startswith("http://127.0.0.1:"):
                    route.continue_()
                else:
                    outside.append(request.url)
                    route.abort()

            context.route("**/*", only_local)
            page = context.new_page()
            token = signin_token(KEY.encode(), "acme", "ann@acme.example", 5)
            page.goto(f"{base}/signin?token={token}")

            def click_connect(expected: str):
                page.goto(f"{base}/connect/shopify")
                if page.locator("input[name=shop]").count():
                    page.fill("input[name=shop]", "acme-store")
                page.click("#connect")
                page.wait_for_selector(f"[data-outcome={expected}]")

            standin.behave("shopify", deny=True)
            click_connect("denied")
            standin.behave("shopify")
            click_connect("connected")
            page.screenshot(path=str(tmp_path / "connected.png"))
            page.click("#disconnect")
            page.wait_for_selector("[data-outcome=disconnected]")
            assert page.inner_text("#phase") == (
                "Status: disconnected; its token is revoked at shopify"
            )
            click_connect("connected")
            with open_warehouse(app_settings.warehouse).connect() as conn:
                set_status(conn, "acme", "shopify", "reconnect_required", dt.datetime.now(dt.UTC))
            click_connect("reconnected")
        finally:
            browser.close()
    assert outside == []
    assert [url for url in seen if not url.startswith("http://127.0.0.1:")] == []
    assert any(url.startswith(standin.url) for url in seen)  # the provider was visited
