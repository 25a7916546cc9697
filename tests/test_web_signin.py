"""Sign-in tokens and the web app's settings, without a warehouse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from conftest import make_settings
from tenantpulse.config import SettingsError
from tenantpulse.web.settings import load_web_settings
from tenantpulse.web.signin import SESSION, SIGNIN, SignInError, sign, signin_token, verify

KEY = b"k" * 32


def test_a_token_is_base64url_json_and_its_hmac_sha256():
    token = sign(KEY, SIGNIN, "acme", "ann@acme.example", 1_800_000_000)
    payload, signature = token.split(".")
    body = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert body == b'{"tenant_id":"acme","user":"ann@acme.example","exp":1800000000}'
    mac = hmac.new(KEY, b"signin." + payload.encode(), hashlib.sha256).digest()
    assert signature == base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    session = verify(KEY, SIGNIN, token, now=1_799_999_999)
    assert (session.tenant_id, session.user, session.exp) == (
        "acme",
        "ann@acme.example",
        1_800_000_000,
    )


def test_expired_tampered_forged_and_misused_tokens_are_refused():
    token = sign(KEY, SIGNIN, "acme", "ann", 1_800_000_000)
    with pytest.raises(SignInError, match="the sign-in link for acme has expired"):
        verify(KEY, SIGNIN, token, now=1_800_000_000)
    payload, signature = token.split(".")
    other = base64.urlsafe_b64encode(
        json.dumps({"tenant_id": "globex", "user": "ann", "exp": 1_800_000_000}).encode()
    ).rstrip(b"=")
    for bad in (
        f"{other.decode()}.{signature}",  # another tenant under acme's signature
        f"{payload}.{signature[:-2]}AA",
        sign(b"z" * 32, SIGNIN, "acme", "ann", 1_800_000_000),  # another key
    ):
        with pytest.raises(SignInError, match="signature does not match"):
            verify(KEY, SIGNIN, bad, now=0)
    with pytest.raises(SignInError, match="signature does not match"):
        verify(KEY, SESSION, token, now=0)  # a sign-in link is not a session cookie
    for incomplete in ("", "abc", "abc."):
        with pytest.raises(SignInError, match="incomplete"):
            verify(KEY, SIGNIN, incomplete, now=0)


def test_signin_token_minutes_and_user_are_bounded():
    with pytest.raises(SignInError, match="allowed 1..60"):
        signin_token(KEY, "acme", "ann", 61)
    with pytest.raises(SignInError, match="user '' of tenant acme"):
        signin_token(KEY, "acme", "", 5)
    with pytest.raises(ValueError, match="invalid tenant id 'Acme'"):
        signin_token(KEY, "Acme", "ann", 5)


def test_web_settings(tmp_path):
    base = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with pytest.raises(SettingsError, match="TENANTPULSE_WEB_SIGNING_KEY is not set"):
        load_web_settings(make_settings(tmp_path, base))
    with pytest.raises(SettingsError, match="TENANTPULSE_WEB_SIGNING_KEY is too short"):
        load_web_settings(make_settings(tmp_path, base, TENANTPULSE_WEB_SIGNING_KEY="short"))
    web = load_web_settings(make_settings(tmp_path, base, TENANTPULSE_WEB_SIGNING_KEY="s" * 32))
    assert web.database_url is None and web.session_minutes == 480 and "sss" not in repr(web)
    on_postgres = make_settings(
        tmp_path,
        "postgresql://flow@db.example:5433/warehouse?sslmode=require",
        TENANTPULSE_WEB_SIGNING_KEY="s" * 32,
    )
    assert (
        load_web_settings(on_postgres).database_url
        == "postgresql://tenantpulse_web@db.example:5433/warehouse?sslmode=require"
    )
    with pytest.raises(SettingsError, match="TENANTPULSE_WEB_DATABASE_URL must be"):
        load_web_settings(
            make_settings(
                tmp_path,
                "postgresql://flow@db.example/warehouse",
                TENANTPULSE_WEB_SIGNING_KEY="s" * 32,
                TENANTPULSE_WEB_DATABASE_URL="postgresql://tenantpulse_web:secret@db/w",
            )
        )


def test_an_unreadable_warehouse_is_a_503_without_details(tmp_path):
    import duckdb
    from starlette.testclient import TestClient

    from tenantpulse.web.app import create_app

    path = tmp_path / "held.duckdb"
    settings = make_settings(
        tmp_path, f"duckdb:///{path}", TENANTPULSE_WEB_SIGNING_KEY=KEY.decode()
    )
    writer = duckdb.connect(str(path))  # held for writing, as the flow holds it
    try:
        with TestClient(create_app(settings)) as client:
            token = signin_token(KEY, "acme", "ann", 5)
            response = client.get("/signin", params={"token": token})
    finally:
        writer.close()
    assert response.status_code == 503
    assert "The data cannot be read right now: try again in a minute." in response.text
    assert str(path) not in response.text
