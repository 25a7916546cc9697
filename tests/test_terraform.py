"""terraform/: the files parse, each tenant's connection has the settings Airbyte must use
(shared/SOURCES.md), the streams equal the stream contracts, and for_each keys every resource by
"<tenant>/<source>". No provider download: python-hcl2 reads the files; `terraform fmt` and an
offline `terraform plan` of the module's expressions run when terraform is on PATH."""

import json
import os
import re
import shutil
import subprocess

import pytest

from tenantpulse.sources.contracts import SOURCES, STREAMS
from tenantpulse.tenants.connections import TenantConnection
from tenantpulse.tenants.tfvars import render_tenants_tfvars
from terraform_module import EXAMPLE, MODULE, TERRAFORM, expand, load, module_blocks


def test_every_terraform_file_parses():
    files = sorted(TERRAFORM.rglob("*.tf"))
    assert {f.relative_to(TERRAFORM).as_posix() for f in files} == {
        "modules/tenant_connections/main.tf",
        "modules/tenant_connections/outputs.tf",
        "modules/tenant_connections/streams.tf",
        "modules/tenant_connections/variables.tf",
        "modules/tenant_connections/versions.tf",
        "environments/example/main.tf",
        "environments/example/outputs.tf",
        "environments/example/variables.tf",
    }
    for path in files:
        assert load(path), path


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_files_are_formatted():
    checked = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", str(TERRAFORM)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_connection_writes_user_tenant_schema_with_the_source_prefix():
    connection = module_blocks("resource")["airbyte_connection"]["tenant"]
    assert connection["for_each"] == "${var.connections}"
    assert connection["namespace_definition"] == "custom_format"  # "custom" is rejected
    assert connection["namespace_format"] == "user_${each.value.tenant_id}"
    assert connection["prefix"] == "${each.value.source}_"
    assert connection["non_breaking_schema_updates_behavior"] == "propagate_columns"
    assert connection["configurations"] == {"streams": "${local.streams[each.value.source]}"}
    assert connection["schedule"] == {
        "schedule_type": "cron",
        "cron_expression": "${var.cron_expression}",
    }
    assert connection["source_id"] == "${airbyte_source.tenant[each.key].source_id}"
    assert connection["destination_id"] == (
        "${airbyte_destination.warehouse[each.value.workspace].destination_id}"
    )


def test_streams_and_sync_modes_equal_the_stream_contracts():
    streams = module_blocks("locals")["streams"]
    assert list(streams) == list(SOURCES)
    in_terraform = {
        (
            source,
            s["name"],
            s["sync_mode"],
            tuple(s["cursor_field"]),
            tuple(map(tuple, s["primary_key"])),
        )
        for source, listed in streams.items()
        for s in listed
    }
    in_contracts = {
        (c.source, c.stream, c.sync_mode, (c.cursor,), tuple((k,) for k in c.primary_key))
        for c in STREAMS
    }
    assert in_terraform == in_contracts
    assert len(in_terraform) == 17
    assert {s[2] for s in in_terraform} == {"incremental_deduped_history"}
    # The tables these streams become are the ones the platform reads.
    assert {f"{s[0]}_{s[1]}" for s in in_terraform} == {c.raw_table for c in STREAMS}


def test_every_source_has_a_connector_definition_and_a_place_for_its_credential():
    locals_ = module_blocks("locals")
    assert locals_["source_definition_ids"] == {
        "stripe": "e094cb9a-26de-4645-8761-65c0c425d1de",
        "github": "ef69ef6e-aa7f-4af1-a01d-ef775033524e",
        "shopify": "9da77001-af33-4bcd-be46-6252bf9342b9",
        "google_analytics": "3cc2eafd-84aa-4dca-93af-322d9dfeec1a",
    }
    credential_places = locals_["credential_configuration"]
    for field in ("client_secret", "personal_access_token", "api_password", "credentials_json"):
        assert f"{field} = lookup(var.connection_secrets, key" in credential_places, field
    source = module_blocks("resource")["airbyte_source"]["tenant"]
    assert source["for_each"] == "${var.connections}"
    assert source["definition_id"] == "${local.source_definition_ids[each.value.source]}"
    assert "jsondecode(each.value.configuration_json)" in source["configuration"]


def test_credentials_are_only_in_sensitive_variables():
    for folder, names in (
        (MODULE, {"connection_secrets", "destination_password"}),
        (
            EXAMPLE,
            {
                "connection_secrets",
                "destination_password",
                "airbyte_client_id",
                "airbyte_client_secret",
            },
        ),
    ):
        variables = module_blocks("variable", folder)
        assert {n for n, v in variables.items() if v.get("sensitive") is True} == names, folder
        for name in names:
            assert "default" not in variables[name] or variables[name]["default"] == {}
    # No literal secret in any file of terraform/: every credential-shaped attribute is a reference.
    for path in TERRAFORM.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"(sk|rk)_(live|test)_|ghp_|shpat_|BEGIN PRIVATE KEY", text), path


def test_the_tenants_map_the_cli_writes_has_the_module_variables_shape():
    variable_type = module_blocks("variable")["connections"]["type"]
    attributes = set(re.findall(r"(\w+) = (?:string|optional)", variable_type))
    connection = TenantConnection(
        "acme", "stripe", "default", {"account_id": "acct_1"}, "connected", None, None
    )
    rendered = render_tenants_tfvars([connection])
    assert set(rendered) == {"connections"}
    assert set(rendered["connections"]["acme/stripe"]) == attributes


def test_for_each_gives_each_tenant_source_its_own_named_resources():
    tfvars = render_tenants_tfvars(
        [
            TenantConnection(
                "acme", "stripe", "default", {"account_id": "acct_1"}, "connected", None, None
            ),
            TenantConnection(
                "acme", "github", "default", {"repositories": ["acme/api"]}, "connected", None, None
            ),
            TenantConnection(
                "globex",
                "google_analytics",
                "eu",
                {"property_ids": ["42"]},
                "connected",
                None,
                None,
            ),
        ]
    )
    assert expand(tfvars) == {
        'airbyte_source.tenant["acme/github"]': {"name": "tenantpulse-acme-github"},
        'airbyte_source.tenant["acme/stripe"]': {"name": "tenantpulse-acme-stripe"},
        'airbyte_source.tenant["globex/google_analytics"]': {
            "name": "tenantpulse-globex-google_analytics"
        },
        'airbyte_connection.tenant["acme/github"]': {
            "name": "tenantpulse-acme-github",
            "namespace_format": "user_acme",
            "prefix": "github_",
        },
        'airbyte_connection.tenant["acme/stripe"]': {
            "name": "tenantpulse-acme-stripe",
            "namespace_format": "user_acme",
            "prefix": "stripe_",
        },
        'airbyte_connection.tenant["globex/google_analytics"]': {
            "name": "tenantpulse-globex-google_analytics",
            "namespace_format": "user_globex",
            "prefix": "google_analytics_",
        },
    }


def test_the_example_environment_calls_the_module_with_every_variable_it_needs():
    call = load(EXAMPLE / "main.tf")["module"][0]["tenant_connections"]
    assert call["source"] == "../../modules/tenant_connections"
    module_variables = module_blocks("variable")
    required = {n for n, v in module_variables.items() if "default" not in v}
    assert required <= set(call) <= set(module_variables) | {"source"}
    provider = load(EXAMPLE / "main.tf")["provider"][0]["airbyte"]
    assert provider == {
        "server_url": "${var.airbyte_server_url}",
        "client_id": "${var.airbyte_client_id}",
        "client_secret": "${var.airbyte_client_secret}",
    }
    versions = load(MODULE / "versions.tf")["terraform"][0]["required_providers"][0]["airbyte"]
    assert versions == {"source": "airbytehq/airbyte", "version": ">= 1.0, < 2.0"}


def test_example_tfvars_names_no_credential():
    text = (EXAMPLE / "example.tfvars").read_text()
    assigned = set(re.findall(r"^(\w+)\s*=", text, flags=re.MULTILINE))
    # The credentials come from TF_VAR_* and the secrets file, never from this file.
    assert assigned == {"airbyte_server_url", "workspaces", "destination"}


def block_text(text: str, header: str) -> str:
    """The text of the block that starts with header, up to its matching closing brace."""
    start = text.index(header)
    depth = 0
    for position in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[start : position + 1]
    raise ValueError(f"unclosed block {header}")


def stand_in_root(folder):
    """The module's variables, locals and airbyte_source block with the source as a built-in
    terraform_data resource: Terraform evaluates the module's own expressions offline."""
    for name in ("variables.tf", "streams.tf"):
        (folder / name).write_text((MODULE / name).read_text())
    main = (MODULE / "main.tf").read_text()
    source = block_text(main, 'resource "airbyte_source" "tenant" {')
    body = source[source.index("{") + 1 : source.rindex("}")]
    head, lifecycle = body.split("  lifecycle {", 1)
    for_each, attributes = head.split("\n\n", 1)
    (folder / "main.tf").write_text(
        block_text(main, "locals {")
        + '\nresource "terraform_data" "tenant_source" {'
        + for_each
        + "\n  input = {\n"
        + attributes
        + "  }\n  lifecycle {"
        + lifecycle
        + "}\n"
        + 'output "sources" {\n  value     = { for k, s in terraform_data.tenant_source : k => s.input }\n'
        + "  sensitive = true\n}\n"
    )


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_puts_each_credential_where_its_connector_expects_it(tmp_path):
    stand_in_root(tmp_path)
    tenants = render_tenants_tfvars(
        [
            TenantConnection(
                "acme", "stripe", "default", {"account_id": "acct_1"}, "connected", None, None
            ),
            TenantConnection(
                "acme", "github", "default", {"repositories": ["acme/api"]}, "connected", None, None
            ),
            TenantConnection(
                "globex", "shopify", "default", {"shop": "globex"}, "connected", None, None
            ),
            TenantConnection(
                "globex",
                "google_analytics",
                "default",
                {"property_ids": ["42"]},
                "connected",
                None,
                None,
            ),
        ]
    )
    credentials = {
        "acme/stripe": "sk_test_FAKE1",
        "acme/github": "ghp_FAKE2",
        "globex/shopify": "shpat_FAKE3",
        "globex/google_analytics": '{"type": "service_account"}',
    }
    environment = {
        "workspaces": {"default": "11111111-1111-1111-1111-111111111111"},
        "destination": {"host": "db", "database": "tenantpulse", "username": "airbyte"},
        "destination_password": "unused",
    }

    def terraform(*args, secrets=credentials, connections=tenants):
        (tmp_path / "tenants.tfvars.json").write_text(json.dumps({**connections, **environment}))
        (tmp_path / "secrets.tfvars.json").write_text(json.dumps({"connection_secrets": secrets}))
        files = ["-var-file=tenants.tfvars.json", "-var-file=secrets.tfvars.json"]
        return subprocess.run(
            ["terraform", *args, *(files if args[0] in ("apply", "plan") else [])],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "TF_IN_AUTOMATION": "1"},
        )

    assert terraform("init", "-input=false").returncode == 0
    applied = terraform("apply", "-input=false", "-auto-approve", "-no-color")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "sk_test_FAKE1" not in applied.stdout  # the plan shows (sensitive value)
    sources = json.loads(terraform("output", "-json", "sources").stdout)
    assert {k: json.loads(v["configuration"]) for k, v in sources.items()} == {
        "acme/stripe": {"account_id": "acct_1", "client_secret": "sk_test_FAKE1"},
        "acme/github": {
            "repositories": ["acme/api"],
            "credentials": {
                "option_title": "PAT Credentials",
                "personal_access_token": "ghp_FAKE2",
            },
        },
        "globex/shopify": {
            "shop": "globex",
            "credentials": {"auth_method": "api_password", "api_password": "shpat_FAKE3"},
        },
        "globex/google_analytics": {
            "property_ids": ["42"],
            "credentials": {
                "auth_type": "Service",
                "credentials_json": '{"type": "service_account"}',
            },
        },
    }
    assert sources["acme/stripe"]["definition_id"] == "e094cb9a-26de-4645-8761-65c0c425d1de"
    assert sources["acme/stripe"]["name"] == "tenantpulse-acme-stripe"

    no_secret = terraform(
        "plan", "-input=false", "-no-color", secrets={"acme/stripe": "sk_test_FAKE1"}
    )
    assert no_secret.returncode != 0 and "No credential for acme/github" in no_secret.stderr
    wrong_key = {"connections": {"acme/x": {**tenants["connections"]["acme/stripe"]}}}
    mis_keyed = terraform("plan", "-input=false", "-no-color", connections=wrong_key)
    assert mis_keyed.returncode != 0
    assert 'must be "<tenant_id>/<source>" of its own entry' in mis_keyed.stderr


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_the_destination_can_be_an_s3_bucket_of_parquet_files_in_the_raw_files_layout(tmp_path):
    """destination_kind = "s3": destination-s3 with Parquet output and its default path format,
    which the connections' namespace and prefix make user_<tenant>/<source>_<stream>/<date>_
    <epoch>_<part>.parquet, the layout of the embedded default's raw files (sources.raw_files)."""
    (tmp_path / "variables.tf").write_text((MODULE / "variables.tf").read_text())
    (tmp_path / "streams.tf").write_text((MODULE / "streams.tf").read_text())
    (tmp_path / "main.tf").write_text(
        block_text((MODULE / "main.tf").read_text(), "locals {")
        + '\noutput "destination" {\n  value = {\n'
        + "    definition_id = local.destination_definition_ids[var.destination_kind]\n"
        + "    configuration = local.destination_configuration[var.destination_kind]\n"
        + "  }\n  sensitive = true\n}\n"
    )
    variables = {
        "connections": {},
        "connection_secrets": {},
        "workspaces": {"default": "11111111-1111-1111-1111-111111111111"},
        "destination_kind": "s3",
        "s3_destination": {
            "bucket_name": "raw",
            "bucket_path": "tenantpulse",
            "endpoint": "http://127.0.0.1:9000",
            "access_key_id": "AKIAFAKE",
        },
        "destination_password": "secret-key",
    }
    (tmp_path / "vars.tfvars.json").write_text(json.dumps(variables))

    def terraform(*args):
        return subprocess.run(
            ["terraform", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "TF_IN_AUTOMATION": "1"},
        )

    assert terraform("init", "-input=false").returncode == 0
    applied = terraform(
        "apply", "-input=false", "-auto-approve", "-no-color", "-var-file=vars.tfvars.json"
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    destination = json.loads(terraform("output", "-json", "destination").stdout)
    assert destination["definition_id"] == "4816b78f-1489-44c1-9060-4b19d5fa9362"  # destination-s3
    assert json.loads(destination["configuration"]) == {
        "s3_bucket_name": "raw",
        "s3_bucket_path": "tenantpulse",
        "s3_bucket_region": "",
        "s3_endpoint": "http://127.0.0.1:9000",
        "access_key_id": "AKIAFAKE",
        "secret_access_key": "secret-key",
        "s3_path_format": "${NAMESPACE}/${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_",
        "format": {"format_type": "Parquet", "compression_codec": "SNAPPY"},
    }
    # The same namespace and prefix as for Postgres: user_<tenant>, <source>_.
    connection = module_blocks("resource")["airbyte_connection"]["tenant"]
    assert connection["namespace_format"] == "user_${each.value.tenant_id}"
    assert connection["prefix"] == "${each.value.source}_"
