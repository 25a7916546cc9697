"""A stand-in for an Airbyte server on 127.0.0.1, not Airbyte: it answers the endpoints
dagster-airbyte's `AirbyteClient` calls, with the JSON shapes of Airbyte's REST API
(`/api/public/v1`: applications/token, workspaces, connections, jobs, POST, PATCH and DELETE sources,
POST connections) and
configuration API (`/api/v1`: connections/get, jobs/get), so the real client can be tested
without a server.

Jobs run on the stand-in's clock: each follows a `JobPlan` (seconds running, then succeeded or
failed). When a sync succeeds, the stand-in writes the tenant's raw tables the way Airbyte's
Postgres destination would, by running the local source simulator for that (tenant, source).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from tenantpulse.simulator.run import simulate_sync

REST = "/api/public/v1"
CONFIG = "/api/v1"


@dataclass(frozen=True)
class JobPlan:
    status: str = "succeeded"  # what the job ends as: succeeded | failed | cancelled
    seconds: float = 0.0  # how long it runs before it ends
    polls: int | None = None  # or: ends at this many GET /jobs/<id> (not on the clock)
    error: str = "Stripe API returned 401: Invalid API Key provided"


@dataclass
class Job:
    job_id: int
    connection_id: str
    plan: JobPlan
    created: dt.datetime
    status: str = "running"
    rows_synced: int = 0
    updated: dt.datetime | None = None
    polls: int = 0  # GET /jobs/<id> so far


@dataclass
class Connection:
    connection_id: str
    tenant_id: str
    source: str
    namespace_format: str
    prefix: str
    status: str = "active"
    source_id: str | None = None  # as created by POST /connections; else one derived from the id
    plans: deque = field(default_factory=deque)  # JobPlans for the next syncs; empty: succeed


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class AirbyteStandIn:
    def __init__(
        self,
        warehouse,
        simulator_settings,
        workspace_id: str = "b1a7c0de-0000-4000-8000-000000000001",
        client_id: str | None = "tenantpulse-test",
        client_secret: str | None = "test-secret-not-real",
    ):
        self.warehouse = warehouse
        self.simulator_settings = simulator_settings
        self.workspace_id = workspace_id
        self.client_id, self.client_secret = client_id, client_secret
        self.connections: dict[str, Connection] = {}
        self.jobs: dict[int, Job] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) in order
        self.conflicts: set[str] = set()  # connections whose next POST /jobs meets a new sync
        self.source_configurations: dict[str, dict] = {}  # source id -> last PATCHed configuration
        self.created_sources: dict[str, dict] = {}  # source id -> the POST /sources body
        self.created_connections: list[dict] = []  # the POST /connections bodies, in order
        self.deleted_sources: list[str] = []  # DELETE /sources/<id>, in order
        self.exchanges: list[tuple[str, str, dict]] = []  # (method, path with query, headers)
        self.default_plan = JobPlan()  # for a sync no plan was queued for
        self.refuse: dict[str, int] = {}  # "POST /sources" -> how many next requests get a 500
        self._tokens: set[str] = set()
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> AirbyteStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what a test sets up -----------------------------------------------------------------

    def add_connection(self, tenant_id: str, source: str, **overrides) -> str:
        """A connection as Terraform creates it: namespace `user_<tenant>`, prefix `<source>_`."""
        connection = Connection(
            connection_id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            source=source,
            namespace_format=f"user_{tenant_id}",
            prefix=f"{source}_",
        )
        for name, value in overrides.items():
            setattr(connection, name, value)
        self.connections[connection.connection_id] = connection
        return connection.connection_id

    def connections_of(self, tenant_id: str) -> list[str]:
        return [c.connection_id for c in self.connections.values() if c.tenant_id == tenant_id]

    def plan(self, connection_id: str, *plans: JobPlan) -> None:
        self.connections[connection_id].plans.extend(plans)

    def start_scheduled_sync(self, connection_id: str, plan: JobPlan = JobPlan()) -> int:
        """A sync Airbyte's own schedule starts."""
        with self._lock:
            return self._create_job(connection_id, plan).job_id

    # --- the server's side -------------------------------------------------------------------

    def _create_job(self, connection_id: str, plan: JobPlan) -> Job:
        job = Job(len(self.jobs) + 1001, connection_id, plan, now())
        job.updated = job.created
        self.jobs[job.job_id] = job
        return job

    def _advance(self, job: Job) -> None:
        """Finish the job if its time has come; a succeeded sync writes the raw tables."""
        if job.status != "running":
            return
        if job.plan.polls is not None:
            if job.polls < job.plan.polls:
                return
        elif now() < job.created + dt.timedelta(seconds=job.plan.seconds):
            return
        if job.plan.status == "succeeded":
            connection = self.connections[job.connection_id]
            with self.warehouse.connect() as conn:
                synced = simulate_sync(
                    conn, connection.tenant_id, connection.source, self.simulator_settings
                )
            job.rows_synced = synced.records
        job.status, job.updated = job.plan.status, now()

    def _running_job(self, connection_id: str) -> Job | None:
        for job in self.jobs.values():
            self._advance(job)
            if job.connection_id == connection_id and job.status == "running":
                return job
        return None

    def job_response(self, job: Job) -> dict:
        """The REST API's JobResponse."""
        self._advance(job)
        seconds = int(((job.updated or now()) - job.created).total_seconds())
        return {
            "jobId": job.job_id,
            "status": job.status,
            "jobType": "sync",
            "startTime": iso(job.created),
            "connectionId": job.connection_id,
            "lastUpdatedAt": iso(job.updated or job.created),
            "duration": f"PT{seconds}S",
            "bytesSynced": job.rows_synced * 512,
            "rowsSynced": job.rows_synced,
        }

    def connection_response(self, connection: Connection) -> dict:
        """The REST API's ConnectionResponse."""
        return {
            "connectionId": connection.connection_id,
            "name": f"{connection.source} -> postgres ({connection.tenant_id})",
            "sourceId": self.source_of(connection),
            "destinationId": "d0000000-0000-4000-8000-000000000001",
            "workspaceId": self.workspace_id,
            "status": connection.status,
            "schedule": {"scheduleType": "cron", "cronExpression": "0 0 2 * * ? UTC"},
            "dataResidency": "auto",
            "nonBreakingSchemaUpdatesBehavior": "propagate_columns",
            "namespaceDefinition": "custom_format",
            "namespaceFormat": connection.namespace_format,
            "prefix": connection.prefix,
            "configurations": {"streams": []},
            "createdAt": 1764000000,
        }

    def source_of(self, connection: Connection) -> str:
        return connection.source_id or str(
            uuid.uuid5(uuid.NAMESPACE_URL, connection.connection_id + "/source")
        )

    def handle(self, method: str, path: str, query: dict, body: dict, headers: dict):
        """(status, JSON payload) for one request."""
        with self._lock:
            self.requests.append((method, path))
            if self.refuse.get(f"{method} {path.removeprefix(REST)}"):
                self.refuse[f"{method} {path.removeprefix(REST)}"] -= 1
                return 500, _problem(500, "Internal Server Error", "refused by the test")
            if path == f"{REST}/applications/token" and method == "POST":
                if (body.get("client_id"), body.get("client_secret")) != (
                    self.client_id,
                    self.client_secret,
                ):
                    return 401, _problem(401, "Unauthorized", "invalid client credentials")
                token = uuid.uuid4().hex
                self._tokens.add(token)
                return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 180}
            if self.client_id is not None:
                auth = headers.get("authorization", "")
                if auth.removeprefix("Bearer ") not in self._tokens:
                    return 401, _problem(401, "Unauthorized", "missing or unknown bearer token")
            route = (method, path)
            if route == ("GET", f"{REST}/workspaces/{self.workspace_id}"):
                return 200, {
                    "workspaceId": self.workspace_id,
                    "name": "tenantpulse",
                    "dataResidency": "auto",
                }
            if route == ("GET", f"{REST}/connections"):
                rows = [
                    self.connection_response(c)
                    for c in self.connections.values()
                    if self.workspace_id in query.get("workspaceIds", [self.workspace_id])
                ]
                return 200, self._page(f"{REST}/connections", rows, query)
            if route == ("POST", f"{CONFIG}/connections/get"):
                connection = self.connections.get(body.get("connectionId"))
                if connection is None:
                    return 404, _problem(404, "Not Found", "no such connection")
                return 200, self.config_connection(connection)
            if route == ("POST", f"{REST}/jobs"):
                return self._start(body)
            if route == ("GET", f"{REST}/jobs"):
                return 200, self._page(f"{REST}/jobs", self._list_jobs(query), query)
            if path.startswith(f"{REST}/jobs/"):
                job = self.jobs.get(int(path.rsplit("/", 1)[1]))
                if job is None:
                    return 404, _problem(404, "Not Found", "no such job")
                job.polls += method == "GET"
                if method == "DELETE":
                    self._advance(job)
                    if job.status == "running":
                        job.status, job.updated = "cancelled", now()
                return 200, self.job_response(job)
            if method == "DELETE" and path.startswith(f"{REST}/sources/"):
                return self._delete_source(path.rsplit("/", 1)[1])
            if method == "PATCH" and path.startswith(f"{REST}/sources/"):
                source_id = path.rsplit("/", 1)[1]
                self.source_configurations[source_id] = body.get("configuration") or {}
                return 200, {"sourceId": source_id, "workspaceId": self.workspace_id}
            if route == ("POST", f"{REST}/sources"):
                return self._create_source(body)
            if route == ("POST", f"{REST}/connections"):
                return self._create_connection(body)
            if route == ("POST", f"{CONFIG}/jobs/get"):
                job = self.jobs.get(int(body.get("id", 0)))
                if job is None:
                    return 404, _problem(404, "Not Found", "no such job")
                return 200, self.config_job(job)
            return 404, _problem(404, "Not Found", f"the stand-in has no {method} {path}")

    def _start(self, body: dict):
        connection_id = body.get("connectionId")
        if connection_id not in self.connections or body.get("jobType") != "sync":
            return 400, _problem(400, "Bad Request", "connectionId and jobType=sync needed")
        if connection_id in self.conflicts:
            # Airbyte's scheduler started a sync a moment before this request. It ends when
            # polled, not on the clock, so it outlasts the client's retries of the start however
            # slow the machine is.
            self.conflicts.discard(connection_id)
            self._create_job(connection_id, JobPlan(polls=2))
        if self._running_job(connection_id) is not None:
            return 409, _problem(409, "Conflict", f"A sync is already running for: {connection_id}")
        plans = self.connections[connection_id].plans
        job = self._create_job(connection_id, plans.popleft() if plans else self.default_plan)
        return 200, self.job_response(job)

    def _create_source(self, body: dict):
        """POST /sources (SourceCreateRequest): name, workspaceId, definitionId, configuration."""
        if not (
            body.get("name")
            and body.get("workspaceId") == self.workspace_id
            and body.get("definitionId")
            and isinstance(body.get("configuration"), dict)
        ):
            return 400, _problem(
                400, "Bad Request", "name, workspaceId, definitionId, configuration"
            )
        source_id = str(uuid.uuid4())
        self.created_sources[source_id] = body
        # Airbyte answers with the configuration's secrets masked.
        return 200, {
            "sourceId": source_id,
            "name": body["name"],
            "definitionId": body["definitionId"],
            "workspaceId": self.workspace_id,
            "configuration": {k: "**********" for k in body["configuration"]},
        }

    def _delete_source(self, source_id: str):
        """DELETE /sources/<id>: the source and its connections; 204 without a body."""
        gone = [c for c in self.connections.values() if self.source_of(c) == source_id]
        if source_id not in self.created_sources and not gone:
            return 404, _problem(404, "Not Found", "no such source")
        self.created_sources.pop(source_id, None)
        self.source_configurations.pop(source_id, None)
        for connection in gone:
            del self.connections[connection.connection_id]
        self.deleted_sources.append(source_id)
        return 204, None

    def _create_connection(self, body: dict):
        """POST /connections (ConnectionCreateRequest); the new connection syncs like the others."""
        namespace, prefix = body.get("namespaceFormat") or "", body.get("prefix") or ""
        if (
            body.get("sourceId") not in self.created_sources
            and body.get("sourceId") not in self.source_configurations
        ) or not (
            body.get("destinationId")
            and body.get("namespaceDefinition") == "custom_format"
            and namespace.startswith("user_")
            and prefix.endswith("_")
        ):
            return 400, _problem(400, "Bad Request", "an existing sourceId and our namespace")
        self.created_connections.append(body)
        connection_id = self.add_connection(
            namespace.removeprefix("user_"),
            prefix.removesuffix("_"),
            source_id=body["sourceId"],
            status=body.get("status", "active"),
        )
        return 200, self.connection_response(self.connections[connection_id])

    def _list_jobs(self, query: dict) -> list[dict]:
        jobs = list(self.jobs.values())
        for job in jobs:
            self._advance(job)
        if "connectionId" in query:
            jobs = [j for j in jobs if j.connection_id == query["connectionId"][0]]
        if "createdAtStart" in query:
            start = _parse(query["createdAtStart"][0])
            jobs = [j for j in jobs if j.created.replace(microsecond=0) >= start]
        if "updatedAtStart" in query:
            start = _parse(query["updatedAtStart"][0])
            jobs = [j for j in jobs if (j.updated or j.created).replace(microsecond=0) >= start]
        if query.get("orderBy", ["createdAt|DESC"])[0] == "updatedAt|ASC":
            jobs.sort(key=lambda j: (j.updated or j.created, j.job_id))
        else:
            jobs.sort(key=lambda j: j.job_id, reverse=True)
        return [self.job_response(j) for j in jobs]

    def _page(self, path: str, rows: list[dict], query: dict) -> dict:
        limit = int(query.get("limit", ["20"])[0])
        offset = int(query.get("offset", ["0"])[0])
        page = {"data": rows[offset : offset + limit], "previous": "", "next": ""}
        if offset + limit < len(rows):
            rest = {k: v[0] for k, v in query.items()} | {"offset": offset + limit}
            page["next"] = f"{self.url}{path}?{urlencode(rest)}"
        return page

    def config_connection(self, connection: Connection) -> dict:
        """The configuration API's ConnectionRead (what `sync_and_poll` fetches first)."""
        return {
            "connectionId": connection.connection_id,
            "name": f"{connection.source} -> postgres ({connection.tenant_id})",
            "namespaceDefinition": "customformat",
            "namespaceFormat": connection.namespace_format,
            "prefix": connection.prefix,
            "sourceId": self.source_of(connection),
            "destinationId": "d0000000-0000-4000-8000-000000000001",
            "syncCatalog": {"streams": []},
            "status": connection.status,
            "breakingChange": False,
        }

    def config_job(self, job: Job) -> dict:
        """The configuration API's JobInfoRead: the job and its attempts' failure summaries."""
        self._advance(job)
        attempt = {"id": 0, "status": job.status, "createdAt": int(job.created.timestamp())}
        if job.status == "failed":
            attempt["failureSummary"] = {
                "failures": [
                    {
                        "failureOrigin": "source",
                        "failureType": "config_error",
                        "externalMessage": job.plan.error,
                        "internalMessage": "io.airbyte.workers.exception.WorkerException",
                    }
                ],
                "partialSuccess": False,
            }
        return {
            "job": {"id": job.job_id, "configType": "sync", "status": job.status},
            "attempts": [{"attempt": attempt, "logs": {"logLines": []}}],
        }


def _problem(status: int, title: str, detail: str) -> dict:
    """Airbyte's REST API errors are problem+json documents."""
    return {
        "type": f"https://reference.airbyte.com/reference/errors#{status}",
        "title": title,
        "status": status,
        "detail": detail,
    }


def _parse(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _handler(standin: AirbyteStandIn):
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str):
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            standin.exchanges.append((method, self.path, headers))
            status, payload = standin.handle(
                method, parts.path, parse_qs(parts.query), body, headers
            )
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            content_type = "application/json" if status < 400 else "application/problem+json"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_DELETE(self):
            self._serve("DELETE")

        def do_PATCH(self):
            self._serve("PATCH")

        def log_message(self, *args):  # quiet: the test reads `standin.requests` instead
            pass

    return Handler
