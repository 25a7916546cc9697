"""Actions exactly once, on DuckDB and Postgres: the ledger, crashes, retries across days,
claims, dry run, alerts, and the sensors and `act` job through Dagster."""

import datetime as dt
import textwrap
import threading

import dagster as dg
import pytest

from actionkit import WebhookReceiver, lapse_claims, tenant_day, write_analysis_day
from conftest import make_settings
from tenantpulse.actions.action_log import (
    CLAIM_LEASE,
    DONE,
    DRY_RUN,
    FAILED,
    GAVE_UP,
    PENDING,
    ActionKey,
    actions_on,
    claim,
    ensure_action_log,
    mark_done,
    mark_failed,
    recent_firings,
    record,
)
from tenantpulse.actions.alerts import STALE_DATA, send_alert, stale_tenants
from tenantpulse.actions.execute import act_on_day
from tenantpulse.actions.handlers import LogHandler, WebhookHandler
from tenantpulse.actions.playbooks import load_playbooks
from tenantpulse.config import DEFAULT_PLAYBOOKS
from tenantpulse.definitions import build_definitions
from tenantpulse.sources.sync_history import SyncRecord, record_sync
from tenantpulse.tenants.registry import add_tenant, remove_tenant

DAY = dt.date(2026, 11, 1)
NEXT_DAY = DAY + dt.timedelta(days=1)
SECRET = "test-secret"
LAPSED = CLAIM_LEASE + dt.timedelta(seconds=1)  # a claim this old is taken again


def churning_and_healthy(day=DAY):
    return [
        tenant_day("globex_churn", 38, "high", 0.91),
        tenant_day("acme_growth", 90, "low", 0.05, recommendations=[("low", "Time campaigns")]),
    ]


def webhook_playbooks(tmp_path, url):
    path = tmp_path / "playbooks.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            playbooks:
              - name: churn_rescue
                when: [churn_risk == "high"]
                cooldown_days: 30
                actions:
                  - name: schedule_customer_call
                    handler: webhook
                    params: {{url: "{url}", owner: customer_success}}
                  - name: offer_discount
                    handler: webhook
                    params: {{url: "{url}", percent: 20}}
            """
        )
    )
    return load_playbooks(path)


def webhook(**kwargs):
    return {"log": LogHandler(), "webhook": WebhookHandler(SECRET, sleep=lambda _: None, **kwargs)}


def statuses(warehouse, day=DAY):
    with warehouse.connect() as conn:
        return {
            (a.key.tenant_id, a.key.action): (a.status, a.attempts) for a in actions_on(conn, day)
        }


def test_churning_tenant_gets_the_call_and_discount_once_across_reruns(warehouse, tmp_path):
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, churning_and_healthy())
    with WebhookReceiver(SECRET) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        first = act_on_day(warehouse, playbooks, webhook(), DAY)
        # The day is analysed again (same result): nothing new fires.
        with warehouse.connect() as conn:
            write_analysis_day(conn, DAY, churning_and_healthy())
        again = act_on_day(warehouse, playbooks, webhook(), DAY)
        # The next day the tenant is still at risk: the 30-day cooldown holds the actions back.
        next_day = DAY + dt.timedelta(days=1)
        with warehouse.connect() as conn:
            write_analysis_day(conn, next_day, churning_and_healthy())
        later = act_on_day(warehouse, playbooks, webhook(), next_day)
    assert [(k.tenant_id, k.action) for k in first.sent] == [
        ("globex_churn", "offer_discount"),
        ("globex_churn", "schedule_customer_call"),
    ]
    assert first.tenants_evaluated == 2 and first.failed == []
    assert again.sent == [] and later.sent == [] and len(later.held_back) == 2
    assert len(receiver.attempts) == 2 and all(a["signed"] for a in receiver.attempts)
    bodies = {body["action"]: body for body in receiver.accepted.values()}
    assert bodies["offer_discount"]["params"] == {"percent": 20}
    assert bodies["schedule_customer_call"]["reasons"] == ["churn_risk = high"]
    assert statuses(warehouse) == {
        ("globex_churn", "offer_discount"): (DONE, 1),
        ("globex_churn", "schedule_customer_call"): (DONE, 1),
    }


def test_a_crash_before_or_after_sending_is_retried_with_the_same_key(warehouse, tmp_path):
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, churning_and_healthy())

    class CrashAfterSending(WebhookHandler):
        def send(self, request):
            super().send(request)
            raise SystemExit("the process died before recording `done`")

    with WebhookReceiver(SECRET) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        crashing = {"webhook": CrashAfterSending(SECRET, sleep=lambda _: None)}
        with pytest.raises(SystemExit):
            act_on_day(warehouse, playbooks, crashing, DAY)
        # Recorded before sending, so neither action is lost; the first one, claimed (one
        # attempt), did reach the receiver.
        assert sorted(statuses(warehouse).values()) == [(PENDING, 0), (PENDING, 1)]
        assert len(receiver.attempts) == 1
        with warehouse.connect() as conn:
            lapse_claims(conn, LAPSED)  # the dead run's claim has run out
        recovered = act_on_day(warehouse, playbooks, webhook(), DAY)
    assert len(recovered.sent) == 2 and recovered.clean
    # The receiver saw the first action twice with the same key and took it once.
    keys = [a["key"] for a in receiver.attempts]
    assert len(keys) == 3 and len(set(keys)) == 2 and len(receiver.accepted) == 2
    assert keys[0] == keys[1] and receiver.attempts[0]["body"] == receiver.attempts[1]["body"]
    assert sorted(statuses(warehouse).values()) == [(DONE, 1), (DONE, 2)]


def test_a_crash_mid_delivery_keeps_the_actions_sent_before_it_done(
    warehouse, tmp_path, monkeypatch
):
    with warehouse.connect() as conn:
        write_analysis_day(
            conn, DAY, [tenant_day(f"churn_{i}", 38, "high", 0.91) for i in range(3)]
        )
    opened = []
    connect = warehouse.connect

    def counted_connect():
        opened.append(True)
        return connect()

    monkeypatch.setattr(warehouse, "connect", counted_connect)

    class CrashOnTheFourthAction(WebhookHandler):
        calls = 0

        def send(self, request):
            self.calls += 1
            if self.calls == 4:
                raise SystemExit("the process died before sending the fourth action")
            return super().send(request)

    with WebhookReceiver(SECRET) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        crashing = {"webhook": CrashOnTheFourthAction(SECRET, sleep=lambda _: None)}
        with pytest.raises(SystemExit):
            act_on_day(warehouse, playbooks, crashing, DAY)
        # Evaluation, the ledger and every delivery share one connection, committed per action.
        assert len(opened) == 1
        assert sorted(statuses(warehouse).values()) == [(DONE, 1)] * 3 + [
            (PENDING, 0),
            (PENDING, 0),
            (PENDING, 1),  # claimed, then the crash
        ]
        assert len(receiver.attempts) == 3
        with warehouse.connect() as conn:
            lapse_claims(conn, LAPSED)
        recovered = act_on_day(warehouse, playbooks, webhook(), DAY)
    assert len(recovered.sent) == 3 and len(receiver.attempts) == 6
    assert len(receiver.accepted) == 6
    assert sorted(statuses(warehouse).values()) == [(DONE, 1)] * 5 + [(DONE, 2)]


def test_a_receiver_that_fails_twice_then_succeeds_gets_one_delivery(warehouse, tmp_path):
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
    with WebhookReceiver(SECRET, fail_with=[503, 502]) as receiver:
        report = act_on_day(warehouse, webhook_playbooks(tmp_path, receiver.url), webhook(), DAY)
    assert len(report.sent) == 2
    assert [a["status"] for a in receiver.attempts] == [503, 502, 200, 200]
    assert len(receiver.accepted) == 2


def test_a_failed_delivery_is_recorded_and_sent_by_the_next_run(warehouse, tmp_path):
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
    with WebhookReceiver(SECRET, fail_with=[500, 500]) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        failing = act_on_day(warehouse, playbooks, webhook(max_attempts=1), DAY)
        assert len(failing.failed) == 2
        with warehouse.connect() as conn:
            errors = {a.error for a in actions_on(conn, DAY, (FAILED,))}
        assert errors == {
            f'DeliveryError: {receiver.url}: gave up after 1 attempts; last: HTTP 500 {{"duplicate": false}}'
        }
        retried = act_on_day(warehouse, playbooks, webhook(max_attempts=1), DAY)
    assert len(retried.sent) == 2 and len(receiver.accepted) == 2
    assert set(statuses(warehouse).values()) == {(DONE, 2)}


def test_dry_run_records_what_would_fire_and_sends_nothing(warehouse, tmp_path):
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, churning_and_healthy())
    with WebhookReceiver(SECRET) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        dry = act_on_day(warehouse, playbooks, webhook(), DAY, dry_run=True)
        assert [k.action for k in (a.key for a in dry.planned)] == [
            "schedule_customer_call",
            "offer_discount",
        ]
        assert receiver.attempts == [] and set(statuses(warehouse).values()) == {(DRY_RUN, 0)}
        real = act_on_day(warehouse, playbooks, webhook(), DAY)
    assert len(real.sent) == 2 and len(receiver.accepted) == 2


def test_stale_data_alert_is_sent_once_per_tenant_and_day(warehouse):
    now = dt.datetime(2026, 11, 5, 12, tzinfo=dt.UTC)
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, churning_and_healthy())  # registers both tenants
        for tenant, hours_ago in (("globex_churn", 60), ("acme_growth", 2)):
            finished = now - dt.timedelta(hours=hours_ago)
            record_sync(
                conn,
                SyncRecord(
                    tenant, f"sim:{tenant}", "stripe", "1", finished, finished, 5, "succeeded"
                ),
            )
        stale = stale_tenants(conn, now, 48)
    # 60 hours without a sync is stale at 48; 2 hours is not.
    assert [(t, n.astimezone(dt.UTC)) for t, n in stale] == [
        ("globex_churn", now - dt.timedelta(hours=60))
    ]
    rule = load_playbooks_default().stale_data
    for _ in range(2):
        send_alert(
            warehouse,
            rule,
            STALE_DATA,
            "globex_churn",
            now.date(),
            "",
            "stale",
            {},
            {"log": LogHandler()},
        )
    with warehouse.connect() as conn:
        [alert] = actions_on(conn, now.date())
    assert (alert.key.playbook, alert.status, alert.attempts) == (STALE_DATA, DONE, 1)


def test_simulated_tenants_are_stale_against_the_simulations_clock(warehouse):
    """A simulation dated a month back is not stale at the wall clock; a simulated tenant 60 hours
    behind the newest simulated sync is, and so is an Airbyte tenant whose sync is that old and a
    simulated tenant whose only sync, 60 hours behind, failed."""
    now = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)
    simulation = dt.datetime(2026, 11, 5, 12, tzinfo=dt.UTC)
    tenants = {
        "acme_growth": ("sim:acme_growth:stripe", simulation, "succeeded"),
        "globex_churn": (
            "sim:globex_churn:stripe",
            simulation - dt.timedelta(hours=60),
            "succeeded",
        ),
        "initech_weekly": ("sim:initech_weekly:stripe", simulation, "failed"),
        "hooli_eng": ("8c2f0d4e-airbyte-connection", simulation, "succeeded"),
        # Never a success, its only sync 60 hours behind: stale from its first sync on.
        "umbrella_spikes": (
            "sim:umbrella_spikes:stripe",
            simulation - dt.timedelta(hours=60),
            "failed",
        ),
    }
    with warehouse.connect() as conn:
        for tenant, (connection, finished, status) in tenants.items():
            add_tenant(conn, tenant, tenant, ["stripe"])
            record_sync(
                conn, SyncRecord(tenant, connection, "stripe", "1", finished, finished, 5, status)
            )
        # initech's newest successful sync is 60 hours behind its failed one, the newest.
        record_sync(
            conn,
            SyncRecord(
                "initech_weekly",
                "sim:initech_weekly:stripe",
                "stripe",
                "0",
                simulation - dt.timedelta(hours=60),
                simulation - dt.timedelta(hours=60),
                5,
                "succeeded",
            ),
        )
        stale = stale_tenants(conn, now, 48)
    assert sorted((t, n and n.astimezone(dt.UTC)) for t, n in stale) == [
        ("globex_churn", simulation - dt.timedelta(hours=60)),
        ("hooli_eng", simulation),
        ("initech_weekly", simulation - dt.timedelta(hours=60)),
        ("umbrella_spikes", None),
    ]


def load_playbooks_default():
    return load_playbooks(DEFAULT_PLAYBOOKS)


def test_the_act_job_acts_once_across_runs_and_failures_are_alerted(settings, warehouse, tmp_path):
    """Through Dagster: the `act_job` run twice for a day (the flow's last stage, or a re-run
    from the UI), and the run-failure sensor."""
    defs = build_definitions(settings)
    sensors = {s.name: s for s in defs.sensors}
    assert {name: s.default_status for name, s in sensors.items()} == {
        name: dg.DefaultSensorStatus.RUNNING
        for name in (
            "new_syncs_sensor",
            "flow_sensor",
            "tenant_partitions_sensor",
            "run_failure_alert_sensor",
            "stale_data_sensor",
            "landing_failed_alert_sensor",
            "token_refresh_sensor",
        )
    }
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, churning_and_healthy())
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("act_job")
        first = job.execute_in_process(instance=instance, partition_key=DAY.isoformat())
        assert first.success
        [materialization] = first.asset_materializations_for_node("actions__action_log")
        assert materialization.metadata["fired"].value == 2
        assert materialization.metadata["sent"].value == 2
        again = job.execute_in_process(instance=instance, partition_key=DAY.isoformat())
        [materialization] = again.asset_materializations_for_node("actions__action_log")
        assert materialization.metadata["sent"].value == 0  # done already: nothing sent twice
        with warehouse.connect() as conn:
            logged = actions_on(conn, DAY)
        assert [(a.key.tenant_id, a.key.action, a.status, a.attempts) for a in logged] == [
            ("globex_churn", "offer_discount", DONE, 1),
            ("globex_churn", "schedule_customer_call", DONE, 1),
        ]

        @dg.op
        def breaks():
            raise RuntimeError("the warehouse is on fire")

        @dg.job
        def fragile():
            breaks()

        failed = fragile.execute_in_process(instance=instance, raise_on_error=False)
        failure_event = next(
            e for e in failed.all_events if e.event_type_value == "PIPELINE_FAILURE"
        )
        for _ in range(2):  # a second evaluation of the same failure sends nothing again
            context = dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert_sensor",
                dagster_event=failure_event,
                dagster_instance=instance,
                dagster_run=failed.dagster_run,
            ).for_run_failure()
            sensors["run_failure_alert_sensor"](context)
    with warehouse.connect() as conn:
        alerts = [
            a
            for a in actions_on(conn, dt.datetime.now(dt.UTC).date())
            if a.key.playbook == "run_failure"
        ]
    assert [(a.key.subject, a.status, a.attempts) for a in alerts] == [(failed.run_id, DONE, 1)]
    assert "failed" in alerts[0].payload["message"] and "fragile" in alerts[0].payload["message"]


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_dry_run_setting_reaches_the_act_job(tmp_path, warehouse_url):
    settings = make_settings(tmp_path, warehouse_url, TENANTPULSE_ACTIONS_DRY_RUN="true")
    from tenantpulse.warehouse import open_warehouse

    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, churning_and_healthy())
        ensure_action_log(conn)
        record(conn, *_unrelated_pending())
    with dg.instance_for_test() as instance:
        result = (
            build_definitions(settings)
            .resolve_job_def("act_job")
            .execute_in_process(instance=instance, partition_key=DAY.isoformat())
        )
    assert result.success
    assert set(statuses(warehouse).values()) == {(DRY_RUN, 0), (PENDING, 0)}


def _unrelated_pending():
    """A pending row of a playbook not in the file: a dry run must not send it either."""
    from tenantpulse.actions.action_log import ActionKey

    return ActionKey("acme_growth", "retired_playbook", "ping", DAY), "log", {"tenant_id": "x"}


# Across days: one rule over the whole ledger.


def test_a_failed_action_holds_the_next_day_back_and_is_sent_then_under_its_own_key(
    warehouse, tmp_path
):
    """Day D's delivery fails; D+1 the tenant is still at risk. The customer gets the call and
    the discount once, under D's keys, and a later run for D sends nothing more."""
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
        write_analysis_day(conn, NEXT_DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
    with WebhookReceiver(SECRET, fail_with=[500, 500]) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        first = act_on_day(warehouse, playbooks, webhook(max_attempts=1), DAY)
        assert len(first.failed) == 2 and not first.clean
        next_day = act_on_day(warehouse, playbooks, webhook(max_attempts=1), NEXT_DAY)
        again = act_on_day(warehouse, playbooks, webhook(max_attempts=1), DAY)
    assert next_day.planned == [] and len(next_day.held_back) == 2
    assert sorted(k.action for k in next_day.retried) == [
        "offer_discount",
        "schedule_customer_call",
    ]
    assert next_day.sent == next_day.retried and next_day.clean
    assert again.sent == [] and again.retried == [] and again.clean
    # 2 failed attempts on D, then 2 deliveries on D+1 under D's keys: one of each action.
    day_keys = {
        ActionKey("globex_churn", "churn_rescue", a, DAY).idempotency_key()
        for a in ("offer_discount", "schedule_customer_call")
    }
    assert [a["status"] for a in receiver.attempts] == [500, 500, 200, 200]
    assert set(receiver.accepted) == day_keys
    assert [b["as_of"] for b in receiver.accepted.values()] == ["2026-11-01"] * 2
    assert statuses(warehouse) == {
        ("globex_churn", "offer_discount"): (DONE, 2),
        ("globex_churn", "schedule_customer_call"): (DONE, 2),
    }
    assert statuses(warehouse, NEXT_DAY) == {}


def test_a_crash_leaving_pending_is_sent_by_the_next_days_run_with_the_same_key(
    warehouse, tmp_path
):
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
        write_analysis_day(conn, NEXT_DAY, [tenant_day("globex_churn", 38, "high", 0.91)])

    class CrashBeforeSending(WebhookHandler):
        def send(self, request):
            raise SystemExit("the process died while sending")

    with WebhookReceiver(SECRET) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        with pytest.raises(SystemExit):
            act_on_day(warehouse, playbooks, {"webhook": CrashBeforeSending(SECRET)}, DAY)
        with warehouse.connect() as conn:
            lapse_claims(conn, dt.timedelta(days=1))  # the next day's run comes a day later
        next_day = act_on_day(warehouse, playbooks, webhook(), NEXT_DAY)
    assert len(next_day.held_back) == 2 and next_day.planned == []
    assert len(next_day.sent) == 2 and next_day.clean
    assert {b["idempotency_key"] for b in receiver.accepted.values()} == set(receiver.accepted)
    assert sorted(receiver.accepted) == sorted(
        ActionKey("globex_churn", "churn_rescue", a, DAY).idempotency_key()
        for a in ("offer_discount", "schedule_customer_call")
    )
    assert len(receiver.attempts) == 2
    # The action the crash interrupted was claimed twice; the other once.
    assert sorted(statuses(warehouse).values()) == [(DONE, 1), (DONE, 2)]


def test_the_cooldown_counts_unfinished_and_given_up_actions_not_dry_runs(warehouse):
    """The same action in each state, one day apart: all but the dry run hold it back."""
    outcomes = {
        PENDING: lambda conn, key: None,
        FAILED: lambda conn, key: mark_failed(conn, key, "HTTP 500"),
        DONE: lambda conn, key: mark_done(conn, key, "logged"),
        GAVE_UP: lambda conn, key: mark_failed(conn, key, "HTTP 500", final=True),
    }
    with warehouse.connect() as conn:
        ensure_action_log(conn)
        for offset, status in enumerate([*outcomes, DRY_RUN]):
            key = ActionKey(
                "globex_churn", "churn_rescue", "offer_discount", DAY + dt.timedelta(offset)
            )
            record(conn, key, "log", {}, dry_run=status == DRY_RUN)
            if status in outcomes:
                claim(conn, key, "run-1")
                outcomes[status](conn, key)
        logged = [a.status for d in range(5) for a in actions_on(conn, DAY + dt.timedelta(d))]
        found = recent_firings(conn, DAY + dt.timedelta(days=10), 30)
    assert logged == [PENDING, FAILED, DONE, GAVE_UP, DRY_RUN]
    assert found == {
        ("globex_churn", "churn_rescue", "offer_discount"): {
            DAY + dt.timedelta(days=offset) for offset in range(4)
        }
    }


def test_an_action_is_given_up_after_its_delivery_attempts_and_never_sent_again(
    warehouse, tmp_path
):
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
        write_analysis_day(conn, NEXT_DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
    with WebhookReceiver(SECRET, otherwise=500) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        runs = [act_on_day(warehouse, playbooks, webhook(max_attempts=1), DAY) for _ in range(5)]
        after = act_on_day(warehouse, playbooks, webhook(max_attempts=1), NEXT_DAY)
    # 5 runs x 2 actions, one attempt each; the fifth gives up; then nothing more is sent.
    assert len(receiver.attempts) == 10
    assert [len(r.unfinished) for r in runs] == [2, 2, 2, 2, 0]
    assert [len(r.gave_up) for r in runs] == [0, 0, 0, 0, 2]
    assert runs[-1].gave_up[0].error.startswith("gave up after 5 delivery attempts; last: ")
    assert "HTTP 500" in runs[-1].gave_up[0].error
    # Given up is final, and it still counts for the cooldown: the next day fires nothing.
    assert after.sent == after.planned == after.retried == [] and len(after.held_back) == 2
    assert after.clean
    assert set(statuses(warehouse).values()) == {(GAVE_UP, 5)}


def test_an_action_whose_runs_all_died_while_sending_it_is_given_up(warehouse, tmp_path):
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
        ensure_action_log(conn)
        key = ActionKey("globex_churn", "churn_rescue", "offer_discount", DAY)
        record(conn, key, "webhook", {"as_of": DAY.isoformat()})
        for run in range(5):  # five runs took it and died
            assert claim(conn, key, f"run-{run}") == run + 1
            lapse_claims(conn, LAPSED)
    with WebhookReceiver(SECRET) as receiver:
        report = act_on_day(warehouse, webhook_playbooks(tmp_path, receiver.url), webhook(), DAY)
    assert [k.action for k in report.sent] == ["schedule_customer_call"]
    assert [(a.key.action, a.error) for a in report.gave_up] == [
        (
            "offer_discount",
            "gave up after 5 delivery attempts; last: no outcome recorded (the run stopped "
            "while sending)",
        )
    ]
    assert statuses(warehouse)[("globex_churn", "offer_discount")] == (GAVE_UP, 5)


def test_an_unfinished_action_past_its_cooldown_is_given_up_and_the_action_fires_anew(
    warehouse, tmp_path
):
    later = DAY + dt.timedelta(days=30)  # the playbook's cooldown is 30 days
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
        write_analysis_day(conn, later, [tenant_day("globex_churn", 38, "high", 0.91)])
    with WebhookReceiver(SECRET, fail_with=[500, 500]) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        act_on_day(warehouse, playbooks, webhook(max_attempts=1), DAY)
        report = act_on_day(warehouse, playbooks, webhook(max_attempts=1), later)
    assert [a.key.as_of for a in report.gave_up] == [DAY, DAY]
    assert report.gave_up[0].error == "not delivered within 30 day(s) of 2026-11-01 (the cooldown)"
    assert len(report.planned) == 2 and len(report.sent) == 2
    assert [b["as_of"] for b in receiver.accepted.values()] == ["2026-12-01"] * 2
    assert set(statuses(warehouse).values()) == {(GAVE_UP, 1)}
    assert set(statuses(warehouse, later).values()) == {(DONE, 1)}


def test_a_failed_action_is_not_sent_when_the_same_action_went_out_within_the_cooldown(
    warehouse, tmp_path
):
    """A ledger from before this rule: D failed, D+1 fired again under a new key and was sent.
    A run for D must not send D's row (the customer would get the discount twice)."""
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
        ensure_action_log(conn)
        for day, done in ((DAY, False), (NEXT_DAY, True)):
            key = ActionKey("globex_churn", "churn_rescue", "offer_discount", day)
            record(conn, key, "webhook", {"as_of": day.isoformat()})
            claim(conn, key, "an old run")
            (mark_done(conn, key, "HTTP 200") if done else mark_failed(conn, key, "HTTP 500"))
    with WebhookReceiver(SECRET) as receiver:
        report = act_on_day(warehouse, webhook_playbooks(tmp_path, receiver.url), webhook(), DAY)
    # The call (no row yet) fires; the discount does not go out again.
    assert [k.action for k in report.sent] == ["schedule_customer_call"]
    assert [b["action"] for b in receiver.accepted.values()] == ["schedule_customer_call"]
    assert [(a.key.action, a.error) for a in report.gave_up] == [
        (
            "offer_discount",
            "superseded: the same action of 2026-11-02 is done, within the 30-day cooldown",
        )
    ]
    assert statuses(warehouse)[("globex_churn", "offer_discount")] == (GAVE_UP, 1)


def test_a_claimed_action_is_left_to_its_run_until_the_lease_runs_out(warehouse, tmp_path):
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
        ensure_action_log(conn)
        key = ActionKey("globex_churn", "churn_rescue", "offer_discount", DAY)
        record(conn, key, "webhook", {"as_of": DAY.isoformat()})
        assert claim(conn, key, "run-a") == 1
        assert claim(conn, key, "run-b") is None  # run-a holds it
    with WebhookReceiver(SECRET) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        held = act_on_day(warehouse, playbooks, webhook(), DAY)
        with warehouse.connect() as conn:
            lapse_claims(conn, LAPSED)
        taken = act_on_day(warehouse, playbooks, webhook(), DAY)
    # While run-a's lease lasts, the run sends the other action and reports this one unfinished.
    assert [k.action for k in held.sent] == ["schedule_customer_call"] and not held.clean
    assert [(a.key.action, a.status, a.claimed_by) for a in held.unfinished] == [
        ("offer_discount", PENDING, "run-a")
    ]
    assert [k.action for k in taken.sent] == ["offer_discount"] and taken.clean
    assert [a["key"] for a in receiver.attempts] == [
        ActionKey("globex_churn", "churn_rescue", a, DAY).idempotency_key()
        for a in ("schedule_customer_call", "offer_discount")
    ]


def test_a_removed_tenants_unfinished_actions_are_not_sent(warehouse, tmp_path):
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
    with WebhookReceiver(SECRET, fail_with=[500, 500]) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        act_on_day(warehouse, playbooks, webhook(max_attempts=1), DAY)
        with warehouse.connect() as conn:
            remove_tenant(conn, "globex_churn")
        report = act_on_day(warehouse, playbooks, webhook(max_attempts=1), NEXT_DAY)
    assert len(receiver.attempts) == 2 and report.sent == [] and report.clean
    assert set(statuses(warehouse).values()) == {(FAILED, 1)}


@pytest.mark.postgres
def test_two_runs_at_once_send_each_action_exactly_once(tmp_path, postgres_url):
    """Two runs of the same day on two connections at once (Postgres): each action is claimed by
    one of them, and the receiver gets each once."""
    from tenantpulse.warehouse import open_warehouse

    warehouse = open_warehouse(make_settings(tmp_path, postgres_url).warehouse)
    tenants = [f"churn_{i:02d}" for i in range(10)]
    with warehouse.connect() as conn:
        write_analysis_day(conn, DAY, [tenant_day(t, 38, "high", 0.91) for t in tenants])
        ensure_action_log(conn)  # created once, as in a running deployment
    start = threading.Barrier(2)
    reports = {}

    def run(name):
        start.wait()
        reports[name] = act_on_day(warehouse, playbooks, webhook(), DAY, claimer=name)

    with WebhookReceiver(SECRET, delay_seconds=0.02) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        threads = [threading.Thread(target=run, args=(name,)) for name in ("run-a", "run-b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # 10 tenants x 2 actions: 20 requests, 20 keys, whichever run sent each.
    assert sorted(reports) == ["run-a", "run-b"]  # both runs ended
    assert len(receiver.attempts) == 20 and len(receiver.accepted) == 20
    assert sum(len(r.sent) for r in reports.values()) == 20
    assert set(statuses(warehouse).values()) == {(DONE, 1)}
    with warehouse.connect() as conn:
        claimers = {a.claimed_by for a in actions_on(conn, DAY)}
    assert claimers <= {"run-a", "run-b"}


def test_the_act_job_fails_naming_what_it_left_unfinished(tmp_path, warehouse_url):
    """Through Dagster: a run for D+1 finds D's action held by another run's claim and one of its
    own failing: it does not report success, and says which tenant and action."""
    with WebhookReceiver(SECRET, otherwise=500) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        settings = make_settings(
            tmp_path,
            warehouse_url,
            TENANTPULSE_PLAYBOOKS=str(playbooks.path),
            TENANTPULSE_WEBHOOK_SECRET=SECRET,
            TENANTPULSE_WEBHOOK_MAX_ATTEMPTS="1",
        )
        from tenantpulse.warehouse import open_warehouse

        warehouse = open_warehouse(settings.warehouse)
        with warehouse.connect() as conn:
            write_analysis_day(conn, NEXT_DAY, [tenant_day("globex_churn", 38, "high", 0.91)])
            ensure_action_log(conn)
            key = ActionKey("globex_churn", "churn_rescue", "offer_discount", DAY)
            record(conn, key, "webhook", {"as_of": DAY.isoformat()})
            claim(conn, key, "a live run")
        with dg.instance_for_test() as instance:
            result = (
                build_definitions(settings)
                .resolve_job_def("act_job")
                .execute_in_process(
                    instance=instance, partition_key=NEXT_DAY.isoformat(), raise_on_error=False
                )
            )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert description == (
        "2 action(s) left pending or failed, 0 given up: "
        "globex_churn/churn_rescue/offer_discount of 2026-11-01 pending; "
        "globex_churn/churn_rescue/schedule_customer_call of 2026-11-02 failed"
    )
    assert len(receiver.attempts) == 1  # the call was tried; the claimed discount was not


@pytest.mark.postgres
def test_two_runs_for_two_days_at_once_fire_one_of_them(tmp_path, postgres_url, monkeypatch):
    """Runs for D and D+1 at once (Postgres): the second decides what fires only after the first
    has recorded its firings, so the cooldown holds it back; one key reaches the receiver."""
    from tenantpulse.actions import execute
    from tenantpulse.warehouse import open_warehouse

    warehouse = open_warehouse(make_settings(tmp_path, postgres_url).warehouse)
    with warehouse.connect() as conn:
        for day in (DAY, NEXT_DAY):
            write_analysis_day(conn, day, [tenant_day("globex_churn", 38, "high", 0.91)])
        ensure_action_log(conn)
    first_read, second_read = threading.Event(), threading.Event()
    read = execute.recent_firings

    def read_in_turn(conn, as_of, window_days):
        found = read(conn, as_of, window_days)
        if as_of == DAY:  # the first run: give the second a moment to read the ledger too
            first_read.set()
            second_read.wait(timeout=1)
        else:
            second_read.set()
        return found

    monkeypatch.setattr(execute, "recent_firings", read_in_turn)
    reports = {}

    def run(day):
        if day == NEXT_DAY:
            first_read.wait(timeout=120)  # a bound, not a pace: the first run reads first
        reports[day] = act_on_day(warehouse, playbooks, webhook(), day)

    with WebhookReceiver(SECRET) as receiver:
        playbooks = webhook_playbooks(tmp_path, receiver.url)
        threads = [threading.Thread(target=run, args=(day,)) for day in (DAY, NEXT_DAY)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(reports[DAY].sent) == 2 and len(reports[NEXT_DAY].held_back) == 2
    assert reports[NEXT_DAY].sent == []
    assert len(receiver.attempts) == 2
    assert {b["as_of"] for b in receiver.accepted.values()} == {"2026-11-01"}
