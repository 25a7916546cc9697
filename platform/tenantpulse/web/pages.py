"""The signed-in tenant's pages: `/t/{tenant_id}/` (the dashboard) and its CSV exports. A session
only ever opens its own tenant's pages (web.signin.require_session); the reads go through
web.db's tenant-scoped transaction."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import NoMatchFound, Route

from tenantpulse.web import queries
from tenantpulse.web.app import render
from tenantpulse.web.signin import require_session

# The Connect flow's route (issue 17) a reconnect button links to, with the path parameter
# `source`; without it the button is shown disabled with the reason.
CONNECT_ROUTE = "connect"


def routes() -> list[Route]:
    return [
        Route("/t/{tenant_id}/", dashboard, name="dashboard"),
        Route("/t/{tenant_id}/export/{mart}.csv", export_csv, name="export"),
    ]


def dashboard(request: Request) -> Response:
    tenant_id = request.path_params["tenant_id"]
    require_session(request, tenant_id)
    with request.app.state.db.tenant(tenant_id) as conn:
        data = queries.dashboard(conn, tenant_id)
    for connection in data["connections"]:
        connection["reconnect_url"] = _reconnect_url(request, connection["source"])
    return render(
        request,
        "dashboard.html",
        data=data,
        charts_json=json.dumps(data["charts"], allow_nan=False),
        marts=list(queries.MARTS),
    )


def _reconnect_url(request: Request, source: str) -> str | None:
    try:
        return str(request.url_for(CONNECT_ROUTE, source=source))
    except NoMatchFound:
        return None


def export_csv(request: Request) -> Response:
    tenant_id, mart = request.path_params["tenant_id"], request.path_params["mart"]
    require_session(request, tenant_id)
    if mart not in queries.MARTS:
        raise HTTPException(404, f"No export {mart!r}; allowed: {', '.join(queries.MARTS)}.")
    with request.app.state.db.tenant(tenant_id) as conn:
        rows = queries.mart_rows(conn, tenant_id, mart)
    return Response(
        rows.to_csv(index=False),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="{tenant_id}_{mart}.csv"'},
    )
