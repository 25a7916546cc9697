"""Playbook conditions over an analysis document: comparisons of its fields, and matches on its
recommendations and anomalies. Each evaluates to (holds, the values that made it hold)."""

from __future__ import annotations

import datetime as dt
import operator
import re
from dataclasses import dataclass
from typing import Any

import yaml

from tenantpulse.analysis.document import COMPONENTS

NUMBER, TEXT, FLAG = "number", "text", "true/false"
# Field -> (type, allowed values for text fields).
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "health_score": (NUMBER, ()),
    "churn_risk": (TEXT, ("low", "medium", "high", "unknown")),
    "churn_probability": (NUMBER, ()),
    **{f"health_components.{name}": (NUMBER, ()) for name in COMPONENTS},
    "patterns.revenue_trend.direction": (TEXT, ("up", "down", "flat", "unknown")),
    "patterns.revenue_trend.mom_growth": (NUMBER, ()),
    "patterns.seasonality.weekly": (FLAG, ()),
}
COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
PRIORITIES = ("high", "medium", "low")
ANOMALY_KINDS = ("spike", "drop")
_EXPRESSION = re.compile(r"^\s*([a-z_][a-z0-9_.]*)\s*(==|!=|<=|>=|<|>|\bin\b)\s*(.+?)\s*$")


class ConditionError(ValueError):
    """A condition that cannot be evaluated; the message says what is allowed."""


class Condition:
    def evaluate(self, document: dict) -> tuple[bool, list[str]]:
        raise NotImplementedError


@dataclass(frozen=True)
class Comparison(Condition):
    """`<field> <op> <value>`, e.g. `churn_risk == "high"`, `health_score < 40`. A field the
    document does not have (a tenant with too little data) never satisfies a comparison."""

    field: str
    op: str
    value: Any

    def evaluate(self, document: dict) -> tuple[bool, list[str]]:
        actual: Any = document
        for part in self.field.split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        if actual is None:
            return False, []
        holds = (
            actual in self.value if self.op == "in" else COMPARISONS[self.op](actual, self.value)
        )
        return bool(holds), [f"{self.field} = {actual}"]


@dataclass(frozen=True)
class RecommendationMatch(Condition):
    """`{recommendation: {priority: high, action_contains: PR}}`: a recommendation with all of these."""

    priority: str | None
    action_contains: str | None

    def evaluate(self, document: dict) -> tuple[bool, list[str]]:
        found = [
            r
            for r in document.get("recommendations", [])
            if (self.priority is None or r["priority"] == self.priority)
            and (
                self.action_contains is None or self.action_contains.lower() in r["action"].lower()
            )
        ]
        return bool(found), [f"recommendation ({r['priority']}): {r['action']}" for r in found]


@dataclass(frozen=True)
class AnomalyMatch(Condition):
    """`{anomaly: {metric: revenue, kind: drop, within_days: 7}}`: an anomaly with all of these,
    dated within `within_days` days up to the analysis day."""

    metric: str | None
    kind: str | None
    within_days: int

    def evaluate(self, document: dict) -> tuple[bool, list[str]]:
        as_of = dt.date.fromisoformat(document["as_of"])
        found = [
            a
            for a in document.get("patterns", {}).get("anomalies", [])
            if (self.metric is None or a["metric"] == self.metric)
            and (self.kind is None or a["kind"] == self.kind)
            and 0 <= (as_of - dt.date.fromisoformat(a["date"])).days < self.within_days
        ]
        return bool(found), [
            f"anomaly ({a['kind']}) {a['metric']} on {a['date']}: {a['value']}, expected {a['expected']}"
            for a in found
        ]


@dataclass(frozen=True)
class AnyOf(Condition):
    """`{any: [condition, ...]}`: at least one holds."""

    conditions: tuple[Condition, ...]

    def evaluate(self, document: dict) -> tuple[bool, list[str]]:
        reasons, holds = [], False
        for condition in self.conditions:
            ok, why = condition.evaluate(document)
            if ok:
                holds, reasons = True, reasons + why
        return holds, reasons


def parse_condition(raw: Any) -> Condition:
    if isinstance(raw, str):
        return _comparison(raw)
    if isinstance(raw, dict) and len(raw) == 1:
        ((kind, spec),) = raw.items()
        if kind == "recommendation":
            spec = _spec(spec, kind, {"priority", "action_contains"})
            priority = spec.get("priority")
            if priority is not None and priority not in PRIORITIES:
                raise ConditionError(
                    f"recommendation priority {priority!r} is not allowed; allowed: {', '.join(PRIORITIES)}"
                )
            return RecommendationMatch(priority, _optional_text(spec, "action_contains"))
        if kind == "anomaly":
            spec = _spec(spec, kind, {"metric", "kind", "within_days"})
            anomaly_kind = spec.get("kind")
            if anomaly_kind is not None and anomaly_kind not in ANOMALY_KINDS:
                raise ConditionError(
                    f"anomaly kind {anomaly_kind!r} is not allowed; allowed: {', '.join(ANOMALY_KINDS)}"
                )
            within = spec.get("within_days", 7)
            if not isinstance(within, int) or isinstance(within, bool) or not 1 <= within <= 366:
                raise ConditionError(
                    f"anomaly within_days {within!r} is not allowed; allowed: 1..366"
                )
            return AnomalyMatch(_optional_text(spec, "metric"), anomaly_kind, within)
        if kind == "any":
            if not isinstance(spec, list) or not spec:
                raise ConditionError("`any` needs a non-empty list of conditions")
            return AnyOf(tuple(parse_condition(item) for item in spec))
    raise ConditionError(
        f"condition {raw!r} is not allowed; allowed: `<field> <op> <value>` "
        '(e.g. churn_risk == "high"), {recommendation: {...}}, {anomaly: {...}} or {any: [...]}'
    )


def _comparison(text: str) -> Comparison:
    match = _EXPRESSION.match(text)
    if not match:
        raise ConditionError(
            f"condition {text!r} is not `<field> <op> <value>`; ops: {', '.join(COMPARISONS)}, in"
        )
    name, op, literal = match.groups()
    if name not in FIELDS:
        raise ConditionError(f"unknown field {name!r} in {text!r}; fields: {', '.join(FIELDS)}")
    kind, allowed = FIELDS[name]
    try:
        value = yaml.safe_load(literal)
    except yaml.YAMLError:
        raise ConditionError(
            f"value {literal!r} in {text!r} is not a number, text or list"
        ) from None
    values = value if op == "in" else [value]
    if op == "in" and not isinstance(value, list):
        raise ConditionError(
            f"`in` needs a list, e.g. {name} in [a, b]; got {literal!r} in {text!r}"
        )
    for item in values:
        if kind == NUMBER and (not isinstance(item, int | float) or isinstance(item, bool)):
            raise ConditionError(f"{name} is a number; {item!r} in {text!r} is not")
        if kind == TEXT and (not isinstance(item, str) or (allowed and item not in allowed)):
            raise ConditionError(
                f"{name} is one of {', '.join(allowed)}; {item!r} in {text!r} is not"
            )
        if kind == FLAG and not isinstance(item, bool):
            raise ConditionError(f"{name} is true or false; {item!r} in {text!r} is not")
    if kind != NUMBER and op not in ("==", "!=", "in"):
        raise ConditionError(f"{name} is {kind}: compare it with ==, != or in, not {op}")
    return Comparison(name, op, tuple(value) if op == "in" else value)


def _spec(spec: Any, kind: str, allowed: set[str]) -> dict:
    if not isinstance(spec, dict) or not spec:
        raise ConditionError(f"{kind} needs a mapping of {', '.join(sorted(allowed))}")
    unknown = set(spec) - allowed
    if unknown:
        raise ConditionError(
            f"unknown key {sorted(unknown)[0]!r} in {kind}; allowed: {', '.join(sorted(allowed))}"
        )
    return spec


def _optional_text(spec: dict, key: str) -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise ConditionError(f"{key} must be text, not {value!r}")
    return value
