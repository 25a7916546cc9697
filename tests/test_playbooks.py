"""Playbooks: the shipped file, conditions on hand-built documents, and bad files rejected by line."""

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from tenantpulse import definitions
from tenantpulse.actions.execute import action_payload, day_to_act_on, plan_actions
from tenantpulse.actions.playbooks import (
    PlaybookError,
    evaluate,
    load_playbooks,
    parse_playbooks,
    with_checked_playbooks,
)
from tenantpulse.cli import main
from tenantpulse.config import DEFAULT_PLAYBOOKS, SettingsError, load_settings

AS_OF = "2026-11-01"


def document(tenant="acme", health=80, risk="low", probability=0.1, recs=(), anomalies=()):
    return {
        "user_id": tenant,
        "as_of": AS_OF,
        "health_score": health,
        "churn_risk": risk,
        "churn_probability": probability,
        "health_components": {"revenue": health},
        "patterns": {
            "revenue_trend": {"direction": "up", "mom_growth": 0.1},
            "anomalies": [
                {"metric": m, "kind": k, "date": d, "value": 1.0, "expected": 9.0}
                for m, k, d in anomalies
            ],
        },
        "recommendations": [
            {"priority": p, "action": a, "impact": "", "evidence": []} for p, a in recs
        ],
    }


def fired(doc, playbook_file=None):
    playbook_file = playbook_file or load_playbooks(DEFAULT_PLAYBOOKS)
    return [(f.playbook.name, f.action.name) for f in evaluate(playbook_file, doc)]


def test_shipped_playbooks_call_and_offer_20_percent_when_churn_risk_is_high():
    playbook_file = load_playbooks(DEFAULT_PLAYBOOKS)
    assert fired(document(risk="high", probability=0.82, health=55)) == [
        ("churn_rescue", "schedule_customer_call"),
        ("churn_rescue", "offer_discount"),
    ]
    churn_rescue = playbook_file.playbooks[0]
    assert churn_rescue.cooldown_days == 30
    assert churn_rescue.actions[1].params["percent"] == 20
    assert playbook_file.handlers_used() == {"log"}
    assert fired(document()) == []


def test_payload_says_who_what_and_why_and_keeps_routing_out():
    doc = document(tenant="globex", risk="high", probability=0.82, health=55)
    firing = evaluate(load_playbooks(DEFAULT_PLAYBOOKS), doc)[0]
    payload = action_payload(firing, doc)
    assert payload["message"] == "Call globex: churn risk high (probability 0.82)"
    assert payload["reasons"] == ["churn_risk = high"]
    assert payload["params"] == {
        "owner": "customer_success",
        "duration_minutes": 30,
        "within_days": 2,
    }
    assert payload["analysis"] == {
        "health_score": 55,
        "churn_risk": "high",
        "churn_probability": 0.82,
    }
    assert payload["idempotency_key"].startswith("tp-") and len(payload["idempotency_key"]) == 35


def test_health_recommendation_and_anomaly_conditions():
    assert fired(document(health=35)) == [("health_critical", "notify_account_owner")]
    assert fired(document(health=40)) == []  # `< 40` is strict
    assert fired(document(health=None, risk="unknown", probability=None)) == []  # no data, no guess
    assert fired(document(recs=[("high", "Implement PR automation")])) == [
        ("high_priority_recommendation", "share_recommendation")
    ]
    assert fired(document(recs=[("medium", "Implement PR automation")])) == []
    # A revenue drop 2 days before as_of is within 3 days; one 3 days before is not; spikes never.
    assert fired(document(anomalies=[("revenue", "drop", "2026-10-30")])) == [
        ("revenue_drop", "investigate_revenue_drop")
    ]
    assert fired(document(anomalies=[("revenue", "drop", "2026-10-29")])) == []
    assert fired(document(anomalies=[("revenue", "spike", "2026-11-01")])) == []


def test_any_in_and_component_conditions(tmp_path):
    playbook_file = parse(
        """
        version: 1
        playbooks:
          - name: at_risk
            when:
              - any:
                  - churn_risk in [medium, high]
                  - health_components.revenue <= 20
              - patterns.revenue_trend.direction != "down"
            actions:
              - {name: ping, handler: log}
        """
    )
    assert fired(document(risk="medium"), playbook_file) == [("at_risk", "ping")]
    assert fired(document(health=20), playbook_file) == [("at_risk", "ping")]
    assert fired(document(health=21), playbook_file) == []
    reasons = evaluate(playbook_file, document(risk="high", health=10))[0].reasons
    assert reasons == (
        "churn_risk = high",
        "health_components.revenue = 10",
        "patterns.revenue_trend.direction = up",
    )


def test_cooldown_holds_an_action_back_within_its_days():
    docs = [document(tenant="globex", risk="high", probability=0.9)]
    playbook_file = load_playbooks(DEFAULT_PLAYBOOKS)
    recent = {("globex", "churn_rescue", "schedule_customer_call"): {dt.date(2026, 10, 3)}}
    planned, held_back = plan_actions(playbook_file, docs, recent)  # 29 days before: held back
    assert [a.key.action for a in planned] == ["offer_discount"]
    assert [k.action for k in held_back] == ["schedule_customer_call"]
    recent = {("globex", "churn_rescue", "schedule_customer_call"): {dt.date(2026, 10, 2)}}
    planned, held_back = plan_actions(playbook_file, docs, recent)  # 30 days: fires again
    assert len(planned) == 2 and held_back == []


def test_actions_act_on_the_newest_analysed_day_with_data():
    days = ["2026-10-31", "2026-11-01", "2026-11-02", "2026-11-25"]
    assert day_to_act_on(days, dt.date(2026, 11, 1)) == dt.date(2026, 11, 1)
    assert day_to_act_on(days, None) == dt.date(2026, 11, 25)
    assert day_to_act_on(days, dt.date(2026, 10, 1)) is None


GOOD_ACTION = "      - {name: ping, handler: log}\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "version: 1\nplaybooks:\n  - name: x\n    when: [churn_risk == high\n",
            5,
            "not valid YAML",
        ),
        ("playbooks: []\n", 1, "`version: 1` is required"),
        (
            "version: 1\nplaybooks:\n  - name: x\n    when:\n      - helth_score < 40\n    actions:\n"
            + GOOD_ACTION,
            5,
            "unknown field 'helth_score'",
        ),
        (
            'version: 1\nplaybooks:\n  - name: x\n    when:\n      - churn_risk == "hgih"\n'
            "    actions:\n" + GOOD_ACTION,
            5,
            "churn_risk is one of low, medium, high, unknown; 'hgih'",
        ),
        (
            "version: 1\nplaybooks:\n  - name: x\n    when:\n      - health_score < forty\n"
            "    actions:\n" + GOOD_ACTION,
            5,
            "health_score is a number",
        ),
        (
            "version: 1\nplaybooks:\n  - name: x\n    when:\n      - recommendation: {priority: urgent}\n"
            "    actions:\n" + GOOD_ACTION,
            5,
            "priority 'urgent' is not allowed; allowed: high, medium, low",
        ),
        (
            "version: 1\nplaybooks:\n  - name: x\n    when: [health_score < 40]\n    actions:\n"
            "      - name: call\n        handler: phone\n",
            7,
            "unknown handler 'phone'; allowed: log, webhook, slack",
        ),
        (
            "version: 1\nplaybooks:\n  - name: x\n    when: [health_score < 40]\n    actions:\n"
            "      - name: call\n        handler: webhook\n        params:\n          urll: http://x\n",
            8,  # the params that lack it
            "the webhook handler needs params.url",
        ),
        (
            "version: 1\nplaybooks:\n  - name: x\n    when: [health_score < 40]\n    actions:\n"
            "      - name: call\n        handler: slack\n        params: {channel: '#cs', message: 'hi {tenant}'}\n",
            8,
            "unknown placeholder {tenant}",
        ),
        (
            "version: 1\nplaybooks:\n  - name: x\n    when: [health_score < 40]\n    cooldown: 3\n"
            "    actions:\n" + GOOD_ACTION,
            5,
            "unknown key 'cooldown' in a playbook; allowed: actions, cooldown_days",
        ),
        (
            "version: 1\nplaybooks:\n  - name: x\n    when: [health_score < 40]\n    actions:\n"
            + GOOD_ACTION
            + "  - name: x\n    when: [health_score < 30]\n    actions:\n"
            + GOOD_ACTION,
            7,
            "playbook name 'x' is used twice",
        ),
    ],
)
def test_a_bad_playbook_file_fails_loading_naming_the_line(tmp_path, text, line, message):
    path = tmp_path / "playbooks.yaml"
    path.write_text(text)
    with pytest.raises(PlaybookError) as error:
        load_playbooks(path)
    assert f"{path}, line {line}:" in str(error.value)
    assert message in str(error.value)


def test_a_bad_playbook_file_stops_the_cli_and_the_code_location_at_start(tmp_path, monkeypatch):
    path = tmp_path / "playbooks.yaml"
    path.write_text(
        "version: 1\nplaybooks:\n  - name: x\n    when:\n      - helth_score < 40\n"
        "    actions:\n" + GOOD_ACTION
    )
    named = f"TENANTPULSE_PLAYBOOKS: {path}, line 5: playbook x: unknown field 'helth_score'"
    with pytest.raises(SettingsError) as error:
        with_checked_playbooks(
            load_settings({"TENANTPULSE_HOME": str(tmp_path), "TENANTPULSE_PLAYBOOKS": str(path)})
        )
    assert named in str(error.value)

    monkeypatch.setenv("TENANTPULSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TENANTPULSE_PLAYBOOKS", str(path))
    monkeypatch.delenv("TENANTPULSE_WAREHOUSE_URL", raising=False)
    with pytest.raises(SettingsError) as error:  # what loading the code location calls
        definitions.defs()
    assert named in str(error.value)
    result = CliRunner().invoke(main, ["tenants", "list"])
    assert result.exit_code != 0 and named in result.output
    assert not (tmp_path / "home").exists()  # stopped before the warehouse was opened


def test_action_settings_name_the_variable_and_what_is_allowed(tmp_path):
    settings = load_settings({"TENANTPULSE_HOME": str(tmp_path)})
    assert settings.actions.playbooks_path == DEFAULT_PLAYBOOKS
    assert settings.actions.dry_run is False
    secret = load_settings({"TENANTPULSE_WEBHOOK_SECRET": "s3cret", "TENANTPULSE_SLACK_TOKEN": "x"})
    assert "s3cret" not in repr(secret.actions) and "***" in repr(secret.actions)
    assert load_settings({"TENANTPULSE_ACTIONS_DRY_RUN": "yes"}).actions.dry_run is True
    with pytest.raises(SettingsError, match="TENANTPULSE_ACTIONS_DRY_RUN='maybe' .* allowed: true"):
        load_settings({"TENANTPULSE_ACTIONS_DRY_RUN": "maybe"})
    with pytest.raises(SettingsError, match="TENANTPULSE_PLAYBOOKS=.*is not a file; allowed"):
        load_settings({"TENANTPULSE_PLAYBOOKS": str(tmp_path / "missing.yaml")})
    with pytest.raises(SettingsError, match="TENANTPULSE_WEBHOOK_MAX_ATTEMPTS=0 is out of range"):
        load_settings({"TENANTPULSE_WEBHOOK_MAX_ATTEMPTS": "0"})


def parse(text: str):
    return parse_playbooks(textwrap.dedent(text), Path("test.yaml"))
