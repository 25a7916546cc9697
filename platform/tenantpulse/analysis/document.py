"""The per-tenant analysis document of shared/METRICS.md, built from the stored analysis and
insights of one tenant and day."""

from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd

COMPONENTS = ("revenue", "payments", "engineering", "web", "data_freshness")
# The analysis tables a document is built from (each filtered to one tenant and day), and with the
# written insights.
ANALYSIS_TABLES = (
    "health_scores",
    "churn_risk",
    "trends",
    "seasonality",
    "anomalies",
    "recommendations",
)
DOCUMENT_TABLES = (*ANALYSIS_TABLES, "insights")


def analysis_document(tenant_id: str, as_of: dt.date, tables: dict[str, pd.DataFrame]) -> dict:
    """`tables`: the analysis tables' rows for this tenant and day (see analysis.daily), as frames
    or lists of row dicts, and the `insights` row when the day's insights are written."""
    health = _first(tables["health_scores"])
    written = _first(tables.get("insights"))
    impacts = json.loads(written.get("recommendation_impacts") or "{}")
    risk = _first(tables["churn_risk"])
    trends = {row["metric"]: row for row in _rows(tables["trends"])}
    seasonality = {row["metric"]: row for row in _rows(tables["seasonality"])}
    revenue_trend = trends.get("revenue", {})
    revenue_season = seasonality.get("revenue", {})
    return {
        "user_id": tenant_id,
        "as_of": as_of.isoformat(),
        "health_score": _number(health.get("health_score")),
        "health_components": {name: _number(health.get(name), 0) for name in COMPONENTS},
        "health_components_used": [
            c for c in (health.get("components_used") or "").split(",") if c
        ],
        "health_override": _text(health.get("override")),
        "churn_risk": _text(risk.get("churn_risk")) or "unknown",
        "churn_probability": _number(risk.get("churn_probability"), 2),
        "churn_reason": _text(risk.get("reason")),
        "patterns": {
            "revenue_trend": {
                "direction": revenue_trend.get("direction", "unknown"),
                "mom_growth": _number(revenue_trend.get("mom_growth"), 3),
            },
            "seasonality": {
                "weekly": bool(revenue_season.get("weekly", False)),
                "peak_day": _text(revenue_season.get("peak_day")),
            },
            "trends": {
                metric: {
                    "direction": row["direction"],
                    "mom_growth": _number(row.get("mom_growth"), 3),
                    "relative_slope_90d": _number(row.get("relative_slope_90d"), 3),
                }
                for metric, row in trends.items()
            },
            "weekly_seasonality": {
                metric: {
                    "weekly": bool(row["weekly"]),
                    "peak_day": _text(row.get("peak_day")),
                    "strength": _number(row.get("strength"), 2),
                }
                for metric, row in seasonality.items()
            },
            "anomalies": [
                {
                    "metric": row["metric"],
                    "date": pd.Timestamp(row["date"]).date().isoformat(),
                    "value": _number(row["value"], 2),
                    "expected": _number(row["expected"], 2),
                    "kind": row["kind"],
                }
                for row in _rows(tables["anomalies"])
            ],
        },
        "insights": {
            "strengths": json.loads(written.get("strengths") or "[]"),
            "improvements": json.loads(written.get("improvements") or "[]"),
        },
        "recommendations": [
            {
                "priority": row["priority"],
                "action": row["action"],
                # A recommendation the grounding check dropped has no written impact: none shown.
                "impact": impacts.get(row["rule"]) if written else row["impact"],
                "evidence": json.loads(row["evidence"])
                if isinstance(row["evidence"], str)
                else row["evidence"],
            }
            for row in _rows(tables["recommendations"])
        ],
        "generated_by": _text(written.get("generated_by")),
        "grounding": {
            "sentences_checked": _number(written.get("sentences_checked")),
            "sentences_dropped": _number(written.get("sentences_dropped")),
            "llm_error": _text(written.get("llm_error")),
        },
    }


def document_json(document: dict) -> str:
    """The document as strict JSON (what `tenantpulse report` prints): a NaN or infinity left in
    it is a bug, raised here rather than printed as the non-standard `NaN` strict parsers reject."""
    return json.dumps(document, indent=2, allow_nan=False)


def _rows(frame: pd.DataFrame | list[dict] | None) -> list[dict]:
    if isinstance(frame, list):  # the rows already (analysis_documents splits tables into them)
        return frame
    return [] if frame is None or frame.empty else frame.to_dict(orient="records")


def _first(frame: pd.DataFrame) -> dict:
    rows = _rows(frame)
    return rows[0] if rows else {}


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _number(value, digits: int | None = None):
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    value = float(value)
    if digits is None:
        return int(round(value))
    return round(value, digits)
