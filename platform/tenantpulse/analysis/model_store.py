"""The saved churn model: `ops.churn_models`, one row per trained model, the newest one scored with.

The model is trained on a schedule (the `analysis/churn_model` asset, weekly) and by a daily
analysis only when there is none yet or the saved one is older than MODEL_MAX_AGE_DAYS (the
schedule has not run); analysis.daily says which model each day is scored with. The row holds the
pickled ChurnModel (scikit-learn pipeline, evaluation, what it was trained on) as base64 text: the
table is the platform's own state, written only by this module."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import pickle
from dataclasses import dataclass

from tenantpulse.analysis.churn import ChurnModel
from tenantpulse.warehouse import Connection

MODEL_SCHEMA, MODEL_TABLE = "ops", "churn_models"
MODEL_MAX_AGE_DAYS = (
    14  # a daily run retrains a saved model older than this (weekly schedule missed)
)


@dataclass(frozen=True)
class SavedModel:
    model_id: str  # a hash of the pickled model: part of every analysed tenant-day's input hash
    trained_at: dt.datetime
    known_until: dt.date  # the model learned only from rows dated on or before this day
    model: ChurnModel

    def age_days(self, now: dt.datetime) -> float:
        return (now - self.trained_at).total_seconds() / 86400

    def is_due(self, now: dt.datetime) -> bool:
        """Older than MODEL_MAX_AGE_DAYS: a daily run retrains it."""
        return self.age_days(now) > MODEL_MAX_AGE_DAYS


def ensure_model_table(conn: Connection) -> None:
    conn.ensure_schema(MODEL_SCHEMA)
    conn.execute(
        f"create table if not exists {MODEL_SCHEMA}.{MODEL_TABLE} ("
        " model_id varchar primary key,"
        " trained_at timestamptz not null,"
        " known_until date not null,"
        " trained_on varchar not null,"
        " model varchar not null)"
    )


def model_id_of(model: ChurnModel) -> str:
    """A hash of the pickled model: the same model, the same id."""
    return hashlib.sha256(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()[:16]


def save_model(
    conn: Connection, model: ChurnModel, known_until: dt.date, now: dt.datetime | None = None
) -> SavedModel:
    """Store `model` as the newest; returns it as saved."""
    ensure_model_table(conn)
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    saved = SavedModel(
        model_id=model_id_of(model),
        trained_at=now or dt.datetime.now(dt.UTC),
        known_until=known_until,
        model=model,
    )
    conn.execute(f"delete from {MODEL_SCHEMA}.{MODEL_TABLE} where model_id = %s", (saved.model_id,))
    conn.execute(
        f"insert into {MODEL_SCHEMA}.{MODEL_TABLE} "
        "(model_id, trained_at, known_until, trained_on, model) values (%s, %s, %s, %s, %s)",
        (
            saved.model_id,
            saved.trained_at,
            known_until,
            model.trained_on,
            base64.b64encode(blob).decode("ascii"),
        ),
    )
    return saved


def load_model(conn: Connection) -> SavedModel | None:
    """The newest saved model, or None when none was trained yet."""
    if not conn.table_exists(MODEL_SCHEMA, MODEL_TABLE):
        return None
    row = conn.fetch_one(
        f"select model_id, trained_at, known_until, model from {MODEL_SCHEMA}.{MODEL_TABLE} "
        "order by trained_at desc, model_id limit 1"
    )
    if row is None:
        return None
    model_id, trained_at, known_until, blob = row
    if trained_at.tzinfo is None:
        trained_at = trained_at.replace(tzinfo=dt.UTC)
    if isinstance(known_until, dt.datetime):
        known_until = known_until.date()
    model = pickle.loads(base64.b64decode(blob))  # noqa: S301 (written by save_model only)
    return SavedModel(model_id, trained_at, known_until, model)
