"""Sync a set of tenants' connections through dagster-airbyte's `AirbyteClient.sync_and_poll`,
several connections at a time, and say per tenant what happened (job id, status, error)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from dagster import Failure
from dagster_airbyte.resources import AirbyteClient
from dateutil.parser import isoparse

from tenantpulse.airbyte.connections import TenantConnection
from tenantpulse.sources.sync_history import FAILED, SUCCEEDED, SyncRecord

# Airbyte's job statuses (REST API JobStatusEnum).
RUNNING_STATUSES = ("pending", "running", "incomplete")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled", "error")
TIMED_OUT = "timed out"  # ours: still running in Airbyte when the poll timeout passed
NO_JOB = "no job"  # ours: Airbyte never gave a job (unreachable, refused)


@dataclass(frozen=True)
class ConnectionSync:
    connection: TenantConnection
    status: str  # an Airbyte terminal status, TIMED_OUT or NO_JOB
    job_id: str | None = None
    job: Mapping[str, Any] | None = None  # the REST API's JobResponse, when there is a job
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def describe(self) -> str:
        job = f"Airbyte job {self.job_id}" if self.job_id else "no Airbyte job"
        text = f"{self.connection.source} ({self.connection.connection_id}): {job} {self.status}"
        return text + (f": {self.error}" if self.error else "")


def sync_connection(client: AirbyteClient, connection: TenantConnection) -> ConnectionSync:
    """Start a sync (or join the one already running) and wait for it; never raises."""
    started = time.monotonic()
    try:
        job = client.sync_and_poll(connection.connection_id).job_details
        return ConnectionSync(connection, job["status"], str(job["jobId"]), job)
    except Failure as failure:
        message = failure.description or str(failure)
    except Exception as error:  # noqa: BLE001 - one connection's error is that tenant's only
        message = f"{type(error).__name__}: {error}"
    newest = _newest_job(client, connection.connection_id)
    if newest is None:
        return ConnectionSync(connection, NO_JOB, error=message)
    job_id = str(newest["jobId"])
    if newest["status"] in RUNNING_STATUSES:
        if client.poll_timeout and time.monotonic() - started >= client.poll_timeout:
            # Left running (cancel_on_termination is off): the jobs sensor records it later.
            return ConnectionSync(connection, TIMED_OUT, job_id, newest, message)
        # Another sync started between the client's look for running jobs and its start
        # (Airbyte answers 409): wait for that one. Not sync_and_poll again: if that job ended
        # meanwhile, it would start a second sync.
        return _wait_for_job(client, connection, job_id, started)
    reason = job_failure_reason(client, job_id)
    return ConnectionSync(connection, newest["status"], job_id, newest, reason or message)


def _wait_for_job(
    client: AirbyteClient, connection: TenantConnection, job_id: str, started: float
) -> ConnectionSync:
    """Poll one job, as sync_and_poll does, until it ends or the poll timeout passes."""
    while True:
        time.sleep(client.poll_interval)
        job = client.get_job_details(int(job_id))
        if job["status"] == "succeeded":
            return ConnectionSync(connection, "succeeded", job_id, job)
        if job["status"] not in RUNNING_STATUSES:
            return ConnectionSync(
                connection, job["status"], job_id, job, job_failure_reason(client, job_id)
            )
        if client.poll_timeout and time.monotonic() - started >= client.poll_timeout:
            return ConnectionSync(
                connection,
                TIMED_OUT,
                job_id,
                job,
                f"Airbyte job {job_id} is not ready after the timeout {client.poll_timeout} seconds",
            )


def sync_tenants(
    client: AirbyteClient, connections: Iterable[TenantConnection], concurrency: int
) -> Iterator[ConnectionSync]:
    """Sync every connection, `concurrency` at a time; yield each result as it finishes (in the
    caller's thread, so the caller can log progress)."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending = [pool.submit(sync_connection, client, c) for c in connections]
        for done in as_completed(pending):
            yield done.result()


def sync_record(
    connection: TenantConnection, job: Mapping[str, Any], error: str | None
) -> SyncRecord:
    """The `ops.airbyte_sync_history` row of a finished Airbyte job."""
    started = _timestamp(job.get("startTime"))
    finished = _timestamp(job.get("lastUpdatedAt")) or started
    return SyncRecord(
        tenant_id=connection.tenant_id,
        connection_id=connection.connection_id,
        source=connection.source,
        job_id=str(job["jobId"]),
        started_at=started or dt.datetime.now(dt.UTC),
        finished_at=finished or dt.datetime.now(dt.UTC),
        records=int(job.get("rowsSynced") or 0),
        status=SUCCEEDED if job["status"] == "succeeded" else FAILED,
        error=None if job["status"] == "succeeded" else (error or f"Airbyte job {job['status']}"),
    )


def _newest_job(client: AirbyteClient, connection_id: str) -> Mapping[str, Any] | None:
    """The connection's newest job of the last two days (the window sync_and_poll looks in)."""
    try:
        jobs = client.get_jobs_for_connection(
            connection_id, created_after=dt.datetime.now() - dt.timedelta(days=2)
        )
    except Exception:  # noqa: BLE001 - the caller reports the original error
        return None
    if not jobs:
        return None
    newest = max(jobs, key=lambda job: job.id)
    return client.get_job_details(newest.id)


def job_failure_reason(client: AirbyteClient, job_id: str) -> str | None:
    """The last attempt's failure message from the configuration API (`POST /jobs/get`): the REST
    API's job has only a status. None when Airbyte gives no reason."""
    try:
        # The client has no public call for it; this is the same authenticated request it makes.
        details = client._single_request(  # noqa: SLF001
            method="POST",
            url=f"{client.configuration_api_base_url}/jobs/get",
            data={"id": int(job_id)},
        )
    except Exception:  # noqa: BLE001 - a missing reason is not worth failing over
        return None
    for attempt in reversed(details.get("attempts") or []):
        failures = ((attempt.get("attempt") or {}).get("failureSummary") or {}).get("failures")
        if failures:
            first = failures[0]
            origin = first.get("failureOrigin")
            text = first.get("externalMessage") or first.get("internalMessage") or ""
            return f"{origin}: {text}" if origin else text
    return None


def _timestamp(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = isoparse(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
