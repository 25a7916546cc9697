"""Airbyte mode's Dagster wiring (loaded only when TENANTPULSE_AIRBYTE_URL is set): the
tenant-partitioned sync step, its job, and the sensor that follows Airbyte's own scheduled syncs.

Both report the raw streams of the synced sources as observations (new data versions) and record
the jobs in `ops.airbyte_sync_history`, whoever started them; `new_syncs_sensor` (defs/flow.py)
then starts a flow landing the tenants whose syncs succeeded.
"""

import datetime as dt

import dagster as dg
from dagster_airbyte import AirbyteWorkspace

from tenantpulse.airbyte.connections import TenantConnection, connections_by_tenant
from tenantpulse.airbyte.history import record_airbyte_job
from tenantpulse.airbyte.jobs_feed import (
    JobsCursor,
    first_cursor,
    list_sync_jobs,
    listing_start,
    newly_finished,
)
from tenantpulse.airbyte.sync import (
    TERMINAL_STATUSES,
    ConnectionSync,
    job_failure_reason,
    sync_record,
    sync_tenants,
)
from tenantpulse.config import (
    AIRBYTE_CLIENT_SECRET,
    AirbyteSettings,
    load_connect_settings,
    parse_warehouse_url,
)
from tenantpulse.connect.airbyte_push import prepare_syncs
from tenantpulse.defs.flow import warehouse_in_use
from tenantpulse.defs.partitions import tenant_partitions
from tenantpulse.defs.raw import raw_observations
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import WarehouseBusyError

SYNC_KEY = dg.AssetKey(["airbyte", "tenant_syncs"])
SYNC_JOB = "airbyte_sync_job"
FIRST_LOOKBACK = dt.timedelta(days=1)  # how far back a new sensor looks for finished jobs


def airbyte_workspace(airbyte: AirbyteSettings) -> AirbyteWorkspace:
    return AirbyteWorkspace(
        rest_api_base_url=airbyte.rest_api_base_url,
        configuration_api_base_url=airbyte.configuration_api_base_url,
        workspace_id=airbyte.workspace_id,
        client_id=airbyte.client_id,
        # EnvVar: read when a run starts, never shown in the UI's resource config.
        client_secret=dg.EnvVar(AIRBYTE_CLIENT_SECRET) if airbyte.client_id else None,
        poll_timeout=airbyte.poll_timeout_seconds,
        poll_interval=airbyte.poll_interval_seconds,
        # Join a sync Airbyte's schedule already started instead of failing on it; and leave a
        # sync we stop waiting for running: the jobs sensor lands it when it finishes.
        poll_previous_running_sync=True,
        cancel_on_termination=False,
    )


def tenant_failures(
    tenant_ids: list[str],
    connections: dict[str, list[TenantConnection]],
    syncs: list[ConnectionSync],
) -> dict[str, str]:
    """Tenant id -> what went wrong, for each tenant with no connection or a sync not succeeded."""
    failures = {
        t: "no Airbyte connection writes to its schema"
        for t in tenant_ids
        if not connections.get(t)
    }
    for sync in syncs:
        if not sync.succeeded:
            tenant = sync.connection.tenant_id
            failures[tenant] = "; ".join(filter(None, [failures.get(tenant), sync.describe()]))
    return failures


def build_sync_asset(airbyte: AirbyteSettings) -> dg.AssetsDefinition:
    @dg.asset(
        key=SYNC_KEY,
        partitions_def=tenant_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="airbyte",
        description="Each tenant's Airbyte syncs, started (or joined) and waited for: every "
        "connection writing to `user_<tenant>`, many tenants per run.",
    )
    def airbyte_tenant_syncs(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        airbyte_workspace: AirbyteWorkspace,
    ):
        tenant_ids = [validate_tenant_id(k) for k in context.partition_keys]
        client = airbyte_workspace.get_client()
        found = connections_by_tenant(client.get_connections())
        connections = {t: found.get(t, []) for t in tenant_ids}
        with warehouse.open().connect() as conn:
            registered = {t.tenant_id: t.sources for t in list_tenants(conn)}
        for tenant_id in tenant_ids:
            unsynced = set(registered.get(tenant_id, ())) - {
                c.source for c in connections[tenant_id]
            }
            if unsynced and connections[tenant_id]:
                context.log.warning(
                    f"{tenant_id}: registered sources without an Airbyte connection: "
                    f"{', '.join(sorted(unsynced))}"
                )
        every = [c for cs in connections.values() for c in cs]
        with warehouse.open().connect() as conn:  # reconnect_required: paused; Shopify: push
            every, paused, unpushed = prepare_syncs(
                conn, load_connect_settings(), client, every, dt.datetime.now(dt.UTC)
            )
        for tenant_id, reason in {**paused, **unpushed}.items():
            context.log.warning(f"{tenant_id}: {reason}")
        context.log.info(
            f"syncing {len(every)} connections of {len(tenant_ids)} tenants, "
            f"{airbyte.concurrency} at a time"
        )
        syncs = []
        for sync in sync_tenants(client, every, airbyte.concurrency):
            syncs.append(sync)
            log = context.log.info if sync.succeeded else context.log.error
            log(f"{sync.connection.tenant_id} {sync.describe()}")
        with warehouse.open().connect() as conn:
            for sync in syncs:
                if sync.job is not None and sync.job["status"] in TERMINAL_STATUSES:
                    record_airbyte_job(conn, sync_record(sync.connection, sync.job, sync.error))
            failures = tenant_failures(tenant_ids, connections, syncs) | unpushed
            synced = {
                (s.connection.tenant_id, s.connection.source)
                for s in syncs
                if s.connection.tenant_id not in failures
            }
            observations = raw_observations(conn, {source for _, source in synced})
        for observation in observations:
            context.log_event(observation)
        yield dg.MaterializeResult(
            metadata={
                "tenants": len(tenant_ids),
                "connections": len(every),
                "jobs_succeeded": sum(s.succeeded for s in syncs),
                "rows_synced": sum(int((s.job or {}).get("rowsSynced") or 0) for s in syncs),
                "tenants_failed": dg.MetadataValue.json(failures),
            }
        )
        if failures:
            for tenant_id, failure in failures.items():
                context.log.error(f"tenant {tenant_id} failed: {failure}")
            # The other tenants' syncs are recorded and reported; this names the ones to re-run.
            raise dg.Failure(
                description=f"{len(failures)} of {len(tenant_ids)} tenant(s) failed to sync: "
                + "; ".join(f"{t}: {f}" for t, f in failures.items()),
                metadata=failures,
            )

    return airbyte_tenant_syncs


def build_jobs_sensor(airbyte: AirbyteSettings) -> dg.SensorDefinition:
    @dg.sensor(
        name="airbyte_jobs_sensor",
        minimum_interval_seconds=airbyte.jobs_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records each registered tenant's finished Airbyte syncs in "
        "ops.airbyte_sync_history, however they were started, and reports their streams' new "
        "data versions; new_syncs_sensor then lands the successful ones.",
    )
    def airbyte_jobs_sensor(
        context: dg.SensorEvaluationContext,
        warehouse: WarehouseResource,
        airbyte_workspace: AirbyteWorkspace,
    ):
        """Records each registered tenant's finished Airbyte syncs, however they were started, and
        reports their streams' new data versions; new_syncs_sensor lands the successful ones."""
        cursor = JobsCursor.from_json(context.cursor)
        if cursor.updated_after is None:
            cursor = first_cursor(dt.datetime.now(dt.UTC), FIRST_LOOKBACK)
        client = airbyte_workspace.get_client()
        finished, next_cursor = newly_finished(
            list_sync_jobs(client, listing_start(cursor)), cursor
        )
        if not finished:
            return dg.SensorResult(
                skip_reason="no Airbyte sync finished", cursor=next_cursor.to_json()
            )
        if warehouse_in_use(parse_warehouse_url(warehouse.url).dialect, context.instance):
            # Listed again at the next tick (the cursor stays): a sensor holding the DuckDB file
            # would make the run's dbt fail to open it.
            return dg.SkipReason("a run is using the DuckDB warehouse; will record after it")
        by_id = {
            c.connection_id: c
            for cs in connections_by_tenant(client.get_connections()).values()
            for c in cs
        }
        ours = [(by_id[j["connectionId"]], j) for j in finished if j.get("connectionId") in by_id]
        reasons = {
            str(job["jobId"]): job_failure_reason(client, str(job["jobId"]))
            for _, job in ours
            if job["status"] != "succeeded"
        }
        try:
            with warehouse.open().connect() as conn:
                registered = {t.tenant_id for t in list_tenants(conn)}
                ours = [(c, job) for c, job in ours if c.tenant_id in registered]
                for connection, job in ours:
                    record_airbyte_job(
                        conn, sync_record(connection, job, reasons.get(str(job["jobId"])))
                    )
                succeeded = {
                    (c.tenant_id, c.source) for c, job in ours if job["status"] == "succeeded"
                }
                observations = raw_observations(conn, {source for _, source in succeeded})
        except WarehouseBusyError as busy:
            return dg.SkipReason(f"warehouse busy, will retry: {busy}")
        for connection, job in ours:
            if job["status"] != "succeeded":
                context.log.warning(
                    f"{connection.tenant_id}: {connection.source} Airbyte job {job['jobId']} "
                    f"{job['status']}: {reasons.get(str(job['jobId'])) or 'no reason given'}"
                )
        context.log.info(
            f"{len(ours)} finished Airbyte syncs of registered tenants recorded; "
            f"{len(succeeded)} succeeded"
        )
        return dg.SensorResult(asset_events=observations, cursor=next_cursor.to_json())

    return airbyte_jobs_sensor


def build_airbyte_defs(airbyte: AirbyteSettings) -> dict:
    """The pieces Definitions adds in Airbyte mode."""
    return {
        "assets": [build_sync_asset(airbyte)],
        "jobs": [
            dg.define_asset_job(
                SYNC_JOB,
                selection=dg.AssetSelection.assets(SYNC_KEY),
                description="Start (or join) each selected tenant's Airbyte syncs and wait for "
                "them; new_syncs_sensor lands what they wrote.",
            )
        ],
        "sensors": [build_jobs_sensor(airbyte)],
        "resources": {"airbyte_workspace": airbyte_workspace(airbyte)},
    }
