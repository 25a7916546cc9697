"""`ops.action_log`: the ledger that makes every action happen once, and the audit trail of each.

One row per (tenant_id, playbook, action, as_of, subject). A row is written `pending` and committed
before the action is sent, then set to `done` (or `failed` with the error) after, so a crash in
between leaves a `pending` row that the next run sends again with the same idempotency key.
`dry_run` rows record what would have fired; a later real run sends them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from tenantpulse.warehouse import Connection

PENDING, DONE, FAILED, DRY_RUN = "pending", "done", "failed", "dry_run"
TO_SEND = (PENDING, FAILED, DRY_RUN)  # a real run sends these


@dataclass(frozen=True)
class ActionKey:
    tenant_id: str  # "" for an alert about the platform, not a tenant
    playbook: str  # or the alert: run_failure, stale_data
    action: str
    as_of: dt.date  # the analysis day (the alert's day)
    subject: str = ""  # what else tells two actions apart (a failed run's id)

    def idempotency_key(self) -> str:
        """The same key for every attempt at this action: receivers drop repeats by it."""
        text = "\x1f".join(
            (self.tenant_id, self.playbook, self.action, self.as_of.isoformat(), self.subject)
        )
        return "tp-" + hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LoggedAction:
    key: ActionKey
    handler: str
    status: str
    payload: dict
    attempts: int
    error: str | None
    receipt: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


_COLUMNS = "tenant_id, playbook, action, as_of, subject"


def ensure_action_log(conn: Connection) -> None:
    conn.ensure_schema("ops")
    conn.execute(
        "create table if not exists ops.action_log ("
        " tenant_id varchar not null,"
        " playbook varchar not null,"
        " action varchar not null,"
        " as_of date not null,"
        " subject varchar not null,"
        " handler varchar not null,"
        " idempotency_key varchar not null,"
        " status varchar not null,"  # pending | done | failed | dry_run
        " payload varchar not null,"  # the JSON body sent, byte for byte on every attempt
        " attempts integer not null,"
        " error varchar,"
        " receipt varchar,"  # what the receiver answered
        " created_at timestamptz not null,"
        " updated_at timestamptz not null,"
        " sent_at timestamptz,"
        f" primary key ({_COLUMNS}))"
    )


def record(
    conn: Connection, key: ActionKey, handler: str, payload: dict, dry_run: bool = False
) -> None:
    """Write the action as `pending` (`dry_run`) unless it is already logged; a real run turns an
    earlier dry-run row into `pending`."""
    now = _now()
    conn.execute(
        f"insert into ops.action_log ({_COLUMNS}, handler, idempotency_key, status, payload, "
        "attempts, created_at, updated_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s) "
        "on conflict do nothing",
        (
            *_key_values(key),
            handler,
            key.idempotency_key(),
            DRY_RUN if dry_run else PENDING,
            json.dumps(payload, sort_keys=True, allow_nan=False),
            now,
            now,
        ),
    )
    if not dry_run:
        conn.execute(
            f"update ops.action_log set status = %s, updated_at = %s where {_WHERE_KEY} and status = %s",
            (PENDING, now, *_key_values(key), DRY_RUN),
        )


def mark_done(conn: Connection, key: ActionKey, receipt: str) -> None:
    now = _now()
    conn.execute(
        "update ops.action_log set status = %s, attempts = attempts + 1, error = null, "
        f"receipt = %s, sent_at = %s, updated_at = %s where {_WHERE_KEY}",
        (DONE, receipt[:2000], now, now, *_key_values(key)),
    )


def mark_failed(conn: Connection, key: ActionKey, error: str) -> None:
    conn.execute(
        "update ops.action_log set status = %s, attempts = attempts + 1, error = %s, "
        f"updated_at = %s where {_WHERE_KEY}",
        (FAILED, error[:2000], _now(), *_key_values(key)),
    )


def actions_on(
    conn: Connection,
    as_of: dt.date,
    statuses: tuple[str, ...] | None = None,
    tenant_ids: list[str] | None = None,
    playbooks: tuple[str, ...] | None = None,
) -> list[LoggedAction]:
    """The logged actions of one day, optionally only these statuses, tenants or playbooks."""
    ensure_action_log(conn)
    sql = (
        f"select {_COLUMNS}, handler, status, payload, attempts, error, receipt, created_at, updated_at "
        "from ops.action_log where as_of = %s"
    )
    params: list = [as_of]
    for column, values in (
        ("status", statuses),
        ("tenant_id", tenant_ids),
        ("playbook", playbooks),
    ):
        if values is not None:
            if not values:
                return []
            sql += f" and {column} in ({', '.join(['%s'] * len(values))})"
            params += list(values)
    rows = conn.fetch_all(sql + f" order by {_COLUMNS}", params)
    return [
        LoggedAction(
            ActionKey(tenant, playbook, action, _date(day), subject),
            handler,
            status,
            json.loads(payload),
            attempts,
            error,
            receipt,
            created_at,
            updated_at,
        )
        for tenant, playbook, action, day, subject, handler, status, payload, attempts, error, receipt, created_at, updated_at in rows
    ]


def newest_tenant_action_day(conn: Connection) -> dt.date | None:
    """The newest day on which a playbook fired for a tenant (alerts aside)."""
    ensure_action_log(conn)
    return _date(conn.fetch_value("select max(as_of) from ops.action_log where tenant_id <> ''"))


def recent_firings(
    conn: Connection, as_of: dt.date, window_days: int
) -> dict[tuple[str, str, str], set[dt.date]]:
    """(tenant, playbook, action) -> the other days, less than `window_days` from `as_of`, on
    which it was sent or is being sent: what playbook cooldowns hold back."""
    if window_days <= 0:
        return {}
    ensure_action_log(conn)
    rows = conn.fetch_all(
        "select tenant_id, playbook, action, as_of from ops.action_log "
        "where status in (%s, %s) and as_of <> %s and as_of > %s and as_of < %s",
        (
            PENDING,
            DONE,
            as_of,
            as_of - dt.timedelta(days=window_days),
            as_of + dt.timedelta(days=window_days),
        ),
    )
    found: dict[tuple[str, str, str], set[dt.date]] = {}
    for tenant, playbook, action, day in rows:
        found.setdefault((tenant, playbook, action), set()).add(_date(day))
    return found


_WHERE_KEY = "tenant_id = %s and playbook = %s and action = %s and as_of = %s and subject = %s"


def _key_values(key: ActionKey) -> tuple:
    return (key.tenant_id, key.playbook, key.action, key.as_of, key.subject)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _date(value):
    if value is None:
        return None
    return value.date() if isinstance(value, dt.datetime) else value
