"""The Connect pages: a signed-in tenant connects, reconnects and disconnects its sources.

- `GET /connect/{source}`: the source's status and its form (or the "reconnect needed" page).
- `POST /connect/{source}/start`: with the form's CSRF token; OAuth sources go to the provider
  (connect/oauth.start), Stripe takes the pasted restricted key.
- `GET /connect/{source}/callback`: the provider's redirect (connect/oauth.finish), then a page
  saying connected, denied, expired or refused.
- `POST /connect/{source}/disconnect`: with the CSRF token; the token is then revoked at the
  provider where it can be (connect/revocation.py), without making the disconnect wait on it.

Every page shows the connection's phase (connect/status.py): connecting, provisioning, first
sync running, synced <time>, reconnect needed, failed: <reason>, disconnected (and whether its
token is revoked at the provider).

The CSRF token is an HMAC of the session cookie under the app's signing key, so it is good for
this session only. The vault and registry writes go through the warehouse's own connection (the
web role of web/db.py only reads).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tenantpulse.config import load_connect_settings
from tenantpulse.connect import oauth
from tenantpulse.connect.providers import OAUTH, PROVIDERS
from tenantpulse.connect.revocation import revoke_due
from tenantpulse.connect.status import Phase, connection_phase
from tenantpulse.connect.vault import Vault, ensure_vault, get_state
from tenantpulse.tenants.source_settings import SOURCE_SETTINGS
from tenantpulse.warehouse import WarehouseError, open_warehouse
from tenantpulse.web.app import render
from tenantpulse.web.signin import SESSION_COOKIE, require_session

CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024


def routes() -> list[Route]:
    return [
        Route("/connect/{source}", page, name="connect"),
        Route("/connect/{source}/start", begin, methods=["POST"], name="connect_start"),
        Route("/connect/{source}/callback", callback, name="connect_callback"),
        Route(
            "/connect/{source}/disconnect", disconnect, methods=["POST"], name="connect_disconnect"
        ),
    ]


def page(request: Request) -> Response:
    session, source = _session_and_source(request)
    with _warehouse(request).connect() as conn:
        ensure_vault(conn)
        state = get_state(conn, session.tenant_id, source)
    status = state.status if state else "not_connected"
    return _page(request, source, status)


async def begin(request: Request) -> Response:
    session, source = _session_and_source(request)
    form = await _form(request)
    _check_csrf(request, form.get(CSRF_FIELD))
    fields = {s.name: str(form.get(s.name) or "") for s in SOURCE_SETTINGS[source].settings}
    reconnect = form.get("reconnect") == "1"
    now = dt.datetime.now(dt.UTC)
    settings = _connect_settings(request)
    try:
        with _warehouse(request).connect() as conn:
            if PROVIDERS[source].auth == OAUTH:
                url = oauth.start(
                    conn,
                    settings,
                    _vault(settings),
                    session.tenant_id,
                    session.user,
                    source,
                    str(request.url_for("connect_callback", source=source)),
                    fields,
                    now,
                    reconnect=reconnect,
                )
                return RedirectResponse(url, status_code=303)
            done = oauth.connect_pasted_key(
                conn,
                _vault(settings),
                session.tenant_id,
                source,
                str(form.get("key") or ""),
                fields,
                now,
                reconnect=reconnect,
            )
    except oauth.AlreadyConnected as error:
        return _page(request, source, "already_connected", message=str(error), status_code=409)
    except (oauth.ConnectError, ValueError) as error:
        return _page(request, source, "failed", message=str(error), status_code=400)
    return _page(request, source, "connected", warning=done.warning)


def callback(request: Request) -> Response:
    session, source = _session_and_source(request)
    settings = _connect_settings(request)
    query = dict(request.query_params)
    try:
        with _warehouse(request).connect() as conn:
            done = oauth.finish(
                conn,
                settings,
                _vault(settings),
                session.tenant_id,
                session.user,
                source,
                query,
                dt.datetime.now(dt.UTC),
            )
    except oauth.ConnectError as error:
        status = {"denied": 200, "expired": 400, "refused": 400}.get(error.kind, 502)
        return _page(request, source, error.kind, message=str(error), status_code=status)
    outcome = "reconnected" if done.recovered else "connected"
    return _page(request, source, outcome, warning=done.warning)


async def disconnect(request: Request) -> Response:
    session, source = _session_and_source(request)
    form = await _form(request)
    _check_csrf(request, form.get(CSRF_FIELD))
    settings = _connect_settings(request)
    warehouse = _warehouse(request)
    with warehouse.connect() as conn:
        queued = oauth.disconnect(
            conn, settings, session.tenant_id, source, dt.datetime.now(dt.UTC)
        )
    if queued:  # committed first: a provider that fails or hangs is retried by the refresher
        await run_in_threadpool(
            revoke_due, warehouse, _vault(settings), settings, only=(session.tenant_id, source)
        )
    return _page(request, source, "disconnected")


async def _form(request: Request) -> dict[str, str]:
    """The posted form (urlencoded, as the pages send it; no python-multipart needed)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "The form is too large.")
    fields = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def csrf_token(request: Request) -> str:
    key = request.app.state.web.signing_key
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return hmac.new(key, f"csrf.{cookie}".encode(), hashlib.sha256).hexdigest()


def _check_csrf(request: Request, given) -> None:
    if not isinstance(given, str) or not hmac.compare_digest(given, csrf_token(request)):
        raise HTTPException(403, "The form's security token is missing or stale: reload the page.")


def _session_and_source(request: Request):
    session = require_session(request)
    source = request.path_params["source"]
    if source not in PROVIDERS:
        raise HTTPException(404, f"No source {source!r}; known: {', '.join(PROVIDERS)}.")
    return session, source


def _page(request: Request, source: str, outcome: str, status_code: int = 200, **context):
    return render(
        request,
        "connect.html",
        status_code,
        source=source,
        provider=PROVIDERS[source],
        fields=SOURCE_SETTINGS[source].settings,
        outcome=outcome,
        phase=_phase(request, source),
        csrf=csrf_token(request),
        **context,
    )


def _phase(request: Request, source: str) -> Phase | None:
    """None while the warehouse cannot be read (DuckDB during a flow run): the page still says
    what the click did."""
    tenant_id = require_session(request).tenant_id
    try:
        with _warehouse(request).connect() as conn:
            return connection_phase(
                conn,
                tenant_id,
                source,
                dt.datetime.now(dt.UTC),
                airbyte=request.app.state.settings.airbyte is not None,
            )
    except WarehouseError:
        return None


def _connect_settings(request: Request):
    return load_connect_settings(request.app.state.settings.source_variables)


def _vault(settings) -> Vault:
    return Vault(settings.vault_keys)


def _warehouse(request: Request):
    return open_warehouse(request.app.state.settings.warehouse)
