import pytest

from tenantpulse.defs.tenants import partition_changes
from tenantpulse.tenants.ids import TenantIdError, validate_tenant_id
from tenantpulse.tenants.registry import (
    add_tenant,
    add_tenants,
    get_tenant,
    list_tenants,
    remove_tenant,
)
from tenantpulse.warehouse import IdentifierError, quote_ident


@pytest.mark.parametrize("tenant_id", ["acme", "123", "a", "acme_2024", "x" * 48])
def test_valid_tenant_ids_pass(tenant_id):
    assert validate_tenant_id(tenant_id) == tenant_id


@pytest.mark.parametrize(
    "tenant_id",
    [
        "",
        "Acme",
        "acme-corp",
        "_acme",
        "x" * 49,
        "acme; drop table ops.tenants; --",
        "acme' or '1'='1",
        'acme"."tenants',
        "acme\n",
        "ａｃｍｅ",
        None,
        42,
    ],
)
def test_bad_tenant_ids_are_rejected_with_a_clear_message(tenant_id):
    with pytest.raises(TenantIdError, match="lowercase letters, digits and underscores"):
        validate_tenant_id(tenant_id)


@pytest.mark.parametrize("name", ['a"b', "a b", "1abc", "", "a" * 64, "x;drop"])
def test_identifiers_are_validated_before_quoting(name):
    with pytest.raises(IdentifierError):
        quote_ident(name)
    assert quote_ident("totalUsers") == '"totalUsers"'


def test_registry_add_list_remove_and_reactivate(warehouse):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme Inc", "stripe, github")
        add_tenant(conn, "globex", "", ["shopify"])
        assert [t.tenant_id for t in list_tenants(conn)] == ["acme", "globex"]
        acme = get_tenant(conn, "acme")
        assert acme.sources == ("github", "stripe") and acme.name == "Acme Inc"
        assert get_tenant(conn, "globex").name == "globex"

        remove_tenant(conn, "acme")
        assert [t.tenant_id for t in list_tenants(conn)] == ["globex"]
        assert {t.tenant_id: t.status for t in list_tenants(conn, include_removed=True)} == {
            "acme": "removed",
            "globex": "active",
        }
        add_tenant(conn, "acme", "Acme Inc", "stripe")
        assert get_tenant(conn, "acme").status == "active"


def test_add_tenants_registers_many_across_statements_and_reactivates_the_removed(
    warehouse, monkeypatch
):
    monkeypatch.setattr("tenantpulse.tenants.registry.TENANTS_PER_STATEMENT", 2)
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Old name", "stripe")
        remove_tenant(conn, "acme")
        ids = add_tenants(
            conn,
            [
                ("globex", "Globex", "github, stripe"),
                ("acme", "Acme Inc", ["shopify"]),
                ("initech", "", "google_analytics"),
            ],
        )
        assert ids == ["globex", "acme", "initech"]
        assert {(t.tenant_id, t.name, t.sources, t.status) for t in list_tenants(conn)} == {
            ("acme", "Acme Inc", ("shopify",), "active"),
            ("globex", "Globex", ("github", "stripe"), "active"),
            ("initech", "initech", ("google_analytics",), "active"),
        }


def test_add_tenants_writes_nothing_when_any_is_invalid(warehouse):
    with warehouse.connect() as conn:
        with pytest.raises(ValueError, match="choose one or more"):
            add_tenants(conn, [("acme", "Acme", "stripe"), ("globex", "Globex", "salesforce")])
        with pytest.raises(TenantIdError):
            add_tenants(conn, [("acme", "Acme", "stripe"), ("x'; drop table t; --", "x", "stripe")])
        assert list_tenants(conn, include_removed=True) == []


def test_registry_rejects_injection_shaped_ids_and_unknown_sources(warehouse):
    with warehouse.connect() as conn:
        with pytest.raises(TenantIdError):
            add_tenant(conn, "x'); delete from ops.tenants; --", "x", "stripe")
        with pytest.raises(ValueError, match="known sources|choose one or more"):
            add_tenant(conn, "acme", "Acme", "stripe,salesforce")
        with pytest.raises(LookupError, match="not registered"):
            remove_tenant(conn, "nobody")
        assert list_tenants(conn) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Acme\nInc", "holds U+000A at character 5"),
        ("Acme\x1b[2J\x1b[31mOwned", "holds U+001B at character 5"),
        ("Acme\u202eInc", "holds U+202E at character 5"),  # right-to-left override
        ("Acme\tInc", "holds U+0009 at character 5"),
        ("<img src=x onerror=alert(1)>", "holds '<' at character 1"),
        ("x" * 201, "has 201 characters; allowed: 1-200"),
        ("x" * 100_000, "has 100,000 characters; allowed: 1-200"),
    ],
)
def test_a_tenant_name_that_could_inject_is_refused_naming_the_tenant(warehouse, name, message):
    with warehouse.connect() as conn:
        with pytest.raises(ValueError) as error:
            add_tenant(conn, "acme", name, "stripe")
        assert f"the name of tenant 'acme' {message}" in str(error.value)
        assert "allowed" in str(error.value) and len(str(error.value)) < 300
        assert list_tenants(conn) == []


def test_a_tenant_name_keeps_any_printable_text_up_to_200_characters(warehouse):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "  Société Générale & Fils — 株式会社 (EU) 'quoted'  ", "stripe")
        add_tenant(conn, "long", "y" * 200, "stripe")
        add_tenant(conn, "blank", "   ", "stripe")
        assert get_tenant(conn, "acme").name == "Société Générale & Fils — 株式会社 (EU) 'quoted'"
        assert get_tenant(conn, "long").name == "y" * 200
        assert get_tenant(conn, "blank").name == "blank"  # no name: the id


def test_partition_changes_add_new_and_delete_removed_tenants():
    assert partition_changes(["a", "b", "c"], ["b", "d"]) == (["a", "c"], ["d"])
    assert partition_changes([], []) == ([], [])
