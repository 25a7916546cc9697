"""Acting on one analysed day: evaluate the playbooks for each tenant, record what fires in the
ledger, then send what the ledger says is not yet done. The sensor, the `act` asset and the demo
all come here."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tenantpulse.actions.action_log import (
    TO_SEND,
    ActionKey,
    LoggedAction,
    actions_on,
    ensure_action_log,
    mark_done,
    mark_failed,
    recent_firings,
    record,
)
from tenantpulse.actions.handlers import ActionRequest, Handler
from tenantpulse.actions.playbooks import ActionSpec, Firing, PlaybookFile, evaluate, render_message
from tenantpulse.analysis.document import DOCUMENT_TABLES, analysis_document
from tenantpulse.analysis.tables import read_days
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import Connection, Warehouse

ROUTING_PARAMS = ("url", "channel", "message")  # how to deliver, not what the receiver acts on


@dataclass(frozen=True)
class PlannedAction:
    key: ActionKey
    handler: str
    payload: dict


@dataclass
class ActReport:
    as_of: dt.date
    dry_run: bool
    tenants_evaluated: int = 0
    planned: list[PlannedAction] = field(default_factory=list)  # conditions hold, not cooling down
    held_back: list[ActionKey] = field(default_factory=list)  # fired on a nearby day (cooldown)
    sent: list[ActionKey] = field(default_factory=list)
    failed: list[tuple[ActionKey, str]] = field(default_factory=list)
    evaluation_seconds: float = 0.0


def analysis_documents(
    conn: Connection, as_of: dt.date, tenant_ids: list[str] | None = None
) -> list[dict]:
    """The analysis document of every active tenant (or of `tenant_ids`) analysed on `as_of`."""
    tables = {name: read_days(conn, name, None, as_of) for name in DOCUMENT_TABLES}
    # Split each table by tenant once: filtering per tenant would be tenants x rows.
    by_tenant = {
        name: {} if frame.empty else dict(tuple(frame.groupby("tenant_id")))
        for name, frame in tables.items()
    }
    analysed = set().union(*by_tenant.values())
    active = {t.tenant_id for t in list_tenants(conn)}
    chosen = sorted(analysed & active & (set(tenant_ids) if tenant_ids is not None else active))
    no_rows = {name: frame.iloc[0:0] for name, frame in tables.items()}
    return [
        analysis_document(
            tenant, as_of, {name: by_tenant[name].get(tenant, no_rows[name]) for name in tables}
        )
        for tenant in chosen
    ]


def plan_actions(
    playbook_file: PlaybookFile,
    documents: list[dict],
    recent: dict[tuple[str, str, str], set[dt.date]],
) -> tuple[list[PlannedAction], list[ActionKey]]:
    """(actions to record, actions a playbook's cooldown holds back) for these documents;
    `recent` is action_log.recent_firings."""
    planned, held_back = [], []
    for document in documents:
        for firing in evaluate(playbook_file, document):
            key = ActionKey(
                firing.tenant_id, firing.playbook.name, firing.action.name, firing.as_of
            )
            nearby = recent.get((key.tenant_id, key.playbook, key.action), set())
            if any(abs((day - key.as_of).days) < firing.playbook.cooldown_days for day in nearby):
                held_back.append(key)
            else:
                planned.append(
                    PlannedAction(key, firing.action.handler, action_payload(firing, document))
                )
    return planned, held_back


def action_payload(firing: Firing, document: dict) -> dict:
    """The JSON body a receiver gets: who, what, with which parameters, and why."""
    key = ActionKey(firing.tenant_id, firing.playbook.name, firing.action.name, firing.as_of)
    values = {
        "tenant_id": firing.tenant_id,
        "as_of": firing.as_of.isoformat(),
        "playbook": firing.playbook.name,
        "action": firing.action.name,
        "health_score": document.get("health_score"),
        "churn_risk": document.get("churn_risk"),
        "churn_probability": document.get("churn_probability"),
        "reasons": "; ".join(firing.reasons),
    }
    template = firing.action.params.get("message")
    return {
        **{k: values[k] for k in ("tenant_id", "as_of", "playbook", "action")},
        "idempotency_key": key.idempotency_key(),
        "params": {k: v for k, v in firing.action.params.items() if k not in ROUTING_PARAMS},
        "message": render_message(template, values) if template else None,
        "reasons": list(firing.reasons),
        "analysis": {k: values[k] for k in ("health_score", "churn_risk", "churn_probability")},
    }


def act_on_day(
    warehouse: Warehouse,
    playbook_file: PlaybookFile,
    handlers: dict[str, Handler],
    as_of: dt.date,
    tenant_ids: list[str] | None = None,
    dry_run: bool = False,
) -> ActReport:
    """Evaluate, record (committed before anything is sent), then deliver the day's outstanding
    actions of these playbooks: the new ones and any left pending or failed by an earlier run."""
    report = ActReport(as_of, dry_run)
    with warehouse.connect() as conn:
        ensure_action_log(conn)
        started = time.perf_counter()
        documents = analysis_documents(conn, as_of, tenant_ids)
        cooldown = max((p.cooldown_days for p in playbook_file.playbooks), default=0)
        report.planned, report.held_back = plan_actions(
            playbook_file, documents, recent_firings(conn, as_of, cooldown)
        )
        report.evaluation_seconds = time.perf_counter() - started
        report.tenants_evaluated = len(documents)
        for action in report.planned:
            record(conn, action.key, action.handler, action.payload, dry_run=dry_run)
        if dry_run:
            return report
        names = tuple(p.name for p in playbook_file.playbooks)
        outstanding = actions_on(conn, as_of, TO_SEND, tenant_ids, names)
        specs = {(p.name, a.name): a for p in playbook_file.playbooks for a in p.actions}
        report.sent, report.failed = deliver(conn, outstanding, specs.get, handlers)
    return report


def deliver(
    conn: Connection,
    logged: list[LoggedAction],
    spec_of: Callable[[tuple[str, str]], ActionSpec | None],
    handlers: dict[str, Handler],
) -> tuple[list[ActionKey], list[tuple[ActionKey, str]]]:
    """Commit what the connection has done (the `pending` rows), then send each logged action
    through its handler and commit its outcome before sending the next."""
    conn.commit()
    sent, failed = [], []
    for action in logged:
        spec = spec_of((action.key.playbook, action.key.action))
        try:
            if spec is None:
                raise LookupError("the action is no longer in the playbook file")
            body = json.dumps(action.payload, sort_keys=True, allow_nan=False).encode()
            receipt = handlers[spec.handler].send(ActionRequest(action.key, spec.params, body))
        except Exception as error:  # noqa: BLE001 (recorded in the ledger, retried next run)
            mark_failed(conn, action.key, f"{type(error).__name__}: {error}")
            failed.append((action.key, str(error)))
        else:
            mark_done(conn, action.key, receipt)
            sent.append(action.key)
        conn.commit()
    return sent, failed


def day_to_act_on(analysed_days: list[str], newest_landed: dt.date | None) -> dt.date | None:
    """Actions are for the present: the newest analysed day, but not one after the newest data
    (the analysis of a day with no new data repeats the day before)."""
    days = sorted(dt.date.fromisoformat(d) for d in analysed_days)
    if newest_landed is not None:
        days = [d for d in days if d <= newest_landed]
    return days[-1] if days else None
