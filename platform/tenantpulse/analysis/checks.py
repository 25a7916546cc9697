"""What must hold of the analysis a run stores, checked on the frames it computed (the analysis
asset reports each outcome as an asset check). Pure pandas: no Dagster, no warehouse.

Each check names the rows that break it (up to EXAMPLES of them) so a failure says what to look at.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from tenantpulse.analysis.churn import (
    HIGH_FROM,
    LOW_BELOW,
    PROBABILITY_CEILING,
    PROBABILITY_FLOOR,
    band,
)
from tenantpulse.analysis.health import WEIGHTS

EXAMPLES = 10  # offending rows named in a check's details; the count covers all
PRIORITIES = ("high", "medium", "low")

ONE_ROW_PER_TENANT_AND_DAY = "one_row_per_analysed_tenant_and_day"
ONE_ROW_PER_METRIC = "one_row_per_tenant_metric_and_day"
ONLY_ACTIVE_TENANTS = "only_active_tenants"
HEALTH_IN_RANGE = "health_scores_within_0_100"
CHURN_PROBABILITY_VALID = "churn_probability_valid"
RECOMMENDATIONS_VALID = "recommendations_have_priority_and_evidence"

_ACTIVE = (
    ONLY_ACTIVE_TENANTS,
    "No tenant in the output that is not active in ops.tenants (removed tenants are out of every "
    "stage).",
)
# asset name (analysis/<name>) -> (check name, what it asserts), in the order they are reported.
CHECKS: dict[str, tuple[tuple[str, str], ...]] = {
    "tenant_features": (
        (
            ONE_ROW_PER_TENANT_AND_DAY,
            "Exactly one row per tenant and analysed day: every tenant with history up to the day.",
        ),
        _ACTIVE,
    ),
    "patterns": (
        (
            ONE_ROW_PER_METRIC,
            "trends and seasonality hold at most one row per tenant, metric and day; anomalies "
            "at most one per tenant, metric, day analysed and day found.",
        ),
        _ACTIVE,
    ),
    "health_scores": (
        (
            ONE_ROW_PER_TENANT_AND_DAY,
            "Exactly one health score per analysed tenant and day (the tenants of "
            "tenant_features).",
        ),
        (
            HEALTH_IN_RANGE,
            "health_score is within 0..100 (NULL only on a day no component measured), and so is "
            "every component the tenant has.",
        ),
        _ACTIVE,
    ),
    "churn_risk": (
        (
            ONE_ROW_PER_TENANT_AND_DAY,
            "Exactly one churn risk per analysed tenant and day (the tenants of tenant_features).",
        ),
        (
            CHURN_PROBABILITY_VALID,
            f"churn_probability is within {PROBABILITY_FLOOR}..{PROBABILITY_CEILING} (never "
            "certain), missing exactly when churn_risk is unknown, and churn_risk is its band "
            f"(low < {LOW_BELOW} <= medium < {HIGH_FROM} <= high).",
        ),
        _ACTIVE,
    ),
    "recommendations": (
        (
            RECOMMENDATIONS_VALID,
            "Every recommendation has a priority (high, medium, low), an action, a rule and "
            "evidence.",
        ),
        _ACTIVE,
    ),
}
# asset name -> the tables it writes (defs/analysis.py's ANALYSIS_ASSETS says the same).
TABLES_OF = {
    "tenant_features": ("tenant_features",),
    "patterns": ("trends", "seasonality", "anomalies"),
    "health_scores": ("health_scores",),
    "churn_risk": ("churn_risk",),
    "recommendations": ("recommendations",),
}


@dataclass(frozen=True)
class CheckOutcome:
    asset: str  # analysis/<asset>
    name: str
    passed: bool
    failures: int = 0  # offending rows (or tenant-days)
    examples: list[str] = field(default_factory=list)


def check_analysis(
    tables: Mapping[str, pd.DataFrame], active_tenants: Iterable[str]
) -> list[CheckOutcome]:
    """Every check of CHECKS on the analysis `tables` of one run (analysis.daily.DayAnalysis's
    tables(), every day of the run concatenated), in CHECKS' order."""
    active = set(active_tenants)
    analysed = _keys(tables["tenant_features"], ["tenant_id", "as_of"])
    found: dict[tuple[str, str], list[str]] = {
        ("tenant_features", ONE_ROW_PER_TENANT_AND_DAY): _duplicates(
            tables["tenant_features"], ["tenant_id", "as_of"]
        ),
        ("patterns", ONE_ROW_PER_METRIC): (
            _duplicates(tables["trends"], ["tenant_id", "as_of", "metric"], "trends")
            + _duplicates(tables["seasonality"], ["tenant_id", "as_of", "metric"], "seasonality")
            + _duplicates(
                tables["anomalies"], ["tenant_id", "as_of", "metric", "date"], "anomalies"
            )
        ),
        ("health_scores", ONE_ROW_PER_TENANT_AND_DAY): _one_per_analysed(
            tables["health_scores"], analysed
        ),
        ("health_scores", HEALTH_IN_RANGE): _health_out_of_range(tables["health_scores"]),
        ("churn_risk", ONE_ROW_PER_TENANT_AND_DAY): _one_per_analysed(
            tables["churn_risk"], analysed
        ),
        ("churn_risk", CHURN_PROBABILITY_VALID): _invalid_churn(tables["churn_risk"]),
        ("recommendations", RECOMMENDATIONS_VALID): _invalid_recommendations(
            tables["recommendations"]
        ),
    }
    for asset, tables_of in TABLES_OF.items():
        found[(asset, ONLY_ACTIVE_TENANTS)] = sorted(
            {
                f"{tenant} ({table})"
                for table in tables_of
                for tenant in tables[table].get("tenant_id", pd.Series(dtype=str)).unique()
                if tenant not in active
            }
        )
    outcomes = []
    for asset, checks in CHECKS.items():
        for name, _ in checks:
            rows = found[(asset, name)]
            outcomes.append(CheckOutcome(asset, name, not rows, len(rows), rows[:EXAMPLES]))
    return outcomes


def _day(value) -> str:
    return pd.Timestamp(value).date().isoformat()


def _keys(frame: pd.DataFrame, columns: list[str]) -> set[tuple[str, str]]:
    if frame.empty:
        return set()
    return {(t, _day(d)) for t, d in frame[columns].itertuples(index=False)}


def _duplicates(frame: pd.DataFrame, columns: list[str], table: str = "") -> list[str]:
    if frame.empty:
        return []
    counts = frame.groupby(columns, dropna=False).size()
    prefix = f"{table}: " if table else ""
    return [
        f"{prefix}{' '.join(_text(v) for v in key)}: {n} rows"
        for key, n in counts[counts > 1].items()
    ]


def _text(value) -> str:
    return _day(value) if isinstance(value, dt.date) else str(value)  # Timestamps are dates too


def _one_per_analysed(frame: pd.DataFrame, analysed: set[tuple[str, str]]) -> list[str]:
    rows = _duplicates(frame, ["tenant_id", "as_of"])
    have = _keys(frame, ["tenant_id", "as_of"])
    rows += [f"{t} {d}: missing" for t, d in sorted(analysed - have)]
    rows += [f"{t} {d}: not in tenant_features" for t, d in sorted(have - analysed)]
    return rows


def _health_out_of_range(frame: pd.DataFrame) -> list[str]:
    bad = []
    for row in frame.itertuples(index=False):
        row = row._asdict()
        where = f"{row['tenant_id']} {_day(row['as_of'])}"
        score = row["health_score"]
        unscored = pd.isna(score) and not row["components_used"]  # nothing measured that day
        if not unscored and (pd.isna(score) or not 0 <= score <= 100):
            bad.append(f"{where}: health_score {score}")
        for component in WEIGHTS:
            value = row.get(component)
            if value is not None and not pd.isna(value) and not 0 <= value <= 100:
                bad.append(f"{where}: {component} {value}")
    return bad


def _invalid_churn(frame: pd.DataFrame) -> list[str]:
    bad = []
    for row in frame.itertuples(index=False):
        where = f"{row.tenant_id} {_day(row.as_of)}"
        p, risk = row.churn_probability, row.churn_risk
        if pd.isna(p):
            if risk != "unknown":
                bad.append(f"{where}: no probability but churn_risk {risk}")
            continue
        if not PROBABILITY_FLOOR <= p <= PROBABILITY_CEILING:
            bad.append(f"{where}: churn_probability {p}")
        elif risk != band(p):
            bad.append(f"{where}: churn_risk {risk} for probability {p:.3f} (band {band(p)})")
    return bad


def _invalid_recommendations(frame: pd.DataFrame) -> list[str]:
    bad = []
    for row in frame.itertuples(index=False):
        where = f"{row.tenant_id} {_day(row.as_of)} {row.rule}"
        if row.priority not in PRIORITIES:
            bad.append(f"{where}: priority {row.priority!r}")
        if not row.action or not row.rule:
            bad.append(f"{where}: no action or rule")
        if not row.evidence or row.evidence in ("[]", "null"):
            bad.append(f"{where}: no evidence")
    return bad
