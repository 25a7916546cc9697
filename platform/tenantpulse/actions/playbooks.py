"""Playbooks: YAML rules over a tenant's analysis document, validated at load, evaluated per tenant.

The schema is in docs/actions.md. Every error names the file and the line, so a typo in a playbook
is found when it is loaded, not when the condition it guards would have fired.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tenantpulse.actions.conditions import (
    Condition,
    ConditionError,
    parse_condition,
)
from tenantpulse.config import Settings, SettingsError

HANDLERS = ("log", "webhook", "slack")
ALERTS = ("run_failure", "stale_data")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Placeholders a `message` may use: the tenant, the day, and the document's headline numbers.
MESSAGE_FIELDS = (
    "tenant_id",
    "as_of",
    "playbook",
    "action",
    "health_score",
    "churn_risk",
    "churn_probability",
    "reasons",
)


class PlaybookError(ValueError):
    """The playbook file is not valid; the message names the file, the line and what is allowed."""


@dataclass(frozen=True)
class ActionSpec:
    name: str
    handler: str  # one of HANDLERS
    params: dict[str, Any]  # passed to the receiver; `url`, `channel`, `message` are the handler's
    line: int


@dataclass(frozen=True)
class Playbook:
    name: str
    description: str
    conditions: tuple[Condition, ...]  # all must hold
    actions: tuple[ActionSpec, ...]
    cooldown_days: int  # at most one firing per tenant and action within this many days
    line: int


@dataclass(frozen=True)
class AlertRule:
    actions: tuple[ActionSpec, ...]
    max_age_hours: float | None = None  # stale data only


@dataclass(frozen=True)
class PlaybookFile:
    path: Path
    playbooks: tuple[Playbook, ...]
    run_failure: AlertRule = field(default_factory=lambda: AlertRule(()))
    stale_data: AlertRule = field(default_factory=lambda: AlertRule((), 48.0))

    def handlers_used(self) -> set[str]:
        specs = [a for p in self.playbooks for a in p.actions]
        specs += [*self.run_failure.actions, *self.stale_data.actions]
        return {a.handler for a in specs}


@dataclass(frozen=True)
class Firing:
    """One action a playbook fires for one tenant and day, with the values that made it fire."""

    playbook: Playbook
    action: ActionSpec
    tenant_id: str
    as_of: dt.date
    reasons: tuple[str, ...]


def with_checked_playbooks(settings: Settings) -> Settings:
    """`settings`, once its playbook file loads: every command and the code location check it at
    start, so a bad file is not found by the flow's last stage (the act step and the alert sensors
    load it again when they run, so an edit is picked up without a reload)."""
    try:
        load_playbooks(settings.actions.playbooks_path)
    except PlaybookError as error:
        raise SettingsError(f"TENANTPULSE_PLAYBOOKS: {error}") from None
    return settings


def load_playbooks(path: Path) -> PlaybookFile:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise PlaybookError(f"{path}: cannot read the playbook file ({error.strerror})") from None
    return parse_playbooks(text, Path(path))


def parse_playbooks(text: str, path: Path) -> PlaybookFile:
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise PlaybookError(f"{path}{line}: not valid YAML: {problem}") from None
    where = _Where(path)
    top = where.mapping(document, 1, "the file", {"version", "playbooks", "alerts"})
    if top.get("version") != 1:
        raise where.error(top.key_line("version", top.line), "`version: 1` is required")
    playbooks = where.sequence(top.get("playbooks"), top.key_line("playbooks", 1), "playbooks")
    parsed = tuple(_playbook(where, item, line) for item, line in playbooks)
    seen = set()
    for playbook in parsed:
        if playbook.name in ALERTS:
            raise where.error(playbook.line, f"playbook name {playbook.name!r} is kept for alerts")
        if playbook.name in seen:
            raise where.error(playbook.line, f"playbook name {playbook.name!r} is used twice")
        seen.add(playbook.name)
    alerts = top.get("alerts") or _LineDict()
    alerts_line = top.key_line("alerts", 1)
    alerts = where.mapping(alerts, alerts_line, "alerts", {"run_failure", "stale_data"})
    run_failure = _alert(
        where, alerts.get("run_failure"), alerts.key_line("run_failure", alerts_line), False
    )
    stale_data = _alert(
        where, alerts.get("stale_data"), alerts.key_line("stale_data", alerts_line), True
    )
    return PlaybookFile(Path(path), parsed, run_failure, stale_data)


def evaluate(playbook_file: PlaybookFile, document: dict) -> list[Firing]:
    """The actions that fire for one tenant's analysis document (cooldowns are the ledger's)."""
    as_of = dt.date.fromisoformat(document["as_of"])
    firings = []
    for playbook in playbook_file.playbooks:
        reasons: list[str] = []
        for condition in playbook.conditions:
            holds, why = condition.evaluate(document)
            if not holds:
                break
            reasons += why
        else:
            firings += [
                Firing(playbook, action, document["user_id"], as_of, tuple(reasons))
                for action in playbook.actions
            ]
    return firings


def render_message(template: str, values: dict[str, Any]) -> str:
    return template.format_map({name: values.get(name, "") for name in MESSAGE_FIELDS})


# --- validation --------------------------------------------------------------------------------


class _LineDict(dict):
    line = 1
    key_lines: dict[str, int] = {}

    def key_line(self, key: str, default: int) -> int:
        return self.key_lines.get(key, default)


class _LineList(list):
    line = 1
    item_lines: list[int] = []


class _LineLoader(yaml.SafeLoader):
    """Keeps the line of every mapping, key and list item, for error messages."""


def _construct_mapping(loader, node):
    mapping = _LineDict(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    return mapping


def _construct_sequence(loader, node):
    items = _LineList(loader.construct_sequence(node, deep=True))
    items.line = node.start_mark.line + 1
    items.item_lines = [item.start_mark.line + 1 for item in node.value]
    return items


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


@dataclass(frozen=True)
class _Where:
    path: Path

    def error(self, line: int, message: str) -> PlaybookError:
        return PlaybookError(f"{self.path}, line {line}: {message}")

    def mapping(self, value, line: int, what: str, allowed: set[str]) -> _LineDict:
        if not isinstance(value, dict):
            raise self.error(getattr(value, "line", line), f"{what} must be a mapping")
        for key in value:
            if key not in allowed:
                raise self.error(
                    value.key_line(str(key), value.line),
                    f"unknown key {key!r} in {what}; allowed: {', '.join(sorted(allowed))}",
                )
        return value

    def sequence(self, value, line: int, what: str) -> list[tuple[Any, int]]:
        if not isinstance(value, list) or not value:
            raise self.error(getattr(value, "line", line), f"{what} must be a non-empty list")
        return list(zip(value, value.item_lines, strict=True))

    def name(self, value, line: int, what: str) -> str:
        if not isinstance(value, str) or not NAME.match(value):
            raise self.error(
                line,
                f"{what} {value!r} is not a name: use lowercase letters, digits and "
                "underscores, starting with a letter",
            )
        return value


def _playbook(where: _Where, item, line: int) -> Playbook:
    allowed = {"name", "description", "when", "actions", "cooldown_days"}
    item = where.mapping(item, line, "a playbook", allowed)
    for required in ("name", "when", "actions"):
        if required not in item:
            raise where.error(item.line, f"a playbook needs `{required}`")
    name = where.name(item["name"], item.key_line("name", line), "playbook name")
    conditions = []
    for condition, condition_line in where.sequence(
        item["when"], item.key_line("when", line), f"`when` of playbook {name}"
    ):
        try:
            conditions.append(parse_condition(condition))
        except ConditionError as error:
            raise where.error(condition_line, f"playbook {name}: {error}") from None
    cooldown = item.get("cooldown_days", 0)
    if not isinstance(cooldown, int) or isinstance(cooldown, bool) or not 0 <= cooldown <= 366:
        raise where.error(
            item.key_line("cooldown_days", line),
            f"cooldown_days {cooldown!r} is not allowed; allowed: a whole number 0..366",
        )
    actions = _actions(where, item["actions"], item.key_line("actions", line), f"playbook {name}")
    return Playbook(
        name, str(item.get("description", "")), tuple(conditions), actions, cooldown, item.line
    )


def _alert(where: _Where, value, line: int, stale: bool) -> AlertRule:
    if value is None:
        return AlertRule((), 48.0 if stale else None)
    allowed = {"actions", "max_age_hours"} if stale else {"actions"}
    what = "alerts.stale_data" if stale else "alerts.run_failure"
    value = where.mapping(value, line, what, allowed)
    max_age = value.get("max_age_hours", 48.0) if stale else None
    if stale and (
        not isinstance(max_age, int | float)
        or isinstance(max_age, bool)
        or not 1 <= max_age <= 8760
    ):
        raise where.error(
            value.key_line("max_age_hours", value.line),
            f"max_age_hours {max_age!r} is not allowed; allowed: a number of hours 1..8760",
        )
    actions = _actions(where, value.get("actions"), value.key_line("actions", value.line), what)
    return AlertRule(actions, None if max_age is None else float(max_age))


def _actions(where: _Where, value, line: int, owner: str) -> tuple[ActionSpec, ...]:
    specs = []
    for item, item_line in where.sequence(value, line, f"`actions` of {owner}"):
        item = where.mapping(
            item, item_line, f"an action of {owner}", {"name", "handler", "params"}
        )
        if "name" not in item or "handler" not in item:
            raise where.error(item.line, f"an action of {owner} needs `name` and `handler`")
        name = where.name(item["name"], item.key_line("name", item.line), "action name")
        handler = item["handler"]
        handler_line = item.key_line("handler", item.line)
        if handler not in HANDLERS:
            raise where.error(
                handler_line,
                f"action {name}: unknown handler {handler!r}; allowed: {', '.join(HANDLERS)}",
            )
        params = item.get("params") or _LineDict()
        params_line = item.key_line("params", item.line)
        if not isinstance(params, dict):
            raise where.error(params_line, f"action {name}: params must be a mapping")
        _check_params(where, name, handler, params, params_line)
        if name in [s.name for s in specs]:
            raise where.error(item.line, f"action name {name!r} is used twice in {owner}")
        specs.append(ActionSpec(name, handler, _plain(params), item.line))
    return tuple(specs)


def _check_params(where: _Where, name: str, handler: str, params: dict, line: int) -> None:
    def at(key: str) -> int:
        return params.key_line(key, line) if isinstance(params, _LineDict) else line

    if handler == "webhook":
        url = params.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            raise where.error(
                at("url"), f"action {name}: the webhook handler needs params.url (http or https)"
            )
    if handler == "slack" and not (
        isinstance(params.get("channel"), str) and params["channel"].strip()
    ):
        raise where.error(at("channel"), f"action {name}: the slack handler needs params.channel")
    message = params.get("message")
    if message is not None:
        if not isinstance(message, str):
            raise where.error(at("message"), f"action {name}: params.message must be text")
        try:
            placeholders = [f for _, f, _, _ in string.Formatter().parse(message) if f is not None]
        except ValueError as error:
            raise where.error(at("message"), f"action {name}: bad message: {error}") from None
        unknown = [f for f in placeholders if f not in MESSAGE_FIELDS]
        if unknown:
            raise where.error(
                at("message"),
                f"action {name}: unknown placeholder {{{unknown[0]}}} in params.message; "
                f"allowed: {', '.join('{' + f + '}' for f in MESSAGE_FIELDS)}",
            )


def _plain(value):
    """The loader's line-keeping containers as plain dicts and lists (for JSON payloads)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
