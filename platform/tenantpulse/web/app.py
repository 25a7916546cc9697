"""The tenant-facing web app: `create_app(settings)`, served by `tenantpulse serve` (uvicorn).

Starlette, not FastAPI: it is already installed with dagster-webserver, and the app needs routes,
templates, static files and cookies, not FastAPI's request models or generated API docs.

Where routes go: each module named in ROUTE_MODULES exposes `routes() -> list[BaseRoute]`;
`create_app` adds them after the base's own (`/`, `/signin`, `/signout`, `/static`). To add a
feature, write its module in this package and add its name to ROUTE_MODULES. A route handler finds
what it needs on `request.app.state`:
- `settings` (config.Settings), `web` (web.settings.WebSettings),
- `db` (web.db.TenantDatabase: `with db.tenant(tenant_id) as conn:` reads one tenant's rows),
- `templates` (Jinja2Templates over web/templates/: pages extend `base.html`).
`web.signin.require_session(request, tenant_id)` returns the signed-in session or raises the
401/403 the error page shows. Raise `HTTPException(status, "message")` for any other refusal: a
page gets `error.html`, a path under /api/ gets `{"error": message}`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from tenantpulse.config import Settings
from tenantpulse.tenants.registry import ACTIVE, get_tenant
from tenantpulse.warehouse import WarehouseError
from tenantpulse.web import signin
from tenantpulse.web.db import TenantDatabase
from tenantpulse.web.settings import WebSettings, load_web_settings

HERE = Path(__file__).parent
logger = logging.getLogger(__name__)
ROUTE_MODULES: tuple[str, ...] = (
    "tenantpulse.web.pages",
    "tenantpulse.web.api",
    "tenantpulse.web.connect",
)
SECURITY_HEADERS = {
    # Scripts, styles and images from the app itself only (the charts' library is served by it).
    "content-security-policy": "default-src 'self'; frame-ancestors 'self'; base-uri 'none'",
    "referrer-policy": "no-referrer",  # a sign-in URL's token never leaves in a Referer
    "x-content-type-options": "nosniff",
}


class _SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response


def create_app(settings: Settings, web: WebSettings | None = None) -> Starlette:
    web = web or load_web_settings(settings)
    db = TenantDatabase(settings, web)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        db.open()
        try:
            yield
        finally:
            db.close()

    routes = [
        Route("/", index, name="index"),
        Route("/signin", signin_page, name="signin"),
        Route("/signout", signout, methods=["POST"], name="signout"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    for module in ROUTE_MODULES:
        routes += importlib.import_module(module).routes()
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(_SecurityHeaders)],
        exception_handlers={HTTPException: _error, WarehouseError: _unavailable},
    )
    app.state.settings = settings
    app.state.web = web
    app.state.db = db
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    return app


def render(request: Request, template: str, status_code: int = 200, **context) -> Response:
    context.setdefault("session", signin.current_session(request))
    return request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )


async def _error(request: Request, error: HTTPException) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": error.detail}, status_code=error.status_code)
    return render(request, "error.html", error.status_code, message=error.detail)


async def _unavailable(request: Request, error: WarehouseError) -> Response:
    """The warehouse cannot be read (DuckDB while the flow writes it, Postgres down): the user
    gets a 503 without the details, the operator's log gets them."""
    logger.warning("warehouse unavailable for %s: %s", request.url.path, error)
    return await _error(
        request, HTTPException(503, "The data cannot be read right now: try again in a minute.")
    )


def index(request: Request) -> Response:
    session = signin.current_session(request)
    if session is None:
        return render(request, "error.html", 401, message=signin.NOT_SIGNED_IN)
    home = signin.home_url(request, session)
    if home is None:
        return render(request, "error.html", message=f"Signed in for {session.tenant_id}.")
    return RedirectResponse(home, status_code=303)


def signin_page(request: Request) -> Response:
    """Exchange a sign-in token for the session cookie, then go to the tenant's home."""
    web: WebSettings = request.app.state.web
    try:
        session = signin.verify(web.signing_key, signin.SIGNIN, request.query_params.get("token"))
    except signin.SignInError as refused:
        return render(request, "error.html", 401, message=f"Sign-in refused: {refused}.")
    with request.app.state.db.tenant(session.tenant_id) as conn:
        tenant = get_tenant(conn, session.tenant_id)
    if tenant is None or tenant.status != ACTIVE:
        return render(
            request,
            "error.html",
            403,
            message=f"Sign-in refused: {session.tenant_id} is not an active tenant.",
        )
    cookie = signin.session_cookie(web, session)
    response = RedirectResponse(signin.home_url(request, session) or "/", status_code=303)
    response.set_cookie(
        signin.SESSION_COOKIE,
        cookie,
        max_age=web.session_minutes * 60,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def signout(request: Request) -> Response:
    response = render(request, "error.html", 200, message="Signed out.", session=None)
    response.delete_cookie(signin.SESSION_COOKIE, path="/")
    return response


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
