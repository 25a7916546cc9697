"""The deterministic writer's sentences: templates over a tenant's facts.

Each rule below reads facts and, when it holds, writes one sentence on one topic. These drafts are
the insights when no LLM is configured, what an LLM is asked to reword (topic by topic), and the
fallback for any LLM sentence that fails the grounding check. Recommendation sentences are the
analysis's own `impact` text.

| topic | kind | holds when |
|---|---|---|
| revenue_growth | strength | revenue change >= GROWTH |
| mrr_growth | strength | mrr change >= GROWTH |
| sessions_growth | strength | sessions change >= GROWTH |
| fast_merges | strength | median_hours_to_merge_30d <= FAST_MERGE_HOURS |
| reliable_payments | strength | failed_charge_rate_30d < RELIABLE_FAILED_RATE |
| low_churn_risk | strength | churn_risk is "low" |
| weekly_rhythm | strength | revenue is weekly seasonal |
| strong_<component> | strength | health component >= STRONG_COMPONENT |
| revenue_decline | improvement | revenue change <= -GROWTH |
| mrr_decline | improvement | mrr change <= -GROWTH |
| slow_merges | improvement | median_hours_to_merge_30d > SLOW_MERGE_HOURS |
| failed_payments | improvement | failed_charge_rate_30d >= HIGH_FAILED_RATE |
| churn_risk | improvement | churn_risk is "medium" or "high" |
| high_bounce | improvement | bounce_rate_30d > HIGH_BOUNCE_RATE |
| stale_data | improvement | days_since_data (days since the newest successful sync) >= STALE_DAYS |
| weak_<component> | improvement | health component < WEAK_COMPONENT |

A metric's "change" (the analysis's `mom_growth`, the fact `<metric>_avg_last_30d_vs_prior_30d`)
compares its average daily value over the last 30 days with its average over the 30 days before,
and the sentence says so ("Average MRR over the last 30 days is down 22% on the 30 days before"):
a flat MRR after a fall in the earlier window is down on average, not month over month.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenantpulse.insights.facts import COMPONENTS, TenantFacts, change_fact

GROWTH = 0.03  # month-over-month change worth a sentence either way
FAST_MERGE_HOURS = 24.0
SLOW_MERGE_HOURS = 48.0
RELIABLE_FAILED_RATE = 0.03
HIGH_FAILED_RATE = 0.08
HIGH_BOUNCE_RATE = 0.6
STALE_DAYS = 3
STRONG_COMPONENT = 85
WEAK_COMPONENT = 40
# What a trend's change compares, named in its sentence: (subject, verb).
CHANGE_SUBJECTS = {
    "revenue": ("Average daily revenue", "is"),
    "mrr": ("Average MRR", "is"),
    "sessions": ("Average daily website sessions", "are"),
}
STRENGTH, IMPROVEMENT, RECOMMENDATION = "strength", "improvement", "recommendation"
COMPONENT_LABELS = {
    "revenue": "revenue",
    "payments": "payments",
    "engineering": "engineering",
    "web": "website",
    "data_freshness": "data freshness",
}


@dataclass(frozen=True)
class Sentence:
    topic: str  # a rule's topic, or "recommendation:<rule>"
    kind: str  # strength, improvement or recommendation
    text: str


def draft_sentences(facts: TenantFacts) -> list[Sentence]:
    """Every sentence the facts support: strengths, improvements, then one per recommendation."""
    n, label = facts.numbers, facts.labels
    window = int(n["window_days"])
    out: list[Sentence] = []

    def add(topic: str, kind: str, text: str) -> None:
        out.append(Sentence(topic, kind, text))

    days = int(n["comparison_window_days"])
    for metric, (subject, verb) in CHANGE_SUBJECTS.items():
        growth = n.get(change_fact(metric))
        if growth is None:
            continue
        change = f"{abs(growth):.0%} on the {days} days before"
        compared = f"{subject} over the last {days} days {verb}"
        if growth >= GROWTH:
            add(f"{metric}_growth", STRENGTH, f"{compared} up {change}")
        elif growth <= -GROWTH:
            add(f"{metric}_decline", IMPROVEMENT, f"{compared} down {change}")

    hours = n.get("median_hours_to_merge_30d")
    if hours is not None and hours <= FAST_MERGE_HOURS:
        add(
            "fast_merges",
            STRENGTH,
            f"Pull requests merge quickly: a median of {hours:.1f} hours over the last {window} days",
        )
    elif hours is not None and hours > SLOW_MERGE_HOURS:
        add(
            "slow_merges",
            IMPROVEMENT,
            f"Pull requests wait long to merge: a median of {n['median_days_to_merge_30d']:.1f} "
            f"days ({hours:.0f} hours) over the last {window} days",
        )

    failed = n.get("failed_charge_rate_30d")
    if failed is not None and failed < RELIABLE_FAILED_RATE:
        add(
            "reliable_payments",
            STRENGTH,
            f"Payments are reliable: {failed:.1%} of charges failed over the last {window} days",
        )
    elif failed is not None and failed >= HIGH_FAILED_RATE:
        add(
            "failed_payments",
            IMPROVEMENT,
            f"{failed:.0%} of charges failed over the last {window} days",
        )

    risk, probability = label.get("churn_risk"), n.get("churn_probability")
    if risk == "low" and probability is not None:
        add("low_churn_risk", STRENGTH, f"Churn risk is low (probability {probability:.0%})")
    elif risk in ("medium", "high") and probability is not None:
        add("churn_risk", IMPROVEMENT, f"Churn risk is {risk} (probability {probability:.0%})")

    if "revenue_peak_day" in label:
        add(
            "weekly_rhythm",
            STRENGTH,
            f"Revenue follows a steady weekly rhythm, peaking on {label['revenue_peak_day']}",
        )

    bounce = n.get("bounce_rate_30d")
    if bounce is not None and bounce > HIGH_BOUNCE_RATE:
        add(
            "high_bounce",
            IMPROVEMENT,
            f"{bounce:.0%} of website sessions bounced over the last {window} days",
        )

    stale = n.get("days_since_data")
    if stale is not None and stale >= STALE_DAYS:
        add(
            "stale_data",
            IMPROVEMENT,
            f"No successful sync for {stale:.0f} days: check the connections",
        )

    for component in COMPONENTS:
        score = n.get(f"health_{component}")
        if score is None:
            continue
        name = COMPONENT_LABELS[component]
        # Fresh data is the norm, not a strength worth a sentence.
        if score >= STRONG_COMPONENT and component != "data_freshness":
            add(f"strong_{component}", STRENGTH, f"Strong {name} health score: {score:.0f}")
        elif score < WEAK_COMPONENT:
            add(f"weak_{component}", IMPROVEMENT, f"Weak {name} health score: {score:.0f}")

    for recommendation in facts.recommendations:
        add(f"recommendation:{recommendation.rule}", RECOMMENDATION, recommendation.impact)
    return out
