"""The read-only JSON API for the operator's own app: `/api/v1/tenants/{tenant_id}/report` (the
analysis document of shared/METRICS.md) and `/api/v1/tenants/{tenant_id}/marts/{mart}` (the mart's
rows of that tenant). `Authorization: Bearer <token>` with a token of that tenant
(`tenantpulse web api-token TENANT`); any other token is refused."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tenantpulse.web import queries
from tenantpulse.web.api_tokens import tenant_of_token

PREFIX = "/api/v1/tenants/{tenant_id}"


def routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/report", report, name="api_report"),
        Route(f"{PREFIX}/marts/{{mart}}", mart, name="api_mart"),
    ]


def _authorised_tenant(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "Send `Authorization: Bearer <API token>`.")
    with request.app.state.db.unscoped() as conn:
        tenant_id = tenant_of_token(conn, token.strip())
    if tenant_id is None:
        raise HTTPException(401, "The API token is not valid.")
    if tenant_id != request.path_params["tenant_id"]:
        raise HTTPException(403, f"The API token is {tenant_id}'s: it reads only {tenant_id}.")
    return tenant_id


def report(request: Request) -> JSONResponse:
    tenant_id = _authorised_tenant(request)
    with request.app.state.db.tenant(tenant_id) as conn:
        document = queries.report(conn, tenant_id)
    if document is None:
        raise HTTPException(404, f"No analysis of {tenant_id} yet.")
    return JSONResponse(document)


def mart(request: Request) -> JSONResponse:
    tenant_id = _authorised_tenant(request)
    name = request.path_params["mart"]
    if name not in queries.MARTS:
        raise HTTPException(404, f"No mart {name!r}; allowed: {', '.join(queries.MARTS)}.")
    with request.app.state.db.tenant(tenant_id) as conn:
        rows = queries.mart_rows(conn, tenant_id, name)
    return JSONResponse({"tenant_id": tenant_id, "mart": name, "rows": queries.json_rows(rows)})
