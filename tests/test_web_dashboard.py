"""Each tenant's dashboard and API over a warehouse the flow built (a copy of the suite's shared
whole-flow build, tests/conftest.py demo_flow, once per module and warehouse), on DuckDB and on
Postgres: what a signed-in tenant sees equals its
marts and its `tenantpulse report`, and no token, session, URL or pooled connection gives it the
other tenant's rows. On Postgres the app reads as the web role, through row-level security.

The browser test drives Debian's chromium with Playwright against the app on 127.0.0.1 and saves
its screenshots in the test's tmp dir (and in tests/artifacts/)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import uvicorn
from starlette.testclient import TestClient

from browserkit import CHROMIUM, browser_or_skip
from conftest import DEMO_FLOW_TENANTS, WAREHOUSES, copied_once_built, make_settings
from tenantpulse.analysis.document import DOCUMENT_TABLES, analysis_document
from tenantpulse.analysis.tables import read_days
from tenantpulse.warehouse import open_warehouse
from tenantpulse.web.api_tokens import create_api_token
from tenantpulse.web.app import create_app
from tenantpulse.web.signin import SESSION, SESSION_COOKIE, sign, signin_token

KEY = "test-signing-key-" + "x" * 32
# The two tenants with every source (a third, with some sources, is in the warehouse too).
TENANTS = [(t, name, profile) for t, name, _, profile in DEMO_FLOW_TENANTS[:2]]
A, B = TENANTS[0][0], TENANTS[1][0]
SOURCES = DEMO_FLOW_TENANTS[0][2]
assert DEMO_FLOW_TENANTS[1][2] == SOURCES
ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_SCREENSHOTS = Path(__file__).parent.parent / "docs" / "images"


def _build(tmp, url):
    """The app's settings and each tenant's API token, on the warehouse at `url` (a built one)."""
    settings = make_settings(tmp, url, TENANTPULSE_WEB_SIGNING_KEY=KEY)
    with open_warehouse(settings.warehouse).connect() as conn:
        if conn.dialect == "postgres":
            from tenantpulse.web.roles import setup_roles

            setup_roles(conn)
        tokens = {t: create_api_token(conn, t) for t, _, _ in TENANTS}
    return settings, tokens


@pytest.fixture(scope="module", params=WAREHOUSES)
def built(request, demo_flow, tmp_path_factory):
    """A copy of the shared whole-flow build: setup-roles, the tokens and a test's dbt rebuild
    change it."""
    tmp = tmp_path_factory.mktemp(request.param)
    with copied_once_built(demo_flow(request.param), tmp) as url:
        yield _build(tmp, url)


@pytest.fixture(scope="module")
def client(built):
    settings, _ = built
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


def _signed_in(client, tenant_id):
    client.cookies.clear()
    token = signin_token(KEY.encode(), tenant_id, f"owner@{tenant_id}.example", 5)
    response = client.get("/signin", params={"token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith(f"/t/{tenant_id}/")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    return client


def _expected_report(settings, tenant_id):
    """What `tenantpulse report` prints, read as the operator."""
    with open_warehouse(settings.warehouse).connect() as conn:
        health = read_days(conn, "health_scores", tenant_id, None)
        day = pd.Timestamp(health["as_of"].iloc[0]).date()
        tables = {name: read_days(conn, name, tenant_id, day) for name in DOCUMENT_TABLES}
    return json.loads(json.dumps(analysis_document(tenant_id, day, tables)))


def _mart(settings, sql, params=()):
    with open_warehouse(settings.warehouse).connect() as conn:
        return conn.read_frame(sql, params)


# The API


@pytest.mark.parametrize("tenant_id", [A, B])
def test_api_report_is_the_tenants_report_document(built, client, tenant_id):
    settings, tokens = built
    response = client.get(
        f"/api/v1/tenants/{tenant_id}/report",
        headers={"authorization": f"Bearer {tokens[tenant_id]}"},
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert document == _expected_report(settings, tenant_id)
    assert document["user_id"] == tenant_id and document["recommendations"] is not None


@pytest.mark.parametrize("tenant_id", [A, B])
def test_api_mart_rows_are_the_tenants_rows_only(built, client, tenant_id):
    settings, tokens = built
    response = client.get(
        f"/api/v1/tenants/{tenant_id}/marts/developer_activity",
        headers={"authorization": f"Bearer {tokens[tenant_id]}"},
    )
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    expected = _mart(
        settings,
        "select date, prs_merged from analytics.developer_activity where tenant_id = %s "
        "order by date",
        (tenant_id,),
    )
    assert len(rows) == len(expected) > 0
    assert {r["tenant_id"] for r in rows} == {tenant_id}
    assert [r["prs_merged"] for r in rows] == expected["prs_merged"].tolist()


def test_api_refuses_tampering(built, client):
    _, tokens = built
    client.cookies.clear()
    # A's token on B's URL, B's on A's: refused, naming whose token it is.
    for token_of, url_of in ((A, B), (B, A)):
        for path in ("report", "marts/revenue_daily"):
            response = client.get(
                f"/api/v1/tenants/{url_of}/{path}",
                headers={"authorization": f"Bearer {tokens[token_of]}"},
            )
            assert response.status_code == 403, response.text
            assert response.json() == {
                "error": f"The API token is {token_of}'s: it reads only {token_of}."
            }
    # No token, an unknown one, a session cookie instead of a token: refused.
    assert client.get(f"/api/v1/tenants/{A}/report").status_code == 401
    forged = "tp_" + "A" * 43
    headers = {"authorization": f"Bearer {forged}"}
    assert client.get(f"/api/v1/tenants/{A}/report", headers=headers).status_code == 401
    _signed_in(client, A)
    assert client.get(f"/api/v1/tenants/{A}/report").status_code == 401
    # An unknown mart is a clear 404, never SQL.
    response = client.get(
        f"/api/v1/tenants/{A}/marts/pg_authid", headers={"authorization": f"Bearer {tokens[A]}"}
    )
    assert response.status_code == 404 and "pg_authid" in response.json()["error"]


# The pages


def test_pages_refuse_tampering(built, client):
    settings, _ = built
    client.cookies.clear()
    assert client.get(f"/t/{A}/").status_code == 401
    _signed_in(client, A)
    assert client.get(f"/t/{A}/").status_code == 200
    # The URL's tenant swapped: refused, nothing of B shown.
    for path in (f"/t/{B}/", f"/t/{B}/export/revenue_daily.csv"):
        response = client.get(path)
        assert response.status_code == 403
        assert f"Signed in for {A}" in response.text and "Globex" not in response.text
    # A forged cookie (B's payload under A's signature, or signed with another key): signed out.
    a_cookie = client.cookies[SESSION_COOKIE]
    b_payload = sign(KEY.encode(), SESSION, B, "x", int(time.time()) + 600).split(".")[0]
    for forged in (
        f"{b_payload}.{a_cookie.split('.')[1]}",
        sign(b"another-key-" + b"y" * 32, SESSION, B, "x", int(time.time()) + 600),
        sign(KEY.encode(), SESSION, B, "x", int(time.time()) - 1),  # expired
        signin_token(KEY.encode(), B, "x", 5),  # a sign-in token is not a session
    ):
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, forged)
        assert client.get(f"/t/{B}/").status_code == 401


def test_signin_refuses_bad_tokens(built, client):
    client.cookies.clear()
    expired = sign(KEY.encode(), "signin", A, "u", int(time.time()) - 1)
    tampered = signin_token(KEY.encode(), A, "u", 5)
    payload_b = sign(KEY.encode(), "signin", B, "u", int(time.time()) + 300).split(".")[0]
    cases = {
        expired: f"the sign-in link for {A} has expired",
        f"{payload_b}.{tampered.split('.')[1]}": "signature does not match",
        sign(
            KEY.encode(), "signin", "nobody", "u", int(time.time()) + 300
        ): "nobody is not an active tenant",
        "garbage": "incomplete",
    }
    for token, message in cases.items():
        response = client.get("/signin", params={"token": token}, follow_redirects=False)
        assert response.status_code in (401, 403), token
        assert message in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_csv_export_is_the_tenants_mart(built, client):
    settings, _ = built
    _signed_in(client, B)
    response = client.get(f"/t/{B}/export/website_analytics.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    exported = pd.read_csv(pd.io.common.StringIO(response.text))
    expected = _mart(
        settings,
        "select * from analytics.website_analytics where tenant_id = %s order by date",
        (B,),
    )
    assert len(exported) == len(expected) > 0
    assert set(exported["tenant_id"]) == {B}
    assert exported["sessions"].tolist() == expected["sessions"].tolist()


# The browser

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"]


@contextlib.contextmanager
def _serving(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _expected_charts(settings, tenant_id) -> dict[str, tuple[list, list]]:
    """Each chart's labels and first series, read from the marts and analysis as the operator."""
    currency = _mart(
        settings,
        "select currency from analytics.user_dashboard_summary where tenant_id = %s",
        (tenant_id,),
    )["currency"].iloc[0]
    queries = {
        "health": ("select as_of as x, health_score as y from analysis.health_scores", ""),
        "mrr": ("select month as x, mrr as y from analytics.revenue_analytics", currency),
        "revenue": (
            "select month as x, net_revenue as y from analytics.revenue_analytics",
            currency,
        ),
        "developer": ("select date as x, prs_opened as y from analytics.developer_activity", ""),
        "traffic": ("select date as x, sessions as y from analytics.website_analytics", ""),
    }
    expected = {}
    for key, (sql, in_currency) in queries.items():
        where = " where tenant_id = %s" + (" and currency = %s" if in_currency else "")
        params = (tenant_id, in_currency) if in_currency else (tenant_id,)
        frame = _mart(settings, sql + where + " order by 1", params)
        labels = [pd.Timestamp(x).date().isoformat() for x in frame["x"]]
        expected[key] = (labels, [None if pd.isna(y) else round(float(y), 2) for y in frame["y"]])
    return expected


def test_dashboards_in_a_real_browser(built, tmp_path):
    settings, _ = built
    sync_playwright = browser_or_skip()
    outside: list[str] = []
    shots = []
    recommendations_seen = 0
    with _serving(create_app(settings)) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for tenant_id, name, _ in TENANTS:
                context = browser.new_context(viewport={"width": 1280, "height": 900})

                def only_local(route, request):
                    if request.url.startswith(base + "/"):
                        route.continue_()
                    else:
                        outside.append(request.url)
                        route.abort()

                context.route("**/*", only_local)
                page = context.new_page()
                token = signin_token(KEY.encode(), tenant_id, f"owner@{tenant_id}.example", 5)
                page.goto(f"{base}/signin?token={token}")
                assert page.url == f"{base}/t/{tenant_id}/"
                page.wait_for_selector("body[data-charts-ready=yes]", timeout=30_000)
                assert page.locator("h1").inner_text() == name

                for key, (labels, first) in _expected_charts(settings, tenant_id).items():
                    drawn = page.evaluate(
                        "key => { const c = Chart.getChart('chart-' + key); return c && "
                        "{labels: c.data.labels, first: c.data.datasets[0].data, "
                        "width: c.width, height: c.height}; }",
                        key,
                    )
                    assert drawn, f"{tenant_id}: chart {key} not drawn"
                    assert drawn["width"] > 0 and drawn["height"] > 0
                    assert drawn["labels"] == labels, (tenant_id, key)
                    assert [None if v is None else round(v, 2) for v in drawn["first"]] == first
                    assert len(labels) > 0, (tenant_id, key)

                document = _expected_report(settings, tenant_id)
                strengths = page.locator("#strengths li").all_inner_texts()
                assert strengths == document["insights"]["strengths"]
                improvements = page.locator("#improvements li").all_inner_texts()
                assert improvements == document["insights"]["improvements"]
                assert page.locator("#recommendations .action").all_inner_texts() == [
                    r["action"] for r in document["recommendations"]
                ]
                for i, recommendation in enumerate(document["recommendations"]):
                    item = page.locator("#recommendations .recommendation").nth(i)
                    assert (
                        item.locator(".evidence li").all_inner_texts()
                        == (recommendation["evidence"])
                    )
                    assert item.locator(".priority").inner_text() == recommendation["priority"]
                recommendations_seen += len(document["recommendations"])
                days_since_data = _mart(
                    settings,
                    "select days_since_data from analysis.health_scores where tenant_id = %s "
                    "and as_of = %s",
                    (tenant_id, document["as_of"]),
                )["days_since_data"].iloc[0]
                stale = pd.isna(days_since_data) or days_since_data >= 3
                assert page.locator("#stale-badge").count() == int(stale)
                assert page.locator("#fresh-badge").count() == int(not stale)
                assert page.locator("#kpi-health").inner_text() == str(document["health_score"])
                assert page.locator("#as-of").inner_text() == document["as_of"]
                sources = page.locator("#connections tbody tr").evaluate_all(
                    "rows => rows.map(r => r.dataset.source)"
                )
                assert sources == sorted(SOURCES.split(","))
                reconnect = page.locator("#connections a.reconnect").evaluate_all(
                    "links => links.map(a => a.href)"
                )
                assert reconnect == [f"{base}/connect/{source}" for source in sources]

                shot = tmp_path / f"web-dashboard-{tenant_id}.png"
                page.screenshot(path=str(shot), full_page=True)
                shots.append(shot)
                context.close()
        finally:
            browser.close()
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    assert recommendations_seen > 0  # the recommendations' checks above checked some
    ARTIFACTS.mkdir(exist_ok=True)
    for shot in shots:
        shutil.copy(shot, ARTIFACTS / f"{settings.warehouse.dialect}-{shot.name}")
    if os.environ.get("TENANTPULSE_UPDATE_SCREENSHOTS") == "1":  # the README's pictures
        DOCS_SCREENSHOTS.mkdir(exist_ok=True)
        for shot in shots:
            shutil.copy(shot, DOCS_SCREENSHOTS / shot.name)


# Row-level security on Postgres


@pytest.fixture
def on_postgres(built):
    settings, _ = built
    if settings.warehouse.dialect != "postgres":
        pytest.skip("row-level security is Postgres's (DuckDB: docs/web.md)")
    return settings


def _web_database(settings, pool_size=1):
    from tenantpulse.web.db import TenantDatabase
    from tenantpulse.web.settings import load_web_settings

    db = TenantDatabase(settings, load_web_settings(settings), pool_size=pool_size)
    db.open()
    return db


def _protected_tables(settings) -> list[str]:
    """The tables the web role may read: every table with tenant_id in analytics and analysis,
    and the ops tables the app reads (ops.tenant_connections exists only after a connect)."""
    granted = _mart(
        settings,
        "select n.nspname || '.' || c.relname as name from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind = 'r' and n.nspname in ('analytics', 'analysis', 'ops') "
        "and has_table_privilege('tenantpulse_web', c.oid, 'SELECT') order by 1",
    )["name"].tolist()
    with_tenant = _mart(
        settings,
        "select table_schema || '.' || table_name as name from information_schema.columns "
        "where column_name = 'tenant_id' and table_schema in ('analytics', 'analysis') "
        "order by 1",
    )["name"].tolist()
    assert granted == sorted([*with_tenant, "ops.airbyte_sync_history", "ops.tenants"])
    return granted


def _tenants_seen(db, tenant_id, tables) -> dict[str, set]:
    """Per table, the tenant ids a transaction scoped to `tenant_id` reads with no filter."""
    seen = {}
    with db.tenant(tenant_id) as conn:
        for table in tables:
            schema, name = table.split(".")
            rows = conn.fetch_all(f'select distinct tenant_id from "{schema}"."{name}"')
            seen[table] = {r[0] for r in rows}
    return seen


def _assert_isolated(settings):
    tables = _protected_tables(settings)
    assert {"analytics.revenue_daily", "analysis.health_scores", "ops.tenants"} <= set(tables)
    db = _web_database(settings, pool_size=1)  # one connection: every transaction reuses it
    try:
        for tenant_id in (A, B, A):
            seen = _tenants_seen(db, tenant_id, tables)
            assert all(ids <= {tenant_id} for ids in seen.values()), seen
            assert seen["analytics.revenue_daily"] == {tenant_id}
            # A query asking for the other tenant's rows by name gets none.
            other = B if tenant_id == A else A
            with db.tenant(tenant_id) as conn:
                assert (
                    conn.fetch_value(
                        "select count(*) from analytics.revenue_daily where tenant_id = %s",
                        (other,),
                    )
                    == 0
                )
            # The setting ended with the transaction: the pooled connection's next one, with no
            # tenant, reads nothing.
            with db.unscoped() as conn:
                assert conn.fetch_value(
                    "select current_setting('tenantpulse.tenant_id', true)"
                ) in (
                    None,
                    "",
                )
                assert conn.fetch_value("select count(*) from analytics.revenue_daily") == 0
                assert conn.fetch_value("select count(*) from ops.tenants") == 0
    finally:
        db.close()


def test_the_web_role_reads_one_tenant_per_transaction_on_pooled_connections(on_postgres):
    _assert_isolated(on_postgres)


def test_the_web_role_cannot_write_or_escape(on_postgres):
    import psycopg

    db = _web_database(on_postgres)
    try:
        for statement in (
            "select count(*) from ops.action_log",  # an ops table the app does not read
            "delete from analytics.revenue_daily",
            "set role postgres",
            "alter table analytics.revenue_daily disable row level security",
        ):
            with pytest.raises(psycopg.Error), db.tenant(A) as conn:
                conn.execute(statement)
    finally:
        db.close()


def test_the_app_refuses_a_login_that_bypasses_row_level_security(on_postgres):
    from tenantpulse.warehouse import WarehouseError
    from tenantpulse.web.db import TenantDatabase
    from tenantpulse.web.settings import load_web_settings

    web = load_web_settings(on_postgres)
    as_owner = type(web)(web.signing_key, web.session_minutes, on_postgres.warehouse.postgres_dsn)
    db = TenantDatabase(on_postgres, as_owner)
    with pytest.raises(WarehouseError, match="is a superuser: row-level security would not hold"):
        db.open()
    db.close()


def test_isolation_survives_a_dbt_rebuild_of_the_marts(on_postgres):
    from tenantpulse.transform.dbt_cli import run_dbt

    done = run_dbt(on_postgres, ["run", "-s", "marts", "--full-refresh"], capture=True)
    assert done.returncode == 0, done.stdout[-3000:]
    policies = _mart(
        on_postgres,
        "select tablename from pg_policies where schemaname = 'analytics' "
        "and policyname = 'tenant_isolation' order by 1",
    )["tablename"].tolist()
    marts = _mart(
        on_postgres,
        "select table_name from information_schema.tables where table_schema = 'analytics' "
        "order by 1",
    )["table_name"].tolist()
    assert policies == marts and len(marts) >= 9
    # Each rebuilt mart has an index leading with tenant_id again (its own, or setup-roles').
    unindexed = _mart(
        on_postgres,
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'analytics' and c.relkind = 'r' and not exists ("
        "  select 1 from pg_index i join pg_attribute a "
        "  on a.attrelid = i.indrelid and a.attnum = i.indkey[0] "
        "  where i.indrelid = c.oid and a.attname = 'tenant_id')",
    )["relname"].tolist()
    assert unindexed == []
    _assert_isolated(on_postgres)


def test_reconnect_is_disabled_and_explained_without_the_connect_flow(built, monkeypatch):
    from tenantpulse.web import app as web_app

    monkeypatch.setattr(web_app, "ROUTE_MODULES", ("tenantpulse.web.pages", "tenantpulse.web.api"))
    settings, _ = built
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        page = _signed_in(client, A).get(f"/t/{A}/").text
    assert page.count('<button class="reconnect" disabled') == 4
    assert "comes with the Connect flow, not installed in this app yet" in page
    assert "/connect/" not in page
