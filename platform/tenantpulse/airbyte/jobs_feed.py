"""The jobs sensor's reading of Airbyte's jobs list: which sync jobs finished since the cursor.

Jobs finish out of id order, so the cursor is the newest `lastUpdatedAt` seen plus the ids of the
jobs handled within an overlap before it (Airbyte's time filter is to the second)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster_airbyte.resources import AirbyteClient
from dateutil.parser import isoparse

from tenantpulse.airbyte.sync import TERMINAL_STATUSES

OVERLAP = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class JobsCursor:
    updated_after: dt.datetime | None = None  # None: the first evaluation
    handled: dict[str, str] = field(default_factory=dict)  # job id -> its lastUpdatedAt

    def to_json(self) -> str:
        return json.dumps(
            {
                "updated_after": self.updated_after.isoformat() if self.updated_after else None,
                "handled": self.handled,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> JobsCursor:
        if not text:
            return cls()
        data = json.loads(text)
        after = data.get("updated_after")
        return cls(isoparse(after) if after else None, dict(data.get("handled") or {}))


def first_cursor(now: dt.datetime, lookback: dt.timedelta) -> JobsCursor:
    """Where a new sensor starts: jobs updated in the `lookback` before now."""
    return JobsCursor(now - lookback, {})


def list_sync_jobs(client: AirbyteClient, updated_after: dt.datetime) -> list[Mapping[str, Any]]:
    """The workspace's sync jobs updated since `updated_after`, as the REST API returns them."""
    # The client's own job listing is per connection; one workspace-wide listing is one call
    # per page instead of one per connection. Same authenticated, paginated request.
    return list(
        client._paginated_request(  # noqa: SLF001
            method="GET",
            url=f"{client.rest_api_base_url}/jobs",
            params={
                "workspaceIds": client.workspace_id,
                "jobType": "sync",
                "updatedAtStart": updated_after.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "orderBy": "updatedAt|ASC",
            },
        )
    )


def newly_finished(
    jobs: Iterable[Mapping[str, Any]], cursor: JobsCursor
) -> tuple[list[Mapping[str, Any]], JobsCursor]:
    """(finished jobs the cursor has not handled, oldest first; the cursor after them)."""
    fresh = [
        job
        for job in jobs
        if job.get("status") in TERMINAL_STATUSES and str(job["jobId"]) not in cursor.handled
    ]
    fresh.sort(key=lambda job: (_updated(job), int(job["jobId"])))
    handled = dict(cursor.handled) | {str(job["jobId"]): _updated(job).isoformat() for job in fresh}
    newest = max([_updated(job) for job in fresh], default=cursor.updated_after)
    if newest is None:
        return fresh, cursor
    # Keep the ids inside the overlap: a later listing from `newest - OVERLAP` sees them again.
    keep_from = newest - OVERLAP
    handled = {job_id: at for job_id, at in handled.items() if isoparse(at) >= keep_from}
    return fresh, JobsCursor(newest, handled)


def listing_start(cursor: JobsCursor) -> dt.datetime:
    assert cursor.updated_after is not None, "start from first_cursor()"
    return cursor.updated_after - OVERLAP


def _updated(job: Mapping[str, Any]) -> dt.datetime:
    value = job.get("lastUpdatedAt") or job["startTime"]
    parsed = isoparse(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
