"""One day's analysis of every tenant: patterns, health, churn risk and recommendations, from the
per-tenant daily history (analytics.tenant_daily_metrics), using only rows up to that day; and a
range of days analysed and stored at once (what the analysis asset and the bench run).

A tenant's analysis of a day is a function of its history rows dated on or before the day, the
day itself, the churn model and this code, and of nothing else (no other tenant): the hash of
those (`ops.analysed_inputs`) says whether a stored tenant-day is still current. A run
recomputes only the tenant-days whose hash changed (new or revised rows, a new sync, a new model,
new code) or that were never analysed (every tenant on a new day: its calendar day moved, so
freshness and every window did); the others keep their stored rows untouched. The hashes are made
in the warehouse, and only the recomputed tenants' rows are read out."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import os
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from tenantpulse.analysis import churn, health, patterns, synthetic_tenants
from tenantpulse.analysis import recommendations as recommendation_rules
from tenantpulse.analysis.model_store import SavedModel, load_model, model_id_of, save_model
from tenantpulse.analysis.tables import (
    ANALYSIS_COLUMNS,
    ANALYSIS_SCHEMA,
    INPUTS_SCHEMA,
    INPUTS_TABLE,
    replace_tenant_days,
    stored_input_hashes,
)
from tenantpulse.tenants.registry import removed_tenant_ids
from tenantpulse.warehouse import Connection, Warehouse
from tenantpulse.warehouse.identifiers import qualified

HISTORY_TABLE = "analytics.tenant_daily_metrics"
WORKFLOW_SCHEMA, WORKFLOW_TABLE = "ops", "ai_workflow_analysis"
# A 64-bit hash of a whole row `m` of the daily history, per dialect (input_hashes).
_ROW_HASH = {"duckdb": "hash(m)", "postgres": "hashtextextended(m::text, 0)"}

# The churn model trains on the tenants' own history plus a SYNTHETIC population
# (synthetic_tenants.synthetic_training_history says what it is) until the real labelled history
# holds samples of REAL_ONLY_MIN_TENANTS tenants (near the synthetic population's 60),
# REAL_ONLY_MIN_CHURNED_TENANTS of them with a churned sample (two per evaluation fold).
SYNTHETIC_TENANTS = 60
SYNTHETIC_DAYS = 150
MODEL_SEED = 0
REAL_ONLY_MIN_TENANTS = 50
REAL_ONLY_MIN_CHURNED_TENANTS = 10
# The saved model learns from the labels known this many days before the newest data, so the
# days a daily run analyses (the newest few, flow.DEFAULT_LOOKBACK_DAYS) all come after what it
# saw; a range starting earlier (a backfill) gets a model of its own, trained on the labels known
# by its first day and not saved.
MODEL_LABEL_LAG_DAYS = 7
# Tenants a process analyses at least: a run with fewer than twice this analyses in its own
# process (starting one and sending it its tenants' history costs a few seconds); with more, the
# tenants are split among up to one process per usable core.
TENANTS_PER_PROCESS = 1000
# The modules whose code decides a tenant-day's outputs: a change to any re-analyses every day.
_ANALYSIS_CODE = hashlib.sha256(
    b"".join(
        Path(module.__file__).read_bytes()
        for module in (churn, health, patterns, recommendation_rules, synthetic_tenants)
    )
    + Path(__file__).read_bytes()
).hexdigest()[:16]


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
    analysed: DayAnalysis | None = None  # the rows this run computed and stored (the checks')
    model_source: str = ""  # saved (scored with the saved model), trained and saved, or range
    tenant_days_analysed: int = 0  # tenant-days computed (new, or their inputs changed)
    tenant_days_unchanged: int = 0  # tenant-days whose stored rows were current: kept as they were


def train_saved_model(
    warehouse: Warehouse, history: pd.DataFrame, now: dt.datetime | None = None
) -> SavedModel:
    """Train on the labels known MODEL_LABEL_LAG_DAYS before the newest row and save the model
    as the newest (what the churn_model asset and a daily run without a usable model do); the
    warehouse is opened only to save it."""
    newest = history["date"].max()
    known_until = (
        (newest - pd.Timedelta(days=MODEL_LABEL_LAG_DAYS)).date()
        if not history.empty
        else dt.datetime.now(dt.UTC).date()
    )
    model = train_churn_model(history, known_until)
    with warehouse.connect() as conn:
        return save_model(conn, model, known_until, now)


def retrain_churn_model(warehouse: Warehouse) -> SavedModel:
    """Train the churn model on the current history and save it as the one the daily runs score
    with (the churn_model asset: on its schedule, or to force retraining)."""
    with warehouse.connect() as conn:
        history = read_history(conn)
    return train_saved_model(warehouse, history)


def read_history(conn: Connection, tenants: Collection[str] | None = None) -> pd.DataFrame:
    """The daily history of `tenants` (default: every tenant) but the removed ones, normalised."""
    if tenants is None:
        history = conn.read_frame(f"select * from {HISTORY_TABLE}")
    else:
        chosen = qualified(conn.temp_schema, "analysed_tenants")
        conn.execute(f"drop table if exists {chosen}")
        conn.execute("create temp table analysed_tenants (tenant_id varchar)")
        conn.write_frame(
            conn.temp_schema, "analysed_tenants", pd.DataFrame({"tenant_id": sorted(tenants)})
        )
        history = conn.read_frame(
            f"select * from {HISTORY_TABLE} where tenant_id in (select tenant_id from {chosen})"
        )
        conn.execute(f"drop table {chosen}")
    history = normalise_history(history)
    return history[~history["tenant_id"].isin(removed_tenant_ids(conn))].reset_index(drop=True)


def analyse_days(
    warehouse: Warehouse, days: list[dt.date], now: dt.datetime | None = None
) -> DaysAnalysed:
    """Make the analysis tables and ops.ai_workflow_analysis hold, for each of `days`, the
    analysis of every tenant with history up to it (removed tenants excluded), recomputing only
    the tenant-days whose inputs changed since they were stored (module docstring).

    The churn model is the saved one (model_store) when it was trained on labels known by the
    first day; a run without one, or whose saved model is past MODEL_MAX_AGE_DAYS, trains and
    saves one first; a range starting before the saved model's labels end gets a model trained
    on the labels known by its first day (not saved). Connections are opened for reading and
    writing only: none is held while the analysis runs."""
    now = now or dt.datetime.now(dt.UTC)
    history = None  # every tenant's when a model is trained, else the analysed tenants'
    with warehouse.connect() as conn:
        saved = load_model(conn)
        stored = stored_input_hashes(conn, days)
        if saved is None or saved.is_due(now) or days[0] < saved.known_until:
            history = read_history(conn)
    source = "saved"
    if saved is None or saved.is_due(now):
        saved, source = train_saved_model(warehouse, history, now), "trained and saved"
    if days[0] >= saved.known_until:
        model, model_id = saved.model, saved.model_id
    else:
        model = train_churn_model(history, known_until=days[0])
        model_id, source = model_id_of(model), f"trained for the range from {days[0]}"
    with warehouse.connect() as conn:
        current = input_hashes(conn, days, model_id)
    tasks, hashes, replaced, unchanged = [], [], {}, 0
    for day in days:
        today = current[current["as_of"] == day]
        now_hashes = today.set_index("tenant_id")["input_hash"]
        before = stored[stored["as_of"] == day].set_index("tenant_id")["input_hash"]
        changed = set(now_hashes.index[now_hashes.ne(before.reindex(now_hashes.index))])
        gone = set(before.index) - set(now_hashes.index)
        unchanged += len(now_hashes) - len(changed)
        if changed or gone:
            tasks.append((day, changed))
            hashes.append(today[today["tenant_id"].isin(changed)])
            # None: every stored tenant of the day is replaced (one delete of the whole day).
            replaced[day] = None if set(before.index) <= changed | gone else changed | gone
    if history is None:
        analysed_tenants = set().union(*(changed for _, changed in tasks))
        with warehouse.connect() as conn:
            # A first run analyses every tenant: the table is read whole, not by name.
            everyone = analysed_tenants >= set(current["tenant_id"])
            history = read_history(conn, None if everyone else analysed_tenants)
    results = analyse_tenant_days(history, tasks, model)
    written = dict.fromkeys(ANALYSIS_COLUMNS, 0)
    if results:
        analysed = combine_days(results)
        inputs = pd.concat(hashes, ignore_index=True).assign(model_id=model_id, analysed_at=now)
        with warehouse.connect() as conn:
            written = {
                table: replace_tenant_days(conn, ANALYSIS_SCHEMA, table, frame, replaced)
                for table, frame in analysed.tables().items()
            }
            replace_tenant_days(conn, WORKFLOW_SCHEMA, WORKFLOW_TABLE, analysed.workflow, replaced)
            replace_tenant_days(conn, INPUTS_SCHEMA, INPUTS_TABLE, inputs, replaced)
    else:  # nothing changed: outputs without rows (what the checks look at)
        analysed = analyse_day(history.iloc[0:0], days[-1], model)
    return DaysAnalysed(
        days,
        model,
        len(history),
        written,
        analysed,
        source,
        len(analysed.health),
        unchanged,
    )


def analyse_tenant_days(
    history: pd.DataFrame,
    tasks: list[tuple[dt.date, set[str]]],
    model: churn.ChurnModel,
    processes: int | None = None,
) -> list[DayAnalysis]:
    """analyse_day of each task's day over its tenants, in the order of `tasks`. A tenant's
    analysis depends on its own history alone, so with many tenants they are split into ranges
    of tenant ids, one per process (`processes`, default: one per usable core, at least
    TENANTS_PER_PROCESS tenants each), and each day's rows are put back together in tenant order:
    the same rows as analysing every tenant in one process."""
    tenants = sorted(set().union(*(changed for _, changed in tasks)))
    if processes is None:
        processes = min(_usable_cores(), len(tenants) // TENANTS_PER_PROCESS)
    if processes < 2:
        return _analyse_tasks((history, tasks, model))
    ranges = [set(part) for part in np.array_split(np.array(tenants, dtype=object), processes)]
    work = [
        (
            history[history["tenant_id"].isin(tenant_range)],
            [(day, changed & tenant_range) for day, changed in tasks],
            model,
        )
        for tenant_range in ranges
    ]
    # spawn: a forked copy of a process with threads (a Dagster run's) can deadlock on a lock.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        parts = list(pool.map(_analyse_tasks, work))
    return [combine_days([part[i] for part in parts]) for i in range(len(tasks))]


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _analyse_tasks(work) -> list[DayAnalysis]:
    history, tasks, model = work
    return [
        analyse_day(history[history["tenant_id"].isin(changed)], day, model)
        for day, changed in tasks
    ]


def input_hashes(conn: Connection, days: list[dt.date], model_id: str) -> pd.DataFrame:
    """(tenant_id, as_of, input_hash) for every tenant but the removed ones with rows up to each
    day: a hash of its rows dated on or before the day (the warehouse XORs a 64-bit hash of each
    whole row, so no row is read out), the day, the model and the analysis code."""
    per_day = ", ".join(
        "bit_xor(row_hash) filter (where date <= %s), count(*) filter (where date <= %s)"
        for _ in days
    )
    rows = conn.fetch_all(
        f"select tenant_id, {per_day} from (select tenant_id, date, {_ROW_HASH[conn.dialect]}"
        f" as row_hash from {HISTORY_TABLE} m) hashed group by tenant_id order by tenant_id",
        [day for day in days for _ in range(2)],
    )
    removed = removed_tenant_ids(conn)
    return pd.DataFrame(
        [
            (
                tenant_id,
                day,
                hashlib.sha256(
                    f"{_ANALYSIS_CODE}:{model_id}:{day}:{combined}:{count}".encode()
                ).hexdigest()[:32],
            )
            for tenant_id, *combined_counts in rows
            if tenant_id not in removed
            for day, combined, count in zip(
                days, combined_counts[::2], combined_counts[1::2], strict=True
            )
            if count
        ],
        columns=["tenant_id", "as_of", "input_hash"],
    )


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
        profile = patterns.weekly_profile(history, as_of)
        seasonality = patterns.weekly_seasonality(history, as_of, profile)
        anomalies = patterns.anomalies(history, as_of, profile=profile)
        scores = health.health_scores(history, as_of, trends)
        risk = churn.predict(model, history, as_of)
        actions = recommendation_rules.recommendations(
            trends, seasonality, anomalies, scores, risk, history, as_of
        )
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
