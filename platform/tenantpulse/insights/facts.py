"""The fact sheet of one tenant and day: every number (and date) a written sentence may quote,
named, taken from the stored analysis. The deterministic writer and the LLM both write from it, and
the grounding check accepts a sentence only when each number in it is one of these facts."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field

import pandas as pd

from tenantpulse.analysis import health, patterns

# The analysis windows are facts too: "over the last 30 days" quotes one.
WINDOW_FACTS = {
    "window_days": health.WINDOW_DAYS,
    "comparison_window_days": patterns.MOM_WINDOW_DAYS,
    "trend_window_days": patterns.LONG_WINDOW_DAYS,
}


def change_fact(metric: str) -> str:
    """The name of a trend's `mom_growth` fact, saying what it compares: the metric's average
    daily value over the last 30 days against its average over the 30 days before."""
    days = patterns.MOM_WINDOW_DAYS
    return f"{metric}_avg_last_{days}d_vs_prior_{days}d"


HEALTH_METRICS = (
    "failed_charge_rate_30d",
    "cancellation_rate_30d",
    "median_hours_to_merge_30d",
    "bounce_rate_30d",
    "days_since_data",
)
COMPONENTS = ("revenue", "payments", "engineering", "web", "data_freshness")


@dataclass(frozen=True)
class Recommendation:
    """One recommendation of the analysis: its rule, priority and action are never rewritten."""

    rule: str
    priority: str
    action: str
    impact: str
    evidence: list[str]


@dataclass(frozen=True)
class TenantFacts:
    tenant_id: str
    as_of: dt.date
    numbers: dict[str, float]
    labels: dict[str, str]  # churn_risk, <metric>_direction, revenue_peak_day, ...
    dates: dict[str, str]  # ISO dates a sentence may name (anomaly days)
    recommendations: list[Recommendation] = field(default_factory=list)

    def as_prompt_data(self) -> dict:
        return {"numbers": self.numbers, "labels": self.labels, "dates": self.dates}


def tenant_facts(
    tenant_id: str, as_of: dt.date, tables: dict[str, pd.DataFrame | list[dict]]
) -> TenantFacts:
    """`tables`: the analysis tables' rows of this tenant and day (health_scores, churn_risk,
    trends, seasonality, anomalies, recommendations), as frames or lists of row dicts."""
    numbers: dict[str, float] = dict(WINDOW_FACTS)
    labels: dict[str, str] = {}
    dates: dict[str, str] = {}

    scores = _first(tables["health_scores"])
    _put(numbers, "health_score", scores.get("health_score"))
    used = [c for c in (_text(scores.get("components_used")) or "").split(",") if c]
    for component in used:
        _put(numbers, f"health_{component}", scores.get(component))
    for metric in HEALTH_METRICS:
        _put(numbers, metric, scores.get(metric))
    if "median_hours_to_merge_30d" in numbers:
        numbers["median_days_to_merge_30d"] = numbers["median_hours_to_merge_30d"] / 24

    risk = _first(tables["churn_risk"])
    labels["churn_risk"] = _text(risk.get("churn_risk")) or "unknown"
    _put(numbers, "churn_probability", risk.get("churn_probability"))

    for row in _rows(tables["trends"]):
        metric = row["metric"]
        direction = _text(row.get("direction"))
        if direction and direction != "unknown":
            labels[f"{metric}_direction"] = direction
        _put(numbers, change_fact(metric), row.get("mom_growth"))
        _put(numbers, f"{metric}_relative_slope_90d", row.get("relative_slope_90d"))

    for row in _rows(tables["seasonality"]):
        if row.get("weekly"):
            labels[f"{row['metric']}_peak_day"] = row["peak_day"]
            labels[f"{row['metric']}_trough_day"] = row["trough_day"]
            _put(numbers, f"{row['metric']}_weekly_strength", row.get("strength"))

    for row in _rows(tables["anomalies"]):
        day = pd.Timestamp(row["date"]).date().isoformat()
        name = f"{row['metric']}_anomaly_{day}"
        dates[name] = day
        _put(numbers, f"{name}_value", row.get("value"))
        _put(numbers, f"{name}_expected", row.get("expected"))

    recommendations = []
    for row in _rows(tables["recommendations"]):
        evidence = row["evidence"]
        evidence = json.loads(evidence) if isinstance(evidence, str) else list(evidence)
        for line in evidence:
            name, _, value = line.partition(" = ")
            try:
                _put(numbers, f"{row['rule']}.{name}", float(value))
            except ValueError:
                if _is_iso_date(value):
                    dates[f"{row['rule']}.{name}"] = value
                else:
                    labels[f"{row['rule']}.{name}"] = value
        recommendations.append(
            Recommendation(row["rule"], row["priority"], row["action"], row["impact"], evidence)
        )
    return TenantFacts(tenant_id, as_of, numbers, labels, dates, recommendations)


def _put(numbers: dict[str, float], name: str, value) -> None:
    if value is None or value is pd.NA:
        return
    number = float(value)
    if not math.isnan(number):
        numbers[name] = number


def _rows(frame: pd.DataFrame | list[dict] | None) -> list[dict]:
    if isinstance(frame, list):
        return frame
    return [] if frame is None or frame.empty else frame.to_dict(orient="records")


def _first(frame: pd.DataFrame | list[dict] | None) -> dict:
    rows = _rows(frame)
    return rows[0] if rows else {}


def _text(value) -> str | None:
    """A text cell, or None for a missing one (NaN, None, NA)."""
    return value if isinstance(value, str) else None


def _is_iso_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True
