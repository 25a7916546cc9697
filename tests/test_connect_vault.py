"""The token vault: encryption at rest bound to the connection, key rotation, the event log."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.fernet import Fernet

from tenantpulse.config import SettingsError, load_connect_settings
from tenantpulse.connect.events import REFRESHED, events_of, record_event
from tenantpulse.connect.vault import (
    Tokens,
    Vault,
    VaultError,
    destroy_tokens,
    get_state,
    read_tokens,
    rotate_keys,
    store_tokens,
)

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
KEY_OLD, KEY_NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
SECRET = "shpat_access_SECRET_1"
REFRESH = "shprt_refresh_SECRET_1"


def tokens(access=SECRET, refresh=REFRESH) -> Tokens:
    return Tokens(access, refresh, NOW + dt.timedelta(hours=1), "read_orders")


def test_tokens_round_trip_and_are_encrypted(warehouse):
    vault = Vault([KEY_OLD])
    with warehouse.connect() as conn:
        store_tokens(conn, vault, "acme", "shopify", tokens(), NOW, NOW)
    with warehouse.connect() as conn:
        assert read_tokens(conn, vault, "acme", "shopify") == tokens()
        (stored,) = conn.fetch_all("select ciphertext from ops.connection_tokens")[0]
        state = get_state(conn, "acme", "shopify")
    assert SECRET not in stored and REFRESH not in stored
    assert (state.status, state.version, state.failures) == ("connected", 1, 0)
    assert SECRET not in repr(tokens()) and REFRESH not in repr(tokens())
    assert KEY_OLD not in repr(vault)


def test_a_swapped_row_fails_to_decrypt(warehouse):
    vault = Vault([KEY_OLD])
    with warehouse.connect() as conn:
        store_tokens(conn, vault, "acme", "shopify", tokens(), NOW, NOW)
        store_tokens(conn, vault, "globex", "shopify", tokens("other", "other_r"), NOW, NOW)
        store_tokens(conn, vault, "acme", "github", tokens("gh", None), None, NOW)
        # Copy acme/shopify's ciphertext into globex/shopify's row, and into acme/github's.
        conn.execute(
            "update ops.connection_tokens set ciphertext = (select ciphertext from"
            " ops.connection_tokens where tenant_id = 'acme' and provider = 'shopify')"
            " where not (tenant_id = 'acme' and provider = 'shopify')"
        )
    with warehouse.connect() as conn:
        for tenant, provider in (("globex", "shopify"), ("acme", "github")):
            with pytest.raises(VaultError, match=f"{provider} connection of tenant '{tenant}'"):
                read_tokens(conn, vault, tenant, provider)
        assert read_tokens(conn, vault, "acme", "shopify").access_token == SECRET


def test_rotate_keys_re_encrypts_every_row_under_the_newest_key(warehouse):
    with warehouse.connect() as conn:
        store_tokens(conn, Vault([KEY_OLD]), "acme", "shopify", tokens(), NOW, NOW)
        store_tokens(conn, Vault([KEY_OLD]), "globex", "github", tokens("gh", None), None, NOW)
    with warehouse.connect() as conn, pytest.raises(VaultError, match="none of the keys"):
        read_tokens(conn, Vault([KEY_NEW]), "acme", "shopify")
    with warehouse.connect() as conn:
        assert rotate_keys(conn, Vault([KEY_NEW, KEY_OLD])) == 2
    with warehouse.connect() as conn:  # the old key can go now
        assert read_tokens(conn, Vault([KEY_NEW]), "acme", "shopify") == tokens()
        assert read_tokens(conn, Vault([KEY_NEW]), "globex", "github").access_token == "gh"


def test_rotate_keys_changes_nothing_when_a_row_is_unreadable(warehouse):
    with warehouse.connect() as conn:
        store_tokens(conn, Vault([KEY_OLD]), "acme", "shopify", tokens(), NOW, NOW)
        store_tokens(conn, Vault([KEY_NEW]), "globex", "github", tokens("gh", None), None, NOW)
    before_after = []
    for _ in range(2):
        with warehouse.connect() as conn:
            before_after.append(conn.fetch_all("select ciphertext from ops.connection_tokens"))
            if len(before_after) == 1:
                with pytest.raises(VaultError, match="tenant 'acme'.*nothing was changed"):
                    rotate_keys(conn, Vault([KEY_NEW]))
                conn.rollback()
    assert before_after[0] == before_after[1]


def test_disconnect_destroys_the_token(warehouse):
    vault = Vault([KEY_OLD])
    with warehouse.connect() as conn:
        store_tokens(conn, vault, "acme", "shopify", tokens(), NOW, NOW)
        destroy_tokens(conn, "acme", "shopify", NOW)
        assert conn.fetch_value("select ciphertext from ops.connection_tokens") is None
        assert get_state(conn, "acme", "shopify").status == "disconnected"
        with pytest.raises(VaultError, match="tenant 'acme' has no shopify token"):
            read_tokens(conn, vault, "acme", "shopify")


def test_events_are_appended_in_order(warehouse):
    with warehouse.connect() as conn:
        record_event(conn, "acme", "shopify", "connected", NOW)
        record_event(conn, "acme", "shopify", REFRESHED, NOW + dt.timedelta(minutes=50))
        record_event(conn, "globex", "shopify", "connected", NOW)
    with warehouse.connect() as conn:
        assert [e.event for e in events_of(conn, "acme")] == ["connected", REFRESHED]


def test_a_bad_vault_key_is_refused_without_showing_it():
    bad = "not-a-fernet-key-but-maybe-a-secret"
    with pytest.raises(SettingsError, match="key 2 of 2 is not a Fernet key") as raised:
        load_connect_settings({"TENANTPULSE_VAULT_KEYS": f"{KEY_NEW},{bad}"})
    assert bad not in str(raised.value)
    assert load_connect_settings(
        {"TENANTPULSE_VAULT_KEYS": f"{KEY_NEW}, {KEY_OLD}"}
    ).vault_keys == (
        KEY_NEW,
        KEY_OLD,
    )
    with pytest.raises(VaultError, match="TENANTPULSE_VAULT_KEYS is not set"):
        Vault(load_connect_settings({}).vault_keys)


def test_the_cli_rotates_keys_taken_from_the_environment(tmp_path, warehouse_url, monkeypatch):
    from click.testing import CliRunner

    from conftest import make_settings
    from tenantpulse.cli import main
    from tenantpulse.warehouse import open_warehouse

    warehouse = open_warehouse(make_settings(tmp_path, warehouse_url).warehouse)
    with warehouse.connect() as conn:
        store_tokens(conn, Vault([KEY_OLD]), "acme", "shopify", tokens(), NOW, NOW)
    monkeypatch.setenv("TENANTPULSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TENANTPULSE_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("TENANTPULSE_VAULT_KEYS", f"{KEY_NEW},{KEY_OLD}")
    rotated = CliRunner().invoke(main, ["connect", "rotate-keys"], catch_exceptions=False)
    assert rotated.exit_code == 0 and "re-encrypted 1 connection token(s)" in rotated.output
    monkeypatch.setenv("TENANTPULSE_VAULT_KEYS", KEY_NEW)
    status = CliRunner().invoke(main, ["connect", "status"], catch_exceptions=False)
    assert "acme shopify connected next refresh 2026-12-01 12:00Z" in status.output
    with warehouse.connect() as conn:
        assert read_tokens(conn, Vault([KEY_NEW]), "acme", "shopify") == tokens()
    monkeypatch.setenv("TENANTPULSE_VAULT_KEYS", Fernet.generate_key().decode())
    refused = CliRunner().invoke(main, ["connect", "rotate-keys"])
    assert refused.exit_code == 1 and "tenant 'acme'" in refused.output
    for output in (rotated.output, status.output, refused.output):
        assert SECRET not in output and KEY_NEW not in output
