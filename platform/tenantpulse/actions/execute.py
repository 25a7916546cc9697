"""Acting on one analysed day: evaluate the playbooks for each tenant, record what fires in the
ledger, then send what the ledger says is not yet done, that day's and the earlier days'. The
sensor, the `act` asset and the demo all come here.

One rule over the whole ledger, for new firings and for retries alike: within a playbook's
cooldown, a tenant gets an action once. A row of another day less than `cooldown_days` away holds
a new firing back whatever its state (sent, given up, or still unfinished: it is retried under its
own key instead); an unfinished row is sent again, under its own key, by the run for any day up to
its cooldown's end, unless a row of another day within the cooldown was sent or given up, or fired
earlier. What can no longer be sent becomes `gave_up`, and the run says so.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from tenantpulse.actions.action_log import (
    CLAIM_LEASE,
    GAVE_UP,
    MAX_DELIVERIES,
    SETTLED,
    UNFINISHED,
    ActionKey,
    LoggedAction,
    actions_between,
    claim,
    ensure_action_log,
    give_up,
    lock_ledger,
    mark_done,
    mark_failed,
    recent_firings,
    record,
)
from tenantpulse.actions.evaluations import (
    evaluated,
    evaluation_keys,
    playbooks_hash,
    record_evaluations,
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
    retried: list[ActionKey] = field(default_factory=list)  # earlier days' unfinished, taken up
    sent: list[ActionKey] = field(default_factory=list)
    failed: list[tuple[ActionKey, str]] = field(default_factory=list)  # this run's failed sends
    gave_up: list[LoggedAction] = field(default_factory=list)  # in this run; why is in .error
    unfinished: list[LoggedAction] = field(
        default_factory=list
    )  # still pending or failed at the end
    evaluation_seconds: float = 0.0
    tenants_unchanged: int = 0  # analysis and playbooks as when last evaluated: not evaluated again

    @property
    def clean(self) -> bool:
        """Everything this run was to send is done: nothing left unfinished or given up."""
        return not self.unfinished and not self.gave_up


def analysis_documents(
    conn: Connection, as_of: dt.date, tenant_ids: list[str] | None = None
) -> list[dict]:
    """The analysis document of every active tenant (or of `tenant_ids`) analysed on `as_of`."""
    tables = {name: read_days(conn, name, None, as_of) for name in DOCUMENT_TABLES}
    # Split each table into its rows by tenant once: filtering per tenant would be tenants x rows,
    # and a small frame per tenant costs pandas' fixed overhead on every read.
    by_tenant: dict[str, dict[str, list[dict]]] = {name: {} for name in tables}
    for name, frame in tables.items():
        for row in [] if frame.empty else frame.to_dict(orient="records"):
            by_tenant[name].setdefault(row["tenant_id"], []).append(row)
    analysed = set().union(*by_tenant.values())
    active = {t.tenant_id for t in list_tenants(conn)}
    chosen = sorted(analysed & active & (set(tenant_ids) if tenant_ids is not None else active))
    return [
        analysis_document(tenant, as_of, {name: by_tenant[name].get(tenant, []) for name in tables})
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
    claimer: str | None = None,
) -> ActReport:
    """Evaluate, record (committed before anything is sent), then deliver the outstanding actions
    of these playbooks for the active tenants (or `tenant_ids`): the day's new ones and any that an
    earlier run for this day or an earlier one left pending or failed. Without `tenant_ids`, a
    tenant whose analysis of the day and the playbooks are what a real run last evaluated them on
    is not evaluated again (actions.evaluations). `claimer` names this run in the claims (default:
    the process and a random suffix)."""
    report = ActReport(as_of, dry_run)
    with warehouse.connect() as conn:
        ensure_action_log(conn)
        lock_ledger(conn)  # until the new rows are committed
        started = time.perf_counter()
        keys = evaluation_keys(conn, as_of, playbooks_hash(playbook_file))
        chosen = tenant_ids
        if tenant_ids is None:
            active = {t.tenant_id for t in list_tenants(conn)}
            last = evaluated(conn, as_of)
            current = {t for t in active if t in keys and last.get(t) == keys[t]}
            chosen, report.tenants_unchanged = sorted(active - current), len(current)
        documents = analysis_documents(conn, as_of, chosen)
        cooldowns = {p.name: p.cooldown_days for p in playbook_file.playbooks}
        widest = max(cooldowns.values(), default=0)
        report.planned, report.held_back = plan_actions(
            playbook_file, documents, recent_firings(conn, as_of, widest)
        )
        report.evaluation_seconds = time.perf_counter() - started
        report.tenants_evaluated = len(documents)
        for action in report.planned:
            record(conn, action.key, action.handler, action.payload, dry_run=dry_run)
        if dry_run:
            return report
        documented = {d["user_id"] for d in documents}
        record_evaluations(conn, as_of, {t: k for t, k in keys.items() if t in documented})
        conn.commit()
        active = {t.tenant_id for t in list_tenants(conn)}
        tenants = sorted(active & set(tenant_ids) if tenant_ids is not None else active)
        names = tuple(cooldowns)
        unfinished = actions_between(conn, None, as_of, UNFINISHED, tenants, names)
        # The rows a retry's cooldown is checked against: within the widest cooldown of any of them.
        nearby = actions_between(
            conn,
            as_of - dt.timedelta(days=2 * widest),
            as_of + dt.timedelta(days=widest),
            UNFINISHED + SETTLED,
            tenants,
            names,
        )
        to_send, to_give_up = retry_plan(unfinished, nearby, as_of, cooldowns)
        for action, reason in to_give_up:
            give_up(conn, action.key, reason)
        specs = {(p.name, a.name): a for p in playbook_file.playbooks for a in p.actions}
        report.retried = [a.key for a in to_send if a.key.as_of < as_of]
        report.sent, report.failed = deliver(conn, to_send, specs.get, handlers, claimer)
        taken_up = {a.key for a in unfinished}
        first = min((k.as_of for k in taken_up), default=as_of)
        for action in actions_between(conn, first, as_of, (*UNFINISHED, GAVE_UP), tenants, names):
            if action.key in taken_up:
                (report.gave_up if action.status == GAVE_UP else report.unfinished).append(action)
    return report


def retry_plan(
    unfinished: list[LoggedAction],
    nearby: list[LoggedAction],
    as_of: dt.date,
    cooldowns: dict[str, int],
) -> tuple[list[LoggedAction], list[tuple[LoggedAction, str]]]:
    """(the unfinished actions of days up to `as_of` to send now, earliest first; those to give up,
    with why). `nearby` holds the ledger's other rows around them (not dry runs)."""
    by_action: dict[tuple[str, str, str], list[LoggedAction]] = {}
    for row in nearby:
        by_action.setdefault(_triple(row.key), []).append(row)
    send, abandon = [], []
    for row in sorted(unfinished, key=lambda r: (r.key.as_of, _triple(r.key))):
        cooldown = cooldowns[row.key.playbook]
        window = max(cooldown, 1)  # a playbook without a cooldown still retries on its own day
        first = next(
            (
                other
                for other in by_action.get(_triple(row.key), [])
                if other.key.as_of != row.key.as_of
                and abs((other.key.as_of - row.key.as_of).days) < cooldown
                and (other.status in SETTLED or other.key.as_of < row.key.as_of)
            ),
            None,
        )
        if (as_of - row.key.as_of).days >= window:
            reason = f"not delivered within {window} day(s) of {row.key.as_of} (the cooldown)"
        elif row.attempts >= MAX_DELIVERIES:
            last = row.error or "no outcome recorded (the run stopped while sending)"
            reason = f"gave up after {row.attempts} delivery attempts; last: {last}"
        elif first is not None:
            reason = (
                f"superseded: the same action of {first.key.as_of} is {first.status}, "
                f"within the {cooldown}-day cooldown"
            )
        else:
            send.append(row)
            continue
        abandon.append((row, reason))
    return send, abandon


def deliver(
    conn: Connection,
    logged: list[LoggedAction],
    spec_of: Callable[[tuple[str, str]], ActionSpec | None],
    handlers: dict[str, Handler],
    claimer: str | None = None,
    lease: dt.timedelta = CLAIM_LEASE,
) -> tuple[list[ActionKey], list[tuple[ActionKey, str]]]:
    """Commit what the connection has done (the `pending` rows), then claim each logged action,
    send it through its handler and commit its outcome before the next. An action another run
    holds (or has finished meanwhile) is skipped."""
    claimer = claimer or f"pid {os.getpid()} {uuid.uuid4().hex[:8]}"
    conn.commit()
    sent, failed = [], []
    for action in logged:
        attempts = claim(conn, action.key, claimer, lease)
        conn.commit()
        if attempts is None:
            continue
        spec = spec_of((action.key.playbook, action.key.action))
        try:
            if spec is None:
                raise LookupError("the action is no longer in the playbook file")
            body = json.dumps(action.payload, sort_keys=True, allow_nan=False).encode()
            receipt = handlers[spec.handler].send(ActionRequest(action.key, spec.params, body))
        except Exception as error:  # noqa: BLE001 (recorded in the ledger, retried next run)
            message = f"{type(error).__name__}: {error}"
            final = attempts >= MAX_DELIVERIES
            if final:
                message = f"gave up after {attempts} delivery attempts; last: {message}"
            mark_failed(conn, action.key, message, final)
            failed.append((action.key, str(error)))
        else:
            mark_done(conn, action.key, receipt)
            sent.append(action.key)
        conn.commit()
    return sent, failed


def _triple(key: ActionKey) -> tuple[str, str, str]:
    return (key.tenant_id, key.playbook, key.action)


def day_to_act_on(analysed_days: list[str], newest_landed: dt.date | None) -> dt.date | None:
    """Actions are for the present: the newest analysed day, but not one after the newest data
    (the analysis of a day with no new data repeats the day before)."""
    days = sorted(dt.date.fromisoformat(d) for d in analysed_days)
    if newest_landed is not None:
        days = [d for d in days if d <= newest_landed]
    return days[-1] if days else None
