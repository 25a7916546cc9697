"""One day's analysis of every tenant: patterns, health, churn risk and recommendations, from the
per-tenant daily history (analytics.tenant_daily_metrics), using only rows up to that day; and a
range of days analysed and stored at once (what the analysis asset and the bench run)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, fields

import pandas as pd

from tenantpulse.analysis import churn, health, patterns, synthetic_tenants
from tenantpulse.analysis.recommendations import recommendations
from tenantpulse.analysis.tables import ANALYSIS_COLUMNS, ANALYSIS_SCHEMA, replace_days
from tenantpulse.tenants.registry import removed_tenant_ids
from tenantpulse.warehouse import Warehouse

HISTORY_TABLE = "analytics.tenant_daily_metrics"
WORKFLOW_SCHEMA, WORKFLOW_TABLE = "ops", "ai_workflow_analysis"

# The churn model trains on the tenants' own history plus a SYNTHETIC population
# (synthetic_tenants.synthetic_training_history says what it is) until the real labelled history
# holds samples of REAL_ONLY_MIN_TENANTS tenants (near the synthetic population's 60),
# REAL_ONLY_MIN_CHURNED_TENANTS of them with a churned sample (two per evaluation fold).
SYNTHETIC_TENANTS = 60
SYNTHETIC_DAYS = 150
MODEL_SEED = 0
REAL_ONLY_MIN_TENANTS = 50
REAL_ONLY_MIN_CHURNED_TENANTS = 10


@dataclass(frozen=True)
class DayAnalysis:
    """Every output of one day, each a frame with `tenant_id` and `as_of` columns."""

    features: pd.DataFrame
    trends: pd.DataFrame
    seasonality: pd.DataFrame
    anomalies: pd.DataFrame
    health: pd.DataFrame
    churn: pd.DataFrame
    recommendations: pd.DataFrame
    workflow: pd.DataFrame  # one summary row per tenant: ops.ai_workflow_analysis

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "tenant_features": self.features,
            "trends": self.trends,
            "seasonality": self.seasonality,
            "anomalies": self.anomalies,
            "health_scores": self.health,
            "churn_risk": self.churn,
            "recommendations": self.recommendations,
        }


@dataclass(frozen=True)
class DaysAnalysed:
    """A range of days analysed and stored: the model they used and what was written."""

    days: list[dt.date]
    model: churn.ChurnModel
    history_rows: int  # rows of the daily history read
    rows_written: dict[str, int]  # analysis table -> rows stored for the days
    analysed: DayAnalysis | None = None  # every day's rows, as stored (the asset checks read them)


def analyse_days(warehouse: Warehouse, days: list[dt.date]) -> DaysAnalysed:
    """Analyse every tenant (but the removed ones) on each of `days` (in order) with one churn model, trained on the labels
    known by the first day, and make the analysis tables and ops.ai_workflow_analysis hold exactly
    these days' rows. The history is read, and the results written, on connections of their own:
    none is held while the analysis runs."""
    with warehouse.connect() as conn:
        history = normalise_history(conn.read_frame(f"select * from {HISTORY_TABLE}"))
        removed = removed_tenant_ids(conn)
    history = history[~history["tenant_id"].isin(removed)]
    model = train_churn_model(history, known_until=days[0])
    analysed = combine_days([analyse_day(history, day, model) for day in days])
    with warehouse.connect() as conn:
        rows = {
            table: replace_days(conn, ANALYSIS_SCHEMA, table, frame, days)
            for table, frame in analysed.tables().items()
        }
        replace_days(conn, WORKFLOW_SCHEMA, WORKFLOW_TABLE, analysed.workflow, days)
    return DaysAnalysed(days, model, len(history), rows, analysed)


def combine_days(results: list[DayAnalysis]) -> DayAnalysis:
    """One DayAnalysis holding every day's rows, in the order of `results`."""
    return DayAnalysis(
        **{
            output.name: concat_rows([getattr(r, output.name) for r in results])
            for output in fields(DayAnalysis)
        }
    )


def concat_rows(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames' rows one after the other; the first frame (its columns) when all are empty."""
    non_empty = [f for f in frames if not f.empty]
    return pd.concat(non_empty, ignore_index=True) if non_empty else frames[0]


def normalise_history(history: pd.DataFrame) -> pd.DataFrame:
    """The history as the analysis expects it, whichever warehouse it was read from (DuckDB gives
    datetimes, Postgres dates)."""
    frame = history.copy()
    frame["date"] = pd.to_datetime(frame["date"]).dt.tz_localize(None).dt.normalize()
    return frame.sort_values(["tenant_id", "date"]).reset_index(drop=True)


def train_churn_model(history: pd.DataFrame, known_until: dt.date) -> churn.ChurnModel:
    """Train on labels known by `known_until` (rows after it are not used): on the real tenants
    alone when they are enough (REAL_ONLY_MIN_*), else with the synthetic population too."""
    X, y, groups = churn.training_set(history[history["date"] <= pd.Timestamp(known_until)])
    churned = groups[y == 1].nunique()
    if groups.nunique() < REAL_ONLY_MIN_TENANTS or churned < REAL_ONLY_MIN_CHURNED_TENANTS:
        synthetic = churn.training_set(
            synthetic_tenants.synthetic_training_history(
                SYNTHETIC_TENANTS, SYNTHETIC_DAYS, seed=MODEL_SEED
            )
        )
        X, y, groups = (pd.concat(pair) for pair in zip((X, y, groups), synthetic, strict=True))
    return churn.train(X, y, groups, seed=MODEL_SEED)


def analyse_day(history: pd.DataFrame, as_of: dt.date, model: churn.ChurnModel) -> DayAnalysis:
    """Analyse every tenant as of `as_of` (rows after it are ignored by every step)."""
    if (history["date"] <= pd.Timestamp(as_of)).any():
        trends = patterns.trends(history, as_of)
        seasonality = patterns.weekly_seasonality(history, as_of)
        anomalies = patterns.anomalies(history, as_of)
        scores = health.health_scores(history, as_of, trends)
        risk = churn.predict(model, history, as_of)
        actions = recommendations(trends, seasonality, anomalies, scores, risk, history, as_of)
        features = churn.churn_features(history, as_of)
    else:  # a day before any tenant's first row (a backfill's early days): outputs without rows
        features, trends, seasonality, anomalies, scores, risk, actions = (
            _no_rows(table) for table in _OUTPUT_TABLES
        )
    workflow = _workflow(scores, risk, anomalies, actions)
    return DayAnalysis(
        *(
            _stamped(frame, as_of)
            for frame in (features, trends, seasonality, anomalies, scores, risk, actions, workflow)
        )
    )


# DayAnalysis's outputs in order, by table; and the frame dtype of each logical column type.
_OUTPUT_TABLES = (
    "tenant_features",
    "trends",
    "seasonality",
    "anomalies",
    "health_scores",
    "churn_risk",
    "recommendations",
)
_DTYPES = {
    "boolean": "bool",
    "bigint": "int64",
    "decimal": "float64",
    "timestamptz": "datetime64[ns]",
}


def _no_rows(table: str) -> pd.DataFrame:
    """An output without rows, with its table's columns and types (as_of comes from _stamped)."""
    return pd.DataFrame(
        {
            column.name: pd.Series(dtype=_DTYPES.get(column.type, object))
            for column in ANALYSIS_COLUMNS[table]
            if column.name != "as_of"
        }
    )


def _workflow(scores, risk, anomalies, actions) -> pd.DataFrame:
    per_tenant = scores[["tenant_id", "health_score"]].merge(
        risk[["tenant_id", "churn_risk", "churn_probability"]], on="tenant_id", how="outer"
    )
    counts = {
        "anomalies": anomalies.groupby("tenant_id").size(),
        "recommendations": actions.groupby("tenant_id").size(),
        "high_priority": actions[actions["priority"] == "high"].groupby("tenant_id").size(),
    }
    for name, series in counts.items():
        per_tenant[name] = per_tenant["tenant_id"].map(series).fillna(0).astype("int64")
    per_tenant["created_at"] = pd.Timestamp.now(tz="UTC")
    return per_tenant


def _stamped(frame: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Add `as_of`; store list and dict cells as JSON text; tenant_id first."""
    frame = frame.reset_index() if "tenant_id" not in frame.columns else frame.copy()
    for column in frame.columns:
        # Only object columns hold lists; mapping an empty datetime column keeps its dtype, and
        # pandas refuses `any` over datetimes.
        values = frame[column]
        if values.dtype == object and values.map(lambda v: isinstance(v, (list, dict))).any():
            frame[column] = frame[column].map(lambda v: json.dumps(v, default=str))
    frame.insert(1, "as_of", as_of)
    return frame
