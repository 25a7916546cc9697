"""Actions exactly once, on DuckDB and Postgres: the ledger, crashes, dry run, alerts, and the
sensors and `act` job through Dagster."""

import datetime as dt
import textwrap

import dagster as dg
import pytest

from actionkit import WebhookReceiver, tenant_day, write_analysis_day
from conftest import make_settings
from tenantpulse.actions.action_log import (
    DONE,
    DRY_RUN,
    FAILED,
    PENDING,
    actions_on,
    ensure_action_log,
    record,
)
from tenantpulse.actions.alerts import STALE_DATA, send_alert, stale_tenants
from tenantpulse.actions.execute import act_on_day
from tenantpulse.actions.handlers import LogHandler, WebhookHandler
from tenantpulse.actions.playbooks import load_playbooks
from tenantpulse.config import DEFAULT_PLAYBOOKS
from tenantpulse.definitions import build_definitions
from tenantpulse.sources.sync_history import SyncRecord, record_sync

DAY = dt.date(2026, 11, 1)
SECRET = "test-secret"


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
        # Recorded before sending, so neither action is lost; the first one did reach the receiver.
        assert set(statuses(warehouse).values()) == {(PENDING, 0)}
        assert len(receiver.attempts) == 1
        recovered = act_on_day(warehouse, playbooks, webhook(), DAY)
    assert len(recovered.sent) == 2
    # The receiver saw the first action twice with the same key and took it once.
    keys = [a["key"] for a in receiver.attempts]
    assert len(keys) == 3 and len(set(keys)) == 2 and len(receiver.accepted) == 2
    assert keys[0] == keys[1] and receiver.attempts[0]["body"] == receiver.attempts[1]["body"]
    assert set(statuses(warehouse).values()) == {(DONE, 1)}


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
        assert sorted(statuses(warehouse).values()) == [(DONE, 1)] * 3 + [(PENDING, 0)] * 3
        assert len(receiver.attempts) == 3
        recovered = act_on_day(warehouse, playbooks, webhook(), DAY)
    assert len(recovered.sent) == 3 and len(receiver.attempts) == 6
    assert len(receiver.accepted) == 6
    assert set(statuses(warehouse).values()) == {(DONE, 1)}


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
