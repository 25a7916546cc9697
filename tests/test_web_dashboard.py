"""Each tenant's dashboard and API over a warehouse the flow built (two demo tenants, run in-process
once per module and warehouse), on DuckDB and on Postgres: what a signed-in tenant sees equals its
marts and its `tenantpulse report`, and no token, session, URL or pooled connection gives it the
other tenant's rows. On Postgres the app reads as the web role, through row-level security.

The browser test drives Debian's chromium with Playwright against the app on 127.0.0.1 and saves
its screenshots in the test's tmp dir (and in tests/artifacts/)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import uvicorn
from starlette.testclient import TestClient

from conftest import make_settings, postgres_database
from flowkit import run_flow_in_process, step_errors
from tenantpulse.analysis.document import DOCUMENT_TABLES, analysis_document
from tenantpulse.analysis.tables import read_days
from tenantpulse.flow_runs import dagster_instance
from tenantpulse.simulator.run import assign_profile, run_simulation
from tenantpulse.tenants.registry import add_tenant, list_tenants
from tenantpulse.warehouse import open_warehouse
from tenantpulse.web.api_tokens import create_api_token
from tenantpulse.web.app import create_app
from tenantpulse.web.signin import SESSION, SESSION_COOKIE, sign, signin_token

KEY = "test-signing-key-" + "x" * 32
SOURCES = "stripe,github,shopify,google_analytics"
TENANTS = [("acme_growth", "Acme Growth", "steady_growth"), ("globex_churn", "Globex", "churning")]
A, B = TENANTS[0][0], TENANTS[1][0]
ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_SCREENSHOTS = Path(__file__).parent.parent / "docs" / "images"


def _build(tmp, url):
    settings = make_settings(tmp, url, TENANTPULSE_WEB_SIGNING_KEY=KEY)
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        for tenant_id, name, profile in TENANTS:
            add_tenant(conn, tenant_id, name, SOURCES)
            assign_profile(conn, tenant_id, profile)
        tenants = list_tenants(conn)
    run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
    results = run_flow_in_process(settings, dagster_instance(settings))
    assert all(r.success for r in results), [step_errors(r) for r in results]
    with warehouse.connect() as conn:
        if conn.dialect == "postgres":
            from tenantpulse.web.roles import setup_roles

            setup_roles(conn)
        tokens = {t: create_api_token(conn, t) for t, _, _ in TENANTS}
    return settings, tokens


@pytest.fixture(
    scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def built(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "duckdb":
        yield _build(tmp, f"duckdb:///{tmp / 'warehouse.duckdb'}")
        return
    with postgres_database() as url:
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
        sign(KEY.encode(), "signin", "nobody", "u", int(time.time()) + 300): "nobody is not an active tenant",
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
