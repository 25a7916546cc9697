"""Alerts about the platform itself (a failed run, a tenant whose data stopped arriving), sent
through the same handlers and the same ledger as the playbooks' actions, so each is sent once."""

from __future__ import annotations

import datetime as dt

from tenantpulse.actions.action_log import (
    UNFINISHED,
    ActionKey,
    actions_on,
    ensure_action_log,
    record,
)
from tenantpulse.actions.execute import deliver
from tenantpulse.actions.handlers import Handler
from tenantpulse.actions.playbooks import AlertRule
from tenantpulse.sources.sync_history import (
    SIMULATED_CONNECTIONS,
    SUCCEEDED,
    ensure_sync_history,
)
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import Connection, Warehouse

RUN_FAILURE, STALE_DATA = "run_failure", "stale_data"
LANDING_FAILED = "landing_failed"  # sent through the run_failure rule: a run that failed a tenant


def stale_tenants(
    conn: Connection, now: dt.datetime, max_age_hours: float
) -> list[tuple[str, dt.datetime | None]]:
    """(tenant, newest successful sync or None) for the active tenants with no successful sync in
    the last `max_age_hours` (a tenant registered more recently than that is not stale yet).

    A simulated tenant lives in the simulation's time, whose clock is the newest simulated sync
    (a simulation may be dated in the past): it is stale when its own successful syncs, or its
    first sync when none succeeded, fall that far behind. Every other tenant is measured against
    `now`."""
    ensure_sync_history(conn)
    age = dt.timedelta(hours=max_age_hours)
    synced = {
        tenant_id: (newest, simulated, first)
        for tenant_id, newest, simulated, first in conn.fetch_all(
            "select tenant_id, max(finished_at) filter (where status = %s),"
            " bool_and(connection_id like %s), min(finished_at)"
            " from ops.airbyte_sync_history group by tenant_id",
            (SUCCEEDED, SIMULATED_CONNECTIONS),
        )
    }
    [simulation_clock] = conn.fetch_one(
        "select max(finished_at) from ops.airbyte_sync_history where connection_id like %s",
        (SIMULATED_CONNECTIONS,),
    )
    stale = []
    for tenant in list_tenants(conn):
        newest, simulated, first = synced.get(tenant.tenant_id, (None, False, None))
        since, clock = (first, simulation_clock) if simulated else (tenant.created_at, now)
        if (newest or since) < clock - age:
            stale.append((tenant.tenant_id, newest))
    return stale


def send_alert(
    warehouse: Warehouse,
    rule: AlertRule,
    kind: str,
    tenant_id: str,
    day: dt.date,
    subject: str,
    message: str,
    details: dict,
    handlers: dict[str, Handler],
    dry_run: bool = False,
) -> tuple[list[ActionKey], list[tuple[ActionKey, str]]]:
    """Record and send each of the rule's actions for this alert unless already done; returns
    (sent, failed)."""
    keys = [ActionKey(tenant_id, kind, action.name, day, subject) for action in rule.actions]
    with warehouse.connect() as conn:
        ensure_action_log(conn)
        for key in keys:
            payload = {
                "tenant_id": tenant_id,
                "as_of": day.isoformat(),
                "playbook": kind,
                "action": key.action,
                "idempotency_key": key.idempotency_key(),
                "message": message,
                "details": details,
            }
            record(conn, key, _handler_of(rule, key.action), payload, dry_run=dry_run)
        if dry_run:
            return [], []
        outstanding = [
            logged
            for logged in actions_on(conn, day, UNFINISHED, [tenant_id], (kind,))
            if logged.key in keys
        ]
        specs = {(kind, a.name): a for a in rule.actions}
        return deliver(conn, outstanding, specs.get, handlers)


def _handler_of(rule: AlertRule, action: str) -> str:
    return next(a.handler for a in rule.actions if a.name == action)
