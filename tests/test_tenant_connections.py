"""Connecting a tenant's source: the registry `ops.tenant_connections` (DuckDB and Postgres), the
tfvars writer, and `tenantpulse tenants connect/disconnect` onboarding two tenants end to end."""

import json
import secrets
import stat
import traceback

import pytest
from click.testing import CliRunner

from tenantpulse.cli import main
from tenantpulse.config import SettingsError, load_settings
from tenantpulse.tenants.connections import (
    TenantConnection,
    connect_source,
    disconnect_source,
    list_connections,
    terraform_connections,
)
from tenantpulse.tenants.ids import TenantIdError
from tenantpulse.tenants.registry import add_tenant, get_tenant, remove_tenant
from tenantpulse.tenants.tfvars import (
    read_tfvars,
    remove_secret,
    render_tenants_tfvars,
    store_secret,
    write_tenants_tfvars,
)
from tenantpulse.warehouse import open_warehouse
from terraform_module import REPO, expand


def fake_credential(prefix: str = "sk_test_") -> str:
    """Obviously fake and unique per test, so finding it anywhere means this test wrote it."""
    return f"{prefix}FAKE{secrets.token_hex(12)}"


# -- registry ------------------------------------------------------------------------------------


def test_connect_records_the_connection_and_adds_the_source_to_the_tenant(warehouse):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "github")
        connection = connect_source(conn, "acme", "stripe", {"account_id": "acct_1"})
        assert (connection.key, connection.status, connection.workspace) == (
            "acme/stripe",
            "connected",
            "default",
        )
        assert connection.settings == {"account_id": "acct_1"}
        assert get_tenant(conn, "acme").sources == ("github", "stripe")
        columns = conn.table_columns("ops", "tenant_connections")
        assert list(columns) == [
            "tenant_id",
            "source",
            "workspace",
            "settings",
            "status",
            "connected_at",
            "disconnected_at",
        ]


def test_disconnect_keeps_the_record_and_the_tenants_sources_and_reconnect_restores_it(warehouse):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        connect_source(conn, "acme", "stripe", {"account_id": "acct_1"})
        connect_source(conn, "acme", "github", {"repositories": "acme/api, acme/web"})
        gone = disconnect_source(conn, "acme", "stripe")
        assert gone.status == "disconnected" and gone.disconnected_at is not None
        assert [c.key for c in list_connections(conn)] == ["acme/github"]
        assert [c.key for c in list_connections(conn, include_disconnected=True)] == [
            "acme/github",
            "acme/stripe",
        ]
        assert get_tenant(conn, "acme").sources == ("github", "stripe")  # its data stays landed
        back = connect_source(conn, "acme", "stripe", {"account_id": "acct_2"})
        assert back.status == "connected" and back.disconnected_at is None
        assert back.settings == {"account_id": "acct_2"}
        github = [c for c in list_connections(conn) if c.source == "github"][0]
        assert github.settings == {"repositories": ["acme/api", "acme/web"]}


def test_terraform_gets_only_connected_sources_of_active_tenants(warehouse):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        add_tenant(conn, "globex", "Globex", "shopify")
        connect_source(conn, "acme", "stripe", {"account_id": "acct_1"})
        connect_source(conn, "globex", "shopify", {"shop": "globex-store"})
        assert [c.key for c in terraform_connections(conn)] == ["acme/stripe", "globex/shopify"]
        remove_tenant(conn, "globex")
        assert [c.key for c in terraform_connections(conn)] == ["acme/stripe"]


@pytest.mark.parametrize(
    ("tenant_id", "source", "given", "error", "message"),
    [
        ("Acme-Corp", "stripe", {"account_id": "acct_1"}, TenantIdError, "invalid tenant id"),
        ("acme", "salesforce", {}, ValueError, "unknown source 'salesforce'; known sources: stripe"),
        ("nobody", "stripe", {"account_id": "acct_1"}, LookupError, "'nobody' is not registered"),
        ("acme", "stripe", {}, ValueError, "stripe needs --setting account_id=... (e.g. acct_"),
        ("acme", "stripe", {"account_id": "acct_1; drop table"}, ValueError, "is not allowed"),
        ("acme", "stripe", {"account_id": "acct_1", "client_secret": "x"}, ValueError,
         "unknown stripe setting client_secret"),
        ("acme", "github", {"repositories": "acme/api,../etc"}, ValueError, "is not allowed"),
        ("acme", "google_analytics", {"property_ids": "12a"}, ValueError, "is not allowed"),
    ],
)  # fmt: skip
def test_connect_rejects_bad_input_with_a_clear_message(
    warehouse, tenant_id, source, given, error, message
):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        with pytest.raises(error) as raised:
            connect_source(conn, tenant_id, source, given)
        assert message in str(raised.value)
        assert list_connections(conn) == []


def test_connecting_twice_or_a_removed_tenant_is_refused(warehouse):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        connect_source(conn, "acme", "stripe", {"account_id": "acct_1"})
        with pytest.raises(ValueError, match="acme/stripe is already connected .* --replace"):
            connect_source(conn, "acme", "stripe", {"account_id": "acct_1"})
        replaced = connect_source(conn, "acme", "stripe", {"account_id": "acct_9"}, replace=True)
        assert replaced.settings == {"account_id": "acct_9"}
        with pytest.raises(LookupError, match="acme/github is not connected"):
            disconnect_source(conn, "acme", "github")
        with pytest.raises(ValueError, match="invalid workspace name"):
            connect_source(conn, "acme", "github", {"repositories": "a/b"}, workspace="EU West")
        remove_tenant(conn, "acme")
        with pytest.raises(LookupError, match="tenant 'acme' is removed"):
            connect_source(conn, "acme", "github", {"repositories": "a/b"})


# -- tfvars files --------------------------------------------------------------------------------


def test_tenants_tfvars_round_trips_and_holds_no_credential(warehouse, tmp_path):
    path = tmp_path / "tf" / "tenants.auto.tfvars.json"
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        connect_source(conn, "acme", "stripe", {"account_id": "acct_1"})
        connect_source(conn, "acme", "github", {"repositories": "acme/api"}, workspace="eu")
        written = write_tenants_tfvars(path, terraform_connections(conn))
    assert (
        read_tfvars(path)
        == written
        == {
            "connections": {
                "acme/github": {
                    "tenant_id": "acme",
                    "source": "github",
                    "workspace": "eu",
                    "configuration_json": '{"repositories": ["acme/api"]}',
                },
                "acme/stripe": {
                    "tenant_id": "acme",
                    "source": "stripe",
                    "workspace": "default",
                    "configuration_json": '{"account_id": "acct_1"}',
                },
            }
        }
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_secrets_file_is_private_round_trips_and_is_refused_inside_a_git_tree(tmp_path):
    path = tmp_path / "secrets" / "tenant_secrets.tfvars.json"
    first, second = fake_credential(), fake_credential("ghp_")
    store_secret(path, "acme/stripe", first)
    store_secret(path, "acme/github", second)
    assert read_tfvars(path) == {
        "connection_secrets": {"acme/github": second, "acme/stripe": first}
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert remove_secret(path, "acme/stripe") is True
    assert remove_secret(path, "acme/stripe") is False
    assert read_tfvars(path) == {"connection_secrets": {"acme/github": second}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    inside = clone / "deploy" / "tenant_secrets.tfvars.json"
    with pytest.raises(SettingsError, match="is inside the git work tree .*clone"):
        store_secret(inside, "acme/stripe", first)
    assert not inside.parent.exists()


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, warehouse_url, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TENANTPULSE_HOME", str(home))
    monkeypatch.setenv("TENANTPULSE_WAREHOUSE_URL", warehouse_url)
    for name in ("TENANTPULSE_TENANTS_TFVARS", "TENANTPULSE_TENANT_SECRETS_TFVARS"):
        monkeypatch.delenv(name, raising=False)

    def run(*args, stdin=None, env=None):
        return CliRunner().invoke(main, list(args), input=stdin, env=env, catch_exceptions=False)

    run.tenants_file = home / "terraform" / "tenants.auto.tfvars.json"
    run.secrets_file = home / "terraform" / "tenant_secrets.tfvars.json"
    return run


def test_onboarding_two_tenants_gives_two_independent_sets_of_resources(cli):
    acme_key, globex_key = fake_credential(), fake_credential("shpat_")
    assert cli("tenants", "add", "acme", "--sources", "stripe").exit_code == 0
    assert cli("tenants", "add", "globex", "--sources", "shopify").exit_code == 0
    connected = cli(
        "tenants", "connect", "acme", "stripe", "--setting", "account_id=acct_1A2b",
        "--credential-stdin", stdin=acme_key + "\n",
    )  # fmt: skip
    assert connected.exit_code == 0, connected.output
    assert "connected acme/stripe (workspace default)" in connected.output
    first_tfvars = json.loads(cli.tenants_file.read_text())
    first_resources = expand(first_tfvars)
    assert sorted(first_resources) == [
        'airbyte_connection.tenant["acme/stripe"]',
        'airbyte_source.tenant["acme/stripe"]',
    ]

    connected = cli(
        "tenants", "connect", "globex", "shopify", "--setting", "shop=globex-store",
        "--credential-env", "GLOBEX_SHOPIFY_TOKEN", env={"GLOBEX_SHOPIFY_TOKEN": globex_key},
    )  # fmt: skip
    assert connected.exit_code == 0, connected.output
    both_tfvars = json.loads(cli.tenants_file.read_text())
    both_resources = expand(both_tfvars)

    # The second tenant adds its own resources and leaves the first's keys and values as they were.
    assert both_tfvars["connections"]["acme/stripe"] == first_tfvars["connections"]["acme/stripe"]
    assert {k: v for k, v in both_resources.items() if "acme/" in k} == first_resources
    assert {k: v for k, v in both_resources.items() if "acme/" not in k} == {
        'airbyte_source.tenant["globex/shopify"]': {"name": "tenantpulse-globex-shopify"},
        'airbyte_connection.tenant["globex/shopify"]': {
            "name": "tenantpulse-globex-shopify",
            "namespace_format": "user_globex",
            "prefix": "shopify_",
        },
    }

    # The credentials are in the private secrets file only: not in the tenants file, not in the
    # output, not in any file of the repository.
    assert json.loads(cli.secrets_file.read_text()) == {
        "connection_secrets": {"acme/stripe": acme_key, "globex/shopify": globex_key}
    }
    assert stat.S_IMODE(cli.secrets_file.stat().st_mode) == 0o600
    for key in (acme_key, globex_key):
        assert key not in cli.tenants_file.read_text() and key not in connected.output
    assert files_containing(REPO, (acme_key, globex_key)) == []

    listed = cli("tenants", "list")
    assert "shopify" in listed.output and acme_key not in listed.output

    # Disconnecting takes one tenant's entry out of both files and leaves the other's.
    gone = cli("tenants", "disconnect", "acme", "stripe")
    assert gone.exit_code == 0 and "disconnected acme/stripe" in gone.output
    after = json.loads(cli.tenants_file.read_text())
    assert after == {
        "connections": {"globex/shopify": both_tfvars["connections"]["globex/shopify"]}
    }
    assert json.loads(cli.secrets_file.read_text()) == {
        "connection_secrets": {"globex/shopify": globex_key}
    }
    # Removing a tenant takes its connections out of Terraform's map too.
    assert cli("tenants", "remove", "globex").exit_code == 0
    assert json.loads(cli.tenants_file.read_text()) == {"connections": {}}


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
@pytest.mark.parametrize(
    ("args", "stdin", "env", "message"),
    [
        (["Acme!", "stripe", "--credential-stdin"], "sk_test_x", None, "invalid tenant id"),
        (["acme", "salesforce", "--credential-stdin"], "sk_test_x", None, "unknown source 'salesforce'"),
        (["nobody", "stripe", "--setting", "account_id=acct_1", "--credential-stdin"], "sk_test_x",
         None, "tenant 'nobody' is not registered; register it first"),
        (["acme", "stripe", "--setting", "account_id=acct_1", "--credential-stdin"], "  \n", None,
         "the stripe credential is empty"),
        (["acme", "stripe", "--setting", "account_id=acct_1", "--credential-env", "NO_SUCH_VAR"],
         None, None, "the variable NO_SUCH_VAR is not set"),
        (["acme", "stripe", "--setting", "account_id=acct_1", "--credential-env", "EMPTY_KEY"],
         None, {"EMPTY_KEY": ""}, "the stripe credential is empty"),
        (["acme", "stripe", "--setting", "account_id=acct_1"], "", None, "no credential: pipe it"),
        (["acme", "stripe", "--credential-stdin", "--credential-env", "K"], "x", {"K": "y"},
         "either --credential-stdin or --credential-env"),
        (["acme", "stripe", "--setting", "account_id", "--credential-stdin"], "x", None,
         "'account_id' is not NAME=VALUE"),
        (["acme", "google_analytics", "--setting", "property_ids=42", "--credential-stdin"],
         "not json", None, "the google_analytics credential is not JSON"),
        (["acme", "stripe", "--credential", "sk_test_x"], None, None, "No such option '--credential'"),
    ],
)  # fmt: skip
def test_connect_bad_input_is_one_clear_line_and_writes_nothing(cli, args, stdin, env, message):
    assert cli("tenants", "add", "acme", "--sources", "stripe").exit_code == 0
    result = cli("tenants", "connect", *args, stdin=stdin, env=env)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not cli.secrets_file.exists() and not cli.tenants_file.exists()


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_connecting_twice_is_refused_and_replace_changes_the_credential(cli):
    first, second = fake_credential(), fake_credential()
    assert cli("tenants", "add", "acme", "--sources", "stripe").exit_code == 0
    connect = ("tenants", "connect", "acme", "stripe", "--setting", "account_id=acct_1")
    assert cli(*connect, "--credential-stdin", stdin=first).exit_code == 0
    again = cli(*connect, "--credential-stdin", stdin=second)
    assert again.exit_code != 0 and "acme/stripe is already connected" in again.output
    assert json.loads(cli.secrets_file.read_text())["connection_secrets"]["acme/stripe"] == first
    assert cli(*connect, "--credential-stdin", "--replace", stdin=second).exit_code == 0
    assert json.loads(cli.secrets_file.read_text())["connection_secrets"]["acme/stripe"] == second
    missing = cli("tenants", "disconnect", "acme", "github")
    assert missing.exit_code != 0 and "acme/github is not connected" in missing.output


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_a_secrets_file_inside_a_git_tree_is_refused_before_anything_is_recorded(cli, tmp_path):
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    env = {"TENANTPULSE_TENANT_SECRETS_TFVARS": str(clone / "tenant_secrets.tfvars.json")}
    assert cli("tenants", "add", "acme", "--sources", "stripe").exit_code == 0
    result = cli(
        "tenants", "connect", "acme", "stripe", "--setting", "account_id=acct_1",
        "--credential-stdin", stdin=fake_credential(), env=env,
    )  # fmt: skip
    assert result.exit_code != 0
    assert "is inside the git work tree" in result.output and "Traceback" not in result.output
    assert list(clone.iterdir()) == [clone / ".git"]
    again = cli(
        "tenants", "connect", "acme", "stripe", "--setting", "account_id=acct_1",
        "--credential-stdin", stdin=fake_credential(),
    )  # fmt: skip
    assert again.exit_code == 0, again.output  # nothing was recorded by the refused attempt


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
@pytest.mark.parametrize(
    ("source", "given", "named"),
    [
        ("stripe", ["account_id={secret}"], "stripe setting account_id is not allowed"),
        (
            "stripe",
            ["account_id=acct_1", "start_date={secret}"],
            "stripe setting start_date is not allowed",
        ),
        (
            "github",
            ["repositories=acme/api,{secret}"],
            "github setting repositories is not allowed",
        ),
        ("stripe", ["{secret}"], "--setting (not shown: it may be a secret) is not NAME=VALUE"),
        ("stripe", ["{secret}=acct_1"], "unknown stripe setting (not shown: it may be a secret)"),
    ],
)
def test_a_secret_given_as_a_setting_is_named_never_echoed(cli, source, given, named):
    secret = fake_credential("sk_live_")
    given = [g.format(secret=secret) for g in given]
    assert cli("tenants", "add", "acme", "--sources", source).exit_code == 0
    options = [arg for g in given for arg in ("--setting", g)]
    result = cli(
        "tenants", "connect", "acme", source, *options, "--credential-stdin", stdin="sk_test_x"
    )
    assert result.exit_code != 0 and named in result.output
    assert secret not in result.output + result.stderr + repr(result.exception)
    # Nor in the error the registry raises, its chained causes or its traceback.
    with open_warehouse(load_settings().warehouse).connect() as conn:
        with pytest.raises(ValueError) as raised:
            connect_source(conn, "acme", source, dict(g.partition("=")[::2] for g in given))
    assert secret not in "".join(traceback.format_exception(raised.value))
    assert not cli.secrets_file.exists() and not cli.tenants_file.exists()


def files_containing(root, needles) -> list:
    """Files under root (the virtualenv and git objects aside) whose bytes contain a needle."""
    found = []
    for path in root.rglob("*"):
        parts = set(path.relative_to(root).parts)
        if parts & {".venv", ".git", "node_modules"} or not path.is_file():
            continue
        data = path.read_bytes()
        found += [str(path) for n in needles if n.encode() in data]
    return found


def test_render_is_stable_whatever_order_the_connections_come_in():
    a = TenantConnection(
        "a", "stripe", "default", {"account_id": "acct_1"}, "connected", None, None
    )
    b = TenantConnection(
        "b", "github", "default", {"repositories": ["b/c"]}, "connected", None, None
    )
    assert json.dumps(render_tenants_tfvars([a, b])) == json.dumps(render_tenants_tfvars([b, a]))
