"""`ops.action_log`: the ledger that makes every action happen once, and the audit trail of each.

One row per (tenant_id, playbook, action, as_of, subject). A row is written `pending` and committed
before the action is sent; a run claims it (`claimed_by`, `claimed_at`: a lease) just before
sending, then sets it `done` (or `failed` with the error), so a crash in between leaves a `pending`
row that a later run, once the lease has run out, sends again with the same idempotency key. A row
that cannot be delivered is `gave_up` for good. `dry_run` rows record what would have fired; a
later real run of that day sends them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from tenantpulse.warehouse import Connection

PENDING, DONE, FAILED, GAVE_UP, DRY_RUN = "pending", "done", "failed", "gave_up", "dry_run"
UNFINISHED = (PENDING, FAILED)  # to be sent (again)
SETTLED = (DONE, GAVE_UP)  # never sent again
HOLDS_BACK = UNFINISHED + SETTLED  # what a playbook's cooldown counts
MAX_DELIVERIES = 5  # claims of one row (a webhook retries within each) before it is given up
# How long a claim keeps other runs off a row: more than one send can take (a webhook at the
# settings' maxima: 10 attempts of 120 s plus backoff, about 25 minutes). A run that died while
# sending leaves its claim; the row is taken again once the lease has run out.
CLAIM_LEASE = dt.timedelta(minutes=30)


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
    claimed_by: str | None = None


_COLUMNS = "tenant_id, playbook, action, as_of, subject"
_LEDGER_LOCK = 0x74705F616374696F  # any constant of Postgres' advisory-lock key space ("tp_actio")


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
        " claimed_by varchar,"  # the run that last took the row to send it
        " claimed_at timestamptz,"  # set while that run holds it (CLAIM_LEASE)
        f" primary key ({_COLUMNS}))"
    )
    # A ledger created before claims existed.
    conn.add_missing_columns(
        "ops", "action_log", {"claimed_by": "varchar", "claimed_at": "timestamptz"}
    )


def lock_ledger(conn: Connection) -> None:
    """Hold the ledger until this transaction ends, while a run decides what fires: two runs at
    once (for two days, say) would each miss the other's new rows and both fire under two keys.
    Postgres: a transaction-level advisory lock. DuckDB allows one writing process per file."""
    if conn.dialect == "postgres":
        conn.execute("select pg_advisory_xact_lock(%s)", (_LEDGER_LOCK,))


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


def claim(
    conn: Connection, key: ActionKey, claimer: str, lease: dt.timedelta = CLAIM_LEASE
) -> int | None:
    """Take an unfinished row for sending (counting the attempt) unless another run holds it
    within its lease; return the row's attempts, this one included, or None if it was not taken.
    The caller commits at once, so other runs see the claim before anything is sent.

    On Postgres two runs may claim at the same time: the row is locked `for update skip locked`,
    so the second skips it instead of waiting and then sending it too. DuckDB allows one writing
    process per file, so there the claim only matters for the lease."""
    now = _now()
    where = f"{_WHERE_KEY} and status in (%s, %s) and (claimed_at is null or claimed_at < %s)"
    if conn.dialect == "postgres":
        where = (
            f"({_COLUMNS}) in (select {_COLUMNS} from ops.action_log where {where} "
            "for update skip locked)"
        )
    row = conn.fetch_one(
        "update ops.action_log set claimed_by = %s, claimed_at = %s, attempts = attempts + 1, "
        f"updated_at = %s where {where} returning attempts",
        (claimer, now, now, *_key_values(key), *UNFINISHED, now - lease),
    )
    return row[0] if row else None


def mark_done(conn: Connection, key: ActionKey, receipt: str) -> None:
    now = _now()
    conn.execute(
        "update ops.action_log set status = %s, error = null, receipt = %s, sent_at = %s, "
        f"updated_at = %s, claimed_at = null where {_WHERE_KEY}",
        (DONE, receipt[:2000], now, now, *_key_values(key)),
    )


def mark_failed(conn: Connection, key: ActionKey, error: str, final: bool = False) -> None:
    """`failed` (sent again by a later run), or `gave_up` if `final`; a row another run has
    meanwhile delivered stays `done`."""
    conn.execute(
        "update ops.action_log set status = %s, error = %s, updated_at = %s, claimed_at = null "
        f"where {_WHERE_KEY} and status <> %s",
        (GAVE_UP if final else FAILED, error[:2000], _now(), *_key_values(key), DONE),
    )


def give_up(
    conn: Connection, key: ActionKey, reason: str, lease: dt.timedelta = CLAIM_LEASE
) -> bool:
    """Make an unfinished row that no run holds `gave_up` with the reason; False if it was not."""
    now = _now()
    row = conn.fetch_one(
        "update ops.action_log set status = %s, error = %s, updated_at = %s "
        f"where {_WHERE_KEY} and status in (%s, %s) and (claimed_at is null or claimed_at < %s) "
        "returning status",
        (GAVE_UP, reason[:2000], now, *_key_values(key), *UNFINISHED, now - lease),
    )
    return row is not None


def actions_on(
    conn: Connection,
    as_of: dt.date,
    statuses: tuple[str, ...] | None = None,
    tenant_ids: list[str] | None = None,
    playbooks: tuple[str, ...] | None = None,
) -> list[LoggedAction]:
    """The logged actions of one day, optionally only these statuses, tenants or playbooks."""
    return actions_between(conn, as_of, as_of, statuses, tenant_ids, playbooks)


def actions_between(
    conn: Connection,
    first: dt.date | None,
    last: dt.date,
    statuses: tuple[str, ...] | None = None,
    tenant_ids: list[str] | None = None,
    playbooks: tuple[str, ...] | None = None,
) -> list[LoggedAction]:
    """The logged actions of the days `first` (None: since the start) to `last`, optionally only
    these statuses, tenants or playbooks."""
    ensure_action_log(conn)
    sql = (
        f"select {_COLUMNS}, handler, status, payload, attempts, error, receipt, created_at, "
        "updated_at, claimed_by from ops.action_log where as_of <= %s"
    )
    params: list = [last]
    if first is not None:
        sql += " and as_of >= %s"
        params.append(first)
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
            claimed_by,
        )
        for tenant, playbook, action, day, subject, handler, status, payload, attempts, error, receipt, created_at, updated_at, claimed_by in rows
    ]


def newest_tenant_action_day(conn: Connection) -> dt.date | None:
    """The newest day on which a playbook fired for a tenant (alerts aside)."""
    ensure_action_log(conn)
    return _date(conn.fetch_value("select max(as_of) from ops.action_log where tenant_id <> ''"))


def recent_firings(
    conn: Connection, as_of: dt.date, window_days: int
) -> dict[tuple[str, str, str], set[dt.date]]:
    """(tenant, playbook, action) -> the other days, less than `window_days` from `as_of`, on
    which it fired and was not a dry run (whether delivered yet or not): what playbook cooldowns
    hold back."""
    if window_days <= 0:
        return {}
    ensure_action_log(conn)
    rows = conn.fetch_all(
        "select tenant_id, playbook, action, as_of from ops.action_log "
        f"where status in ({', '.join(['%s'] * len(HOLDS_BACK))}) "
        "and as_of <> %s and as_of > %s and as_of < %s",
        (
            *HOLDS_BACK,
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
