"""The connect service's Dagster wiring: the sensor that runs the token refresher and alerts
when a tenant must reconnect (connect/refresher.py holds the logic), and, in Airbyte mode, the
sensor that provisions newly connected sources in Airbyte and starts their first sync
(connect/provision.py)."""

import datetime as dt

import dagster as dg
from dagster_airbyte import AirbyteWorkspace

from tenantpulse.actions.alerts import send_alert
from tenantpulse.actions.handlers import build_handlers
from tenantpulse.actions.playbooks import load_playbooks
from tenantpulse.config import Settings, SettingsError, load_connect_settings
from tenantpulse.connect import refresher, revocation
from tenantpulse.connect.provision import (
    FAILED,
    PROVISIONED,
    REMOVED,
    ProvisionError,
    load_target,
    provision_due,
)
from tenantpulse.connect.refresher import refresh_due
from tenantpulse.connect.revocation import revoke_due
from tenantpulse.connect.vault import RECONNECT_REQUIRED, Vault
from tenantpulse.defs.flow import warehouse_in_use
from tenantpulse.warehouse import WarehouseBusyError, open_warehouse

TICK_SECONDS = 40.0  # of refreshing per tick, under Dagster's 60 s sensor timeout
REVOKE_SECONDS = 10.0  # then of revoking disconnected connections' tokens
WARNINGS = {refresher.FAILED, RECONNECT_REQUIRED, revocation.FAILED, revocation.ABANDONED}


def build_connect_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    @dg.sensor(
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Refreshes the tokens tenantpulse keeps alive (Shopify's 1 h tokens), one "
        "connection at a time; a revoked grant marks the connection reconnect_required, pauses "
        "its syncs and alerts through the playbook file's `alerts.stale_data` actions. Retries "
        "revoking disconnected connections' tokens at their provider.",
    )
    def token_refresh_sensor(context: dg.SensorEvaluationContext):
        """Refreshes due tokens; alerts for each connection the provider revoked."""
        connect = load_connect_settings()
        if not connect.vault_keys:
            return dg.SkipReason("TENANTPULSE_VAULT_KEYS is not set: no token vault")
        if warehouse_in_use(settings.warehouse.dialect, context.instance):
            return dg.SkipReason("a run is using the DuckDB warehouse; will refresh after it")
        warehouse = open_warehouse(settings.warehouse)
        vault = Vault(connect.vault_keys)
        try:
            outcomes = refresh_due(warehouse, vault, connect, seconds=TICK_SECONDS)
            revocations = revoke_due(warehouse, vault, connect, seconds=REVOKE_SECONDS)
        except WarehouseBusyError as busy:
            return dg.SkipReason(f"warehouse busy, will retry: {busy}")
        for outcome in [*outcomes, *revocations]:
            log = context.log.warning if outcome.result in WARNINGS else context.log.info
            log(f"{outcome.tenant_id} {outcome.provider}: {outcome.result}: {outcome.detail}")
        revoked = [o for o in outcomes if o.result == RECONNECT_REQUIRED]
        rule = load_playbooks(settings.actions.playbooks_path).stale_data
        if revoked and rule.actions:
            handlers = build_handlers(settings.actions, {a.handler for a in rule.actions})
            for outcome in revoked:
                send_alert(
                    warehouse,
                    rule,
                    RECONNECT_REQUIRED,
                    tenant_id=outcome.tenant_id,
                    day=dt.datetime.now(dt.UTC).date(),
                    subject=outcome.provider,
                    message=f"{outcome.tenant_id}: the {outcome.provider} connection was "
                    "revoked; its syncs are paused until the tenant reconnects it",
                    details={"provider": outcome.provider},
                    handlers=handlers,
                    dry_run=settings.actions.dry_run,
                )
        if not outcomes and not revocations:
            return dg.SkipReason("none due")
        return dg.SkipReason(
            f"{len(outcomes)} connection(s) refreshed or tried: {_counts(outcomes)}"
            + (f"; revocations: {_counts(revocations)}" if revocations else "")
        )

    if settings.airbyte is None:
        return [token_refresh_sensor]
    return [token_refresh_sensor, build_provision_sensor(settings)]


def build_provision_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Creates the Airbyte source and connection of each newly connected source "
        "(or updates the source's credential after a reconnect) and starts its first sync; the "
        "jobs sensor and new_syncs_sensor take it from there. Deletes the Airbyte source of a "
        "disconnected one. Failures back off.",
    )
    def airbyte_provision_sensor(
        context: dg.SensorEvaluationContext, airbyte_workspace: AirbyteWorkspace
    ):
        """Provisions the connections tenants completed on the Connect pages, in batches."""
        connect = load_connect_settings()
        if not connect.vault_keys:
            return dg.SkipReason("TENANTPULSE_VAULT_KEYS is not set: no token vault")
        try:
            target = load_target(settings.airbyte)
        except SettingsError as error:
            return dg.SkipReason(f"connections are not provisioned: {error}")
        if warehouse_in_use(settings.warehouse.dialect, context.instance):
            return dg.SkipReason("a run is using the DuckDB warehouse; will provision after it")
        try:
            outcomes = provision_due(
                open_warehouse(settings.warehouse),
                Vault(connect.vault_keys),
                connect,
                airbyte_workspace.get_client(),
                target,
                seconds=TICK_SECONDS,
            )
        except (WarehouseBusyError, ProvisionError) as error:
            return dg.SkipReason(f"will retry: {error}")
        for outcome in outcomes:
            log = context.log.warning if outcome.result == FAILED else context.log.info
            log(f"{outcome.tenant_id} {outcome.provider}: {outcome.result}: {outcome.detail}")
        counts = [sum(o.result == r for o in outcomes) for r in (PROVISIONED, REMOVED, FAILED)]
        return dg.SkipReason(
            "{} provisioned, {} removed, {} failed (retried later)".format(*counts)
            if outcomes
            else "nothing to provision"
        )

    return airbyte_provision_sensor


def _counts(outcomes) -> dict[str, int]:
    return {r: sum(o.result == r for o in outcomes) for r in sorted({o.result for o in outcomes})}
