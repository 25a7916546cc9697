"""The `tenantpulse` command: tenants, the simulator, the flow, the demo and the Dagster UI."""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import click

from tenantpulse.actions.playbooks import with_checked_playbooks
from tenantpulse.config import Settings, SettingsError, load_settings
from tenantpulse.flow import FlowError
from tenantpulse.tenants.ids import TenantIdError
from tenantpulse.warehouse import WarehouseError, open_warehouse


def _friendly_errors(command: Callable) -> Callable:
    """Expected errors (bad settings, ids, sources, a busy warehouse, a flow that could not be
    started or followed) become one clear line."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (
            SettingsError,
            TenantIdError,
            WarehouseError,
            ValueError,
            LookupError,
            FlowError,
        ) as error:
            raise click.ClickException(str(error)) from error

    return wrapper


def _settings() -> Settings:
    try:
        return with_checked_playbooks(load_settings())
    except SettingsError as error:
        raise click.ClickException(str(error)) from error


@click.group()
def main() -> None:
    """tenantpulse: tenants' Stripe, GitHub, Shopify and GA data to health, churn risk and actions.

    Settings come from environment variables (see README, "Settings")."""


@main.group()
def tenants() -> None:
    """Register, list and remove tenants (the `ops.tenants` registry)."""


@tenants.command("add")
@click.argument("tenant_id")
@click.option("--name", default="", help="Display name (default: the id).")
@click.option(
    "--sources",
    required=True,
    help="Comma-separated connected sources: stripe, github, shopify, google_analytics.",
)
@_friendly_errors
def tenants_add(tenant_id: str, name: str, sources: str) -> None:
    """Register TENANT_ID (lowercase letters, digits, underscore; at most 48)."""
    from tenantpulse.tenants.registry import add_tenant

    with open_warehouse(_settings().warehouse).connect() as conn:
        tenant = add_tenant(conn, tenant_id, name, sources)
    click.echo(
        f"registered {tenant.tenant_id} ({_printable(tenant.name)}): {', '.join(tenant.sources)}"
    )


@tenants.command("list")
@click.option("--all", "include_removed", is_flag=True, help="Include removed tenants.")
@_friendly_errors
def tenants_list(include_removed: bool) -> None:
    """List registered tenants."""
    from tenantpulse.tenants.registry import list_tenants

    with open_warehouse(_settings().warehouse).connect() as conn:
        rows = list_tenants(conn, include_removed=include_removed)
    if not rows:
        click.echo("no tenants registered (add one with `tenantpulse tenants add`)")
    for t in rows:
        created = t.created_at.strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{t.tenant_id:<24} {t.status:<8} {created}  {','.join(t.sources):<40} "
            f"{_printable(t.name)}"
        )


def _printable(text: str) -> str:
    """Text from the registry for the terminal: a character that is not printable (a name
    stored before names were checked) is shown as its escape, so it cannot move the cursor or
    change colours."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


@tenants.command("remove")
@click.argument("tenant_id")
@_friendly_errors
def tenants_remove(tenant_id: str) -> None:
    """Mark TENANT_ID removed: its partition is deleted, its data is kept."""
    from tenantpulse.tenants.registry import remove_tenant

    settings = _settings()
    with open_warehouse(settings.warehouse).connect() as conn:
        remove_tenant(conn, tenant_id)
        if settings.terraform.tenants_file.exists():  # its connections leave Terraform's map
            _write_tenants_tfvars(settings, conn)
    click.echo(f"removed {tenant_id} (data kept in schema user_{tenant_id} and landing)")


@tenants.command("connect")
@click.argument("tenant_id")
@click.argument("source")
@click.option(
    "--setting",
    "settings_given",
    multiple=True,
    metavar="NAME=VALUE",
    help="A non-secret connector setting (repeatable), e.g. account_id=acct_123 for stripe.",
)
@click.option("--credential-stdin", is_flag=True, help="Read the credential from standard input.")
@click.option(
    "--credential-env",
    metavar="NAME",
    default=None,
    help="Read the credential from the environment variable NAME.",
)
@click.option("--workspace", default="default", show_default=True, help="Airbyte workspace group.")
@click.option("--replace", is_flag=True, help="Change the credential or settings of a connection.")
@_friendly_errors
def tenants_connect(
    tenant_id: str,
    source: str,
    settings_given: tuple[str, ...],
    credential_stdin: bool,
    credential_env: str | None,
    workspace: str,
    replace: bool,
) -> None:
    """Connect SOURCE for TENANT_ID: record it in ops.tenant_connections and write the Terraform
    tenants file and secrets file (terraform/README.md). The credential is never an argument:
    --credential-stdin, --credential-env NAME, or a hidden prompt."""
    from tenantpulse.tenants.connections import connect_source
    from tenantpulse.tenants.source_settings import check_credential, validate_source
    from tenantpulse.tenants.tfvars import refuse_inside_git_work_tree, store_secret

    settings = _settings()
    refuse_inside_git_work_tree(settings.terraform.secrets_file)  # before anything is recorded
    source = validate_source(source)
    given = _parse_settings_options(settings_given)
    credential = check_credential(source, _read_credential(credential_stdin, credential_env))
    with open_warehouse(settings.warehouse).connect() as conn:
        connection = connect_source(
            conn, tenant_id, source, given, workspace=workspace, replace=replace
        )
        store_secret(settings.terraform.secrets_file, connection.key, credential)
        _write_tenants_tfvars(settings, conn)
    click.echo(
        f"connected {connection.key} (workspace {connection.workspace}); "
        f"tenants: {settings.terraform.tenants_file}; credential: {settings.terraform.secrets_file}"
        "\nnext: terraform plan/apply in terraform/environments/<env> (terraform/README.md)"
    )


@tenants.command("disconnect")
@click.argument("tenant_id")
@click.argument("source")
@_friendly_errors
def tenants_disconnect(tenant_id: str, source: str) -> None:
    """Disconnect SOURCE of TENANT_ID: its entry leaves the Terraform files; its data is kept."""
    from tenantpulse.tenants.connections import disconnect_source
    from tenantpulse.tenants.tfvars import remove_secret

    settings = _settings()
    with open_warehouse(settings.warehouse).connect() as conn:
        connection = disconnect_source(conn, tenant_id, source)
        remove_secret(settings.terraform.secrets_file, connection.key)
        _write_tenants_tfvars(settings, conn)
    click.echo(
        f"disconnected {connection.key}; terraform apply destroys its Airbyte source and "
        f"connection (data kept in schema user_{connection.tenant_id})"
    )


def _write_tenants_tfvars(settings: Settings, conn) -> None:
    from tenantpulse.tenants.connections import terraform_connections
    from tenantpulse.tenants.tfvars import write_tenants_tfvars

    write_tenants_tfvars(settings.terraform.tenants_file, terraform_connections(conn))


def _parse_settings_options(settings_given: tuple[str, ...]) -> dict[str, str]:
    from tenantpulse.tenants.source_settings import NOT_SHOWN, looks_like_name

    parsed: dict[str, str] = {}
    for item in settings_given:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            shown = repr(item) if looks_like_name(item) else NOT_SHOWN
            raise click.UsageError(f"--setting {shown} is not NAME=VALUE")
        parsed[name.strip()] = value
    return parsed


def _read_credential(from_stdin: bool, env_name: str | None) -> str:
    """The credential from stdin, a named environment variable, or a hidden prompt on a terminal;
    never from an argument, which would land in shell history and the process list."""
    if from_stdin and env_name:
        raise click.UsageError("give either --credential-stdin or --credential-env, not both")
    if env_name:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env_name):
            raise click.UsageError(f"--credential-env {env_name!r} is not a variable name")
        if env_name not in os.environ:
            raise click.UsageError(f"--credential-env: the variable {env_name} is not set")
        return os.environ[env_name]
    stdin = sys.stdin
    if from_stdin:
        return stdin.read()
    if stdin.isatty():
        return click.prompt("credential", hide_input=True, default="", show_default=False)
    raise click.UsageError(
        "no credential: pipe it with --credential-stdin or name a variable with --credential-env"
    )


@main.command()
@click.option("--tenant", "tenant_ids", multiple=True, help="Only these tenants (repeatable).")
@click.option(
    "--profile", default=None, help="Assign this simulator profile to the --tenant(s) first."
)
@click.option(
    "--bulk",
    is_flag=True,
    help="Bulk mode: tenants never simulated get one of a few template worlds of their profile "
    "(generated once, written under each tenant's id; see docs/simulator.md).",
)
@click.option(
    "--add-bulk-tenants",
    type=click.IntRange(1, 100_000),
    default=None,
    help="Register this many tenants bulk_00000, ... (the demo's six profile and source mixes in "
    "turn) first; implies --bulk.",
)
@click.option(
    "--templates",
    type=click.IntRange(1, 100),
    default=8,
    show_default=True,
    help="With --bulk: template worlds per profile.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes writing syncs on Postgres (DuckDB takes one writer).",
)
@_friendly_errors
def simulate(
    tenant_ids: tuple[str, ...],
    profile: str | None,
    bulk: bool,
    add_bulk_tenants: int | None,
    templates: int,
    workers: int,
) -> None:
    """Play Airbyte: write one new sync of every registered tenant's sources into user_<id>."""
    settings = _settings()
    warehouse = open_warehouse(settings.warehouse)
    if add_bulk_tenants:
        from tenantpulse.simulator.bulk import register_bulk_tenants

        with warehouse.connect() as conn:
            added = register_bulk_tenants(conn, add_bulk_tenants)
        click.echo(f"[simulate] {len(added)} bulk tenants registered")
        bulk = True
    chosen = _active_tenants(warehouse, tenant_ids)
    if profile:
        from tenantpulse.simulator.run import assign_profile

        if not tenant_ids:
            raise click.UsageError("--profile needs --tenant")
        with warehouse.connect() as conn:
            for tenant in chosen:
                assign_profile(conn, tenant.tenant_id, profile)
    if bulk:
        from tenantpulse.simulator.bulk import assign_templates

        with warehouse.connect() as conn:
            given = assign_templates(conn, chosen, templates)
        click.echo(f"[simulate] {given} tenants given a template world")
    _simulate(settings, chosen, workers)


@main.command()
@click.option("--tenant", "tenant_ids", multiple=True, help="Only these tenants (repeatable).")
@click.option(
    "--lookback-days",
    default=3,
    show_default=True,
    type=click.IntRange(1, 366),
    help="Daily marts rebuilt before the newest sync's day (all days on the first build).",
)
@click.option(
    "--until", default=None, help="Stop after this stage: land, dbt views, dbt daily marts, ..."
)
@_friendly_errors
def run(tenant_ids: tuple[str, ...], lookback_days: int, until: str | None) -> None:
    """Run the flow through the Dagster instance (DAGSTER_HOME) and wait for it: a land run for
    the active tenants (or the given ones), then each next stage launched by the daemon's
    flow_sensor. Starts a daemon for the flow's duration when `make dev` is not running."""
    from tenantpulse.flow_runs import dagster_instance, run_flow

    settings = _settings()
    stages = run_flow(
        settings,
        dagster_instance(settings),
        list(tenant_ids) or None,
        echo=click.echo,
        lookback_days=lookback_days,
        until=until,
    )
    if not all(s.success for s in stages):
        raise click.ClickException("the flow failed; see the stage above and the run in `make dev`")
    click.echo(f"[done] {len(stages)} stages")


@main.command()
@_friendly_errors
def demo() -> None:
    """Register the demo tenants, simulate a sync, run the flow and print a per-tenant summary."""
    from tenantpulse.flow_runs import dagster_instance, run_flow
    from tenantpulse.simulator.demo_tenants import DEMO_TENANTS
    from tenantpulse.simulator.run import assign_profile
    from tenantpulse.tenants.registry import add_tenant, ensure_registry, get_tenant

    started = time.monotonic()
    started_at = dt.datetime.now(dt.UTC)
    settings = _settings()
    warehouse = open_warehouse(settings.warehouse)
    click.echo(f"warehouse: {warehouse.describe()}\ndagster home: {settings.dagster_home}")
    with warehouse.connect() as conn:
        ensure_registry(conn)
        for demo_tenant in DEMO_TENANTS:
            if get_tenant(conn, demo_tenant.tenant_id) is None:
                add_tenant(conn, demo_tenant.tenant_id, demo_tenant.name, demo_tenant.sources)
                assign_profile(conn, demo_tenant.tenant_id, demo_tenant.profile)
    chosen = _active_tenants(warehouse, tuple(t.tenant_id for t in DEMO_TENANTS))
    syncs = []  # simulated while the flow's code server loads
    stages = run_flow(
        settings,
        dagster_instance(settings),
        [t.tenant_id for t in chosen],
        echo=click.echo,
        before_land=lambda: syncs.extend(_simulate(settings, chosen)),
    )
    _print_summary(warehouse, chosen, syncs)
    _print_actions(warehouse, settings, since=started_at)
    if not all(s.success for s in stages):
        raise click.ClickException("the flow failed; see the stage above and the run in `make dev`")
    click.echo(f"demo done in {time.monotonic() - started:.0f}s; `make dev` shows the runs")


@main.command()
@click.argument("tenant_id")
@click.option(
    "--date", "as_of", default=None, help="The day (YYYY-MM-DD); default: the newest analysed."
)
@_friendly_errors
def report(tenant_id: str, as_of: str | None) -> None:
    """Print TENANT_ID's analysis document (shared/METRICS.md) as JSON: health, churn risk,
    patterns, grounded insights, recommendations and which writer wrote them (generated_by)."""
    import datetime as dt

    import pandas as pd

    from tenantpulse.analysis.document import DOCUMENT_TABLES, analysis_document, document_json
    from tenantpulse.analysis.tables import read_days
    from tenantpulse.tenants.ids import validate_tenant_id

    tenant_id = validate_tenant_id(tenant_id)
    day = dt.date.fromisoformat(as_of) if as_of else None
    with open_warehouse(_settings().warehouse).connect() as conn:
        health = read_days(conn, "health_scores", tenant_id, day)
        if health.empty:
            raise click.ClickException(
                f"no analysis of {tenant_id} for {as_of or 'any day'}: run `tenantpulse run` first"
            )
        day = pd.Timestamp(health["as_of"].iloc[0]).date()  # every table of that same day
        tables = {name: read_days(conn, name, tenant_id, day) for name in DOCUMENT_TABLES}
    click.echo(document_json(analysis_document(tenant_id, day, tables)))


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
@_friendly_errors
def dbt(dbt_args: tuple[str, ...]) -> None:
    """Run dbt in dbt_project/ on the configured warehouse, e.g. `tenantpulse dbt build -s staging`.
    dbt's files (manifest, run results, docs) go to dbt_project/target/<dialect>/cli/."""
    from tenantpulse.transform.dbt_cli import run_dbt, target_path

    settings = _settings()
    cli_target = target_path(settings.warehouse, settings.dbt_project_dir) / "cli"
    done = run_dbt(settings, list(dbt_args) or ["--help"], target_dir=cli_target)
    sys.exit(done.returncode)


@main.command()
@click.option("--port", default=3000, show_default=True)
def dev(port: int) -> None:
    """Start the Dagster UI and daemon on this DAGSTER_HOME: the daemon runs the flow by itself
    (new syncs, the daily schedule) while the UI shows it."""
    from tenantpulse.config import child_environment
    from tenantpulse.flow_runs import dagster_command, dagster_instance, workspace_file

    settings = _settings()
    dagster_instance(settings)  # writes dagster.yaml on first use
    dg = dagster_command("dg")
    args = [dg, "dev", "-w", str(workspace_file(settings)), "--port", str(port)]
    os.execve(dg, args, child_environment(settings))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@_friendly_errors
def serve(host: str, port: int) -> None:
    """Start the tenants' web app (sign-in, dashboards, API; docs/web.md)."""
    from tenantpulse.web.app import serve as serve_app

    serve_app(_settings(), host, port)


@main.command("connect-demo")
@click.option("--port", default=8000, show_default=True, help="The web app's port.")
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="The demo's folder, wiped at each start (default: connect-demo/ in TENANTPULSE_HOME).",
)
@_friendly_errors
def connect_demo(port: int, home: Path | None) -> None:
    """Connect a source end to end on 127.0.0.1: stand-ins for the OAuth provider and Airbyte,
    a Dagster daemon and the web app; prints a demo tenant's sign-in link (docs/connect.md)."""
    from tenantpulse.standins.connect_demo import run_connect_demo

    run_connect_demo(home or _settings().home / "connect-demo", port, os.environ, click.echo)


@main.group()
def web() -> None:
    """Sign-in links, API tokens and the Postgres roles of the web app (docs/web.md)."""


@web.command("token")
@click.argument("tenant_id")
@click.option("--user", default="demo@example.com", show_default=True)
@click.option("--minutes", default=10.0, show_default=True, help="How long the link is valid.")
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True)
@_friendly_errors
def web_token(tenant_id: str, user: str, minutes: float, base_url: str) -> None:
    """Print a sign-in URL for one of TENANT_ID's users (what the operator's app would give)."""
    from tenantpulse.web.settings import load_web_settings
    from tenantpulse.web.signin import signin_token

    token = signin_token(load_web_settings(_settings()).signing_key, tenant_id, user, minutes)
    click.echo(f"{base_url.rstrip('/')}/signin?token={token}")


@web.command("api-token")
@click.argument("tenant_id")
@_friendly_errors
def web_api_token(tenant_id: str) -> None:
    """Create an API token for TENANT_ID only; printed once, only its hash is stored."""
    from tenantpulse.web.api_tokens import create_api_token

    with open_warehouse(_settings().warehouse).connect() as conn:
        click.echo(create_api_token(conn, tenant_id))


@web.command("setup-roles")
@_friendly_errors
def web_setup_roles() -> None:
    """Postgres: create the web app's role and the row-level-security policies it reads through."""
    from tenantpulse.web.roles import setup_roles
    from tenantpulse.web.settings import WEB_ROLE

    with open_warehouse(_settings().warehouse).connect() as conn:
        tables = setup_roles(conn)
    click.echo(f"role {WEB_ROLE}: reads {len(tables)} tables through row-level security")


@main.group()
def connect() -> None:
    """The token vault and refresher of the Connect service (docs/connect.md)."""


@connect.command("new-key")
def connect_new_key() -> None:
    """Print a new vault key: put it first in TENANTPULSE_VAULT_KEYS, then run rotate-keys."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@connect.command("rotate-keys")
@_friendly_errors
def connect_rotate_keys() -> None:
    """Re-encrypt every stored token under the newest key of TENANTPULSE_VAULT_KEYS."""
    from tenantpulse.config import load_connect_settings
    from tenantpulse.connect.vault import Vault, VaultError, rotate_keys

    settings = _settings()
    try:
        vault = Vault(load_connect_settings(settings.source_variables).vault_keys)
        with open_warehouse(settings.warehouse).connect() as conn:
            count = rotate_keys(conn, vault)
    except VaultError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"re-encrypted {count} connection token(s) under the newest key; the other keys can "
        "now be removed from TENANTPULSE_VAULT_KEYS"
    )


@connect.command("refresh")
@_friendly_errors
def connect_refresh() -> None:
    """Refresh the due tokens now (token_refresh_sensor does it every minute under `make dev`)."""
    from tenantpulse.config import load_connect_settings
    from tenantpulse.connect.refresher import refresh_due
    from tenantpulse.connect.vault import Vault, VaultError

    settings = _settings()
    connect_settings = load_connect_settings(settings.source_variables)
    try:
        vault = Vault(connect_settings.vault_keys)
    except VaultError as error:
        raise click.ClickException(str(error)) from error
    outcomes = refresh_due(open_warehouse(settings.warehouse), vault, connect_settings)
    for outcome in outcomes:
        click.echo(f"{outcome.tenant_id} {outcome.provider}: {outcome.result}: {outcome.detail}")
    click.echo(f"{len(outcomes)} connection(s) were due")


@connect.command("status")
@click.argument("tenant_id", required=False)
@_friendly_errors
def connect_status(tenant_id: str | None) -> None:
    """Each vault connection's status, next refresh and last error (never a token)."""
    from tenantpulse.connect.vault import list_states

    with open_warehouse(_settings().warehouse).connect() as conn:
        states = list_states(conn, tenant_id)
    for s in states:
        due = f"{s.next_refresh_at:%Y-%m-%d %H:%M}Z" if s.next_refresh_at else "-"
        click.echo(f"{s.tenant_id} {s.provider} {s.status} next refresh {due} {s.last_error or ''}")
    if not states:
        click.echo("no connection in the vault")


def _active_tenants(warehouse, tenant_ids: tuple[str, ...]):
    from tenantpulse.tenants.ids import validate_tenant_id
    from tenantpulse.tenants.registry import list_tenants

    with warehouse.connect() as conn:
        active = {t.tenant_id: t for t in list_tenants(conn)}
    if not tenant_ids:
        return list(active.values())
    unknown = [t for t in map(validate_tenant_id, tenant_ids) if t not in active]
    if unknown:
        raise click.ClickException(f"not active tenants: {', '.join(unknown)}")
    return [active[t] for t in tenant_ids]


def _simulate(settings: Settings, chosen, workers: int = 1):
    from tenantpulse.simulator.run import run_simulation

    syncs = run_simulation(
        open_warehouse(settings.warehouse), chosen, settings.simulator, workers=workers
    )
    failed = [s for s in syncs if s.error]
    click.echo(
        f"[simulate] {len(syncs) - len(failed)} syncs, "
        f"{sum(s.records for s in syncs):,} records written to user_<tenant> schemas"
    )
    for sync in failed:
        click.echo(f"[simulate] FAILED {sync.tenant_id}/{sync.source}: {sync.error}", err=True)
    if failed:
        raise click.ClickException(
            f"{len(failed)} simulated syncs failed (recorded in ops.airbyte_sync_history)"
        )
    return syncs


def _print_summary(warehouse, chosen, syncs) -> None:
    from tenantpulse.landing.merge import landed_rows_by_tenant
    from tenantpulse.simulator.run import profile_of
    from tenantpulse.sources.contracts import STREAMS

    with warehouse.connect() as conn:
        landed = landed_rows_by_tenant(conn, STREAMS)
        quarantined = (
            dict(
                conn.fetch_all(
                    "select tenant_id, count(*) from landing.quarantine group by tenant_id"
                )
            )
            if conn.table_exists("landing", "quarantine")
            else {}
        )
        profiles = {t.tenant_id: profile_of(conn, t.tenant_id) for t in chosen}
        dashboard = {
            row[0]: row[1:]
            for row in (
                conn.fetch_all(
                    "select tenant_id, currency, mrr, revenue_30d from analytics.user_dashboard_summary"
                )
                if conn.table_exists("analytics", "user_dashboard_summary")
                else []
            )
        }
    synced = {}
    for sync in syncs:
        synced[sync.tenant_id] = synced.get(sync.tenant_id, 0) + sync.records
    click.echo(
        f"\n{'tenant':<18} {'profile':<14} {'sources':<40} {'synced':>8} {'landed':>8} "
        f"{'quarantined':>11} {'MRR':>14} {'revenue 30d':>14}"
    )
    for t in chosen:
        currency, mrr, revenue_30d = dashboard.get(t.tenant_id, ("", None, None))
        click.echo(
            f"{t.tenant_id:<18} {profiles[t.tenant_id]:<14} {','.join(t.sources):<40} "
            f"{synced.get(t.tenant_id, 0):>8,} {landed.get(t.tenant_id, 0):>8,} "
            f"{quarantined.get(t.tenant_id, 0):>11,} {_money(mrr, currency):>14} "
            f"{_money(revenue_30d, currency):>14}"
        )


def _print_actions(warehouse, settings: Settings, since: dt.datetime) -> None:
    from tenantpulse.actions.action_log import actions_on, newest_tenant_action_day

    with warehouse.connect() as conn:
        day = newest_tenant_action_day(conn)
        logged = [a for a in actions_on(conn, day) if a.key.tenant_id] if day else []
    dry_run = " (dry run: nothing sent)" if settings.actions.dry_run else ""
    click.echo(f"\n[actions] playbooks in {settings.actions.playbooks_path.name}{dry_run}")
    if not logged:
        click.echo("  no playbook has fired")
    for a in logged:
        when = "now" if a.created_at >= since else f"earlier ({a.created_at:%Y-%m-%d %H:%M})"
        message = a.payload.get("message") or "; ".join(a.payload.get("reasons", []))
        click.echo(
            f"  {a.key.as_of} {a.key.tenant_id:<16} {a.key.playbook}/{a.key.action:<24} "
            f"via {a.handler}: {a.status}, fired {when}. {message}"
        )


def _money(amount, currency: str) -> str:
    return "-" if amount is None else f"{float(amount):,.0f} {currency.upper()}"


if __name__ == "__main__":
    main()
