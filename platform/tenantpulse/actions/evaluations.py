"""`ops.playbook_evaluations`: what each tenant's playbooks were last evaluated on, per day, so that
a run evaluates only the tenants whose analysis (or the playbooks) changed since.

What fires for a tenant and day depends only on its analysis of the day (the input hash of
ops.analysed_inputs says when that changed), the playbooks, and the ledger's rows nearby
(cooldowns); an evaluation the ledger already holds the outcome of would record nothing new (a
firing is recorded once, and a firing held back by a nearby row stays held back: rows never go).
A tenant whose analysis has no input hash (stored by other means) is always evaluated."""

from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd

from tenantpulse.actions.playbooks import PlaybookFile
from tenantpulse.analysis.tables import INPUTS_SCHEMA, INPUTS_TABLE, replace_tenant_days
from tenantpulse.warehouse import Connection

EVALUATIONS_SCHEMA, EVALUATIONS_TABLE = "ops", "playbook_evaluations"


def playbooks_hash(playbook_file: PlaybookFile) -> str:
    """Changes whenever a playbook, condition or action does."""
    return hashlib.sha256(repr(playbook_file.playbooks).encode()).hexdigest()[:16]


def evaluation_keys(conn: Connection, as_of: dt.date, playbooks: str) -> dict[str, str]:
    """tenant -> what its evaluation of the day would be made from (analysis input hash and
    playbooks), for the tenants whose analysis of the day has an input hash."""
    if not conn.table_exists(INPUTS_SCHEMA, INPUTS_TABLE):
        return {}
    rows = conn.fetch_all(
        f"select tenant_id, input_hash from {INPUTS_SCHEMA}.{INPUTS_TABLE} where as_of = %s",
        (as_of,),
    )
    return {tenant: f"{input_hash}:{playbooks}" for tenant, input_hash in rows}


def evaluated(conn: Connection, as_of: dt.date) -> dict[str, str]:
    """tenant -> what its playbooks were last evaluated on for the day (real runs only)."""
    if not conn.table_exists(EVALUATIONS_SCHEMA, EVALUATIONS_TABLE):
        return {}
    return dict(
        conn.fetch_all(
            f"select tenant_id, evaluated_from from {EVALUATIONS_SCHEMA}.{EVALUATIONS_TABLE} "
            "where as_of = %s",
            (as_of,),
        )
    )


def record_evaluations(conn: Connection, as_of: dt.date, keys: dict[str, str]) -> None:
    """Remember what these tenants' playbooks were evaluated on (in the transaction that
    records what fired)."""
    if not keys:
        return
    frame = pd.DataFrame(
        {
            "tenant_id": pd.Series(list(keys), dtype="string"),
            "as_of": as_of,
            "evaluated_from": pd.Series(list(keys.values()), dtype="string"),
            "evaluated_at": pd.Timestamp.now(tz="UTC"),
        }
    )
    replace_tenant_days(conn, EVALUATIONS_SCHEMA, EVALUATIONS_TABLE, frame, {as_of: set(keys)})
