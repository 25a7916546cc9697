"""Actions as Dagster wiring: the daily `actions/action_log` asset that acts on an analysed day
(the last stage of a flow, defs/flow.py), and the alert sensors: a failed run, a land run that
left tenant streams unlanded, a tenant with stale data. The
logic is in tenantpulse.actions."""

import datetime as dt

from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    DagsterRunStatus,
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunFailureSensorContext,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    run_failure_sensor,
    sensor,
)
from dagster import Config as DagsterConfig

from tenantpulse.actions.action_log import MAX_DELIVERIES, ActionKey
from tenantpulse.actions.alerts import (
    LANDING_FAILED,
    RUN_FAILURE,
    STALE_DATA,
    send_alert,
    stale_tenants,
)
from tenantpulse.actions.execute import (
    act_on_day,
)
from tenantpulse.actions.handlers import build_handlers
from tenantpulse.actions.playbooks import load_playbooks
from tenantpulse.config import Settings
from tenantpulse.defs.analysis import ANALYSIS_ASSETS
from tenantpulse.defs.flow import warehouse_in_use
from tenantpulse.defs.partitions import partition_days
from tenantpulse.flow import LAND, LANDING_FAILED_TAG
from tenantpulse.insights.store import INSIGHTS_TABLE
from tenantpulse.warehouse import WarehouseBusyError, open_warehouse

ACTION_LOG = AssetKey(["actions", "action_log"])
INSIGHTS = AssetKey(["analysis", INSIGHTS_TABLE])


class ActConfig(DagsterConfig):
    tenants: list[str] = []  # empty: every active tenant analysed that day


def build_actions_defs(settings: Settings, daily_partitions: DailyPartitionsDefinition):
    """(the action_log asset, the sensors); the `act` job is in defs/jobs.py."""
    actions = settings.actions

    @asset(
        key=ACTION_LOG,
        deps=[AssetKey(["analysis", name]) for name in ANALYSIS_ASSETS] + [INSIGHTS],
        partitions_def=daily_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        group_name="actions",
        description="`ops.action_log`: what the playbooks fired for each tenant and day, and "
        "whether it was delivered (pending, done, failed, dry_run). A run evaluates the "
        f"playbooks of {actions.playbooks_path.name} over one analysed day's analysis and "
        "insights for every active tenant whose analysis (or the playbooks) changed since a run "
        "last evaluated it (ops.playbook_evaluations), records each action once (an idempotency key per "
        "tenant, playbook, action and day) and sends it through its handler (log, webhook, "
        "Slack); a failed send stays `failed` and is sent again, under the same key, by the next "
        "run for any day within the playbook's cooldown, and is `gave_up` after "
        f"{MAX_DELIVERIES} attempts; a run that leaves an action pending, failed or given up "
        "fails, naming the tenant and action. "
        "Daily partitions: the flow acts on the newest analysed day only (actions are for the "
        "present), so the earlier days' partitions stay missing by design.",
        # The warehouse's kind (duckdb, postgres) is added by definitions.py.
        kinds={"python"},
    )
    def action_log(context: AssetExecutionContext, config: ActConfig):
        playbook_file = load_playbooks(actions.playbooks_path)
        handlers = build_handlers(actions, playbook_file.handlers_used())
        warehouse = open_warehouse(settings.warehouse)
        reports = [
            act_on_day(
                warehouse,
                playbook_file,
                handlers,
                day,
                config.tenants or None,
                actions.dry_run,
                claimer=context.run.run_id,
            )
            for day in partition_days(context)
        ]
        fired = [a.key for r in reports for a in r.planned]
        gave_up = [a for r in reports for a in r.gave_up]
        unfinished = [a for r in reports for a in r.unfinished]
        for action in gave_up:
            context.log.warning(f"gave up: {_named(action.key)}: {action.error}")
        yield MaterializeResult(
            metadata={
                "dry_run": actions.dry_run,
                "playbook_file": str(actions.playbooks_path),
                "tenants_evaluated": sum(r.tenants_evaluated for r in reports),
                "tenants_unchanged": sum(r.tenants_unchanged for r in reports),
                "fired": len(fired),
                "held_back_by_cooldown": sum(len(r.held_back) for r in reports),
                "retried_from_earlier_days": sum(len(r.retried) for r in reports),
                "sent": sum(len(r.sent) for r in reports),
                "failed": sum(len(r.failed) for r in reports),
                "gave_up": len(gave_up),
                "left_unfinished": len(unfinished),
                "evaluation_seconds": round(sum(r.evaluation_seconds for r in reports), 3),
                "fired_actions": MetadataValue.md(
                    "\n".join(f"- {k.as_of} {k.tenant_id}: {k.playbook}/{k.action}" for k in fired)
                    or "nothing fired"
                ),
            }
        )
        if gave_up or unfinished:
            # Recorded in ops.action_log: a failed or pending row is sent again by the next run
            # (for any day within its cooldown); a `gave_up` one never is.
            raise Failure(
                description=f"{len(unfinished)} action(s) left pending or failed, "
                f"{len(gave_up)} given up: "
                + "; ".join(f"{_named(a.key)} {a.status}" for a in [*unfinished, *gave_up][:20]),
                metadata={
                    _named(a.key): f"{a.status}: {a.error or 'claimed by ' + str(a.claimed_by)}"
                    for a in [*unfinished, *gave_up]
                },
            )

    @run_failure_sensor(
        name="run_failure_alert_sensor",
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Alerts through the playbook file's `alerts.run_failure` actions, once per "
        "failed run of any job.",
    )
    def run_failure_alert_sensor(context: RunFailureSensorContext):
        """Alerts through the playbook file's `alerts.run_failure` actions, once per failed run."""
        rule = load_playbooks(actions.playbooks_path).run_failure
        if not rule.actions:
            return
        run = context.dagster_run
        error = context.failure_event.message or "no message"
        send_alert(
            open_warehouse(settings.warehouse),
            rule,
            RUN_FAILURE,
            tenant_id="",
            day=dt.datetime.now(dt.UTC).date(),
            subject=run.run_id,
            message=f"run {run.run_id} of job {run.job_name} failed: {error}",
            details={"run_id": run.run_id, "job": run.job_name, "tags": dict(run.tags)},
            handlers=build_handlers(actions, {a.handler for a in rule.actions}),
            dry_run=actions.dry_run,
        )

    @sensor(
        minimum_interval_seconds=900,
        default_status=DefaultSensorStatus.RUNNING,
        description="Alerts through the playbook file's `alerts.stale_data` actions for each "
        "active tenant with no successful sync in `max_age_hours`, once per tenant and day.",
    )
    def stale_data_sensor(context: SensorEvaluationContext):
        """Alerts through `alerts.stale_data` for each tenant with no successful sync in
        `max_age_hours`, once per tenant and day."""
        rule = load_playbooks(actions.playbooks_path).stale_data
        if not rule.actions:
            return SkipReason("no stale_data alert actions in the playbook file")
        if warehouse_in_use(settings.warehouse.dialect, context.instance):
            return SkipReason("a run is using the DuckDB warehouse; will look after it")
        now = dt.datetime.now(dt.UTC)
        warehouse = open_warehouse(settings.warehouse)
        handlers = build_handlers(actions, {a.handler for a in rule.actions})
        try:
            with warehouse.connect() as conn:
                stale = stale_tenants(conn, now, rule.max_age_hours)
            for tenant_id, newest in stale:
                since = newest.isoformat() if newest else "never"
                send_alert(
                    warehouse,
                    rule,
                    STALE_DATA,
                    tenant_id=tenant_id,
                    day=now.date(),
                    subject="",
                    message=f"{tenant_id}: no successful sync for {rule.max_age_hours:g} hours "
                    f"(newest: {since})",
                    details={"newest_successful_sync": since},
                    handlers=handlers,
                    dry_run=actions.dry_run,
                )
        except WarehouseBusyError as busy:
            return SkipReason(f"warehouse busy, will retry: {busy}")
        return SkipReason(
            f"{len(stale)} tenant(s) stale: {', '.join(t for t, _ in stale) or 'none'}"
        )

    @sensor(
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Alerts through the playbook file's `alerts.run_failure` actions for each "
        "land run that left tenant streams unlanded while the others went on "
        f"({LANDING_FAILED_TAG}), once per run.",
    )
    def landing_failed_alert_sensor(context: SensorEvaluationContext):
        """Alerts through `alerts.run_failure` for each land run that named tenant streams it
        could not land (the run itself succeeded, so run_failure_alert_sensor does not see it)."""
        rule = load_playbooks(actions.playbooks_path).run_failure
        if not rule.actions:
            return SkipReason("no run_failure alert actions in the playbook file")
        if warehouse_in_use(settings.warehouse.dialect, context.instance):
            return SkipReason("a run is using the DuckDB warehouse; will look after it")
        since = float(context.cursor) if context.cursor else None
        records = context.instance.get_run_records(
            RunsFilter(
                job_name=LAND.job,
                statuses=[DagsterRunStatus.SUCCESS],
                updated_after=dt.datetime.fromtimestamp(since, dt.UTC) if since else None,
            ),
            order_by="update_timestamp",
            ascending=True,
        )
        warehouse = open_warehouse(settings.warehouse)
        handlers = build_handlers(actions, {a.handler for a in rule.actions})
        cursor = since
        for record in records:
            run = record.dagster_run
            if run.tags.get(LANDING_FAILED_TAG):
                send_alert(
                    warehouse,
                    rule,
                    LANDING_FAILED,
                    tenant_id="",
                    day=record.create_timestamp.astimezone(dt.UTC).date(),
                    subject=run.run_id,
                    message=f"run {run.run_id} could not land: {run.tags[LANDING_FAILED_TAG]} "
                    "(the other tenants' flow went on)",
                    details={"run_id": run.run_id, "not_landed": run.tags[LANDING_FAILED_TAG]},
                    handlers=handlers,
                    dry_run=actions.dry_run,
                )
            cursor = record.update_timestamp.timestamp()
        return SensorResult(cursor=str(cursor) if cursor is not None else None)

    return action_log, [run_failure_alert_sensor, stale_data_sensor, landing_failed_alert_sensor]


def _named(key: ActionKey) -> str:
    return f"{key.tenant_id}/{key.playbook}/{key.action} of {key.as_of}"
