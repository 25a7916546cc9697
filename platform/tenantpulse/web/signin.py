"""Sign-in: the operator's app vouches for one of a tenant's users with a short-lived signed token,
which `/signin` exchanges for a session cookie.

A token is `<payload>.<signature>`: the payload is compact JSON `{"tenant_id", "user", "exp"}` in
base64url, the signature HMAC-SHA256 over the token's purpose and the payload with the key of
TENANTPULSE_WEB_SIGNING_KEY. The purpose ("signin" or "session") is signed too, so a session
cookie is never accepted as a sign-in token nor the other way round. `exp` is a Unix time in
seconds. The session cookie holds the same kind of token, HttpOnly and SameSite=Lax.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import NoMatchFound

from tenantpulse.tenants.ids import TenantIdError, validate_tenant_id

SIGNIN = "signin"
SESSION = "session"
SESSION_COOKIE = "tenantpulse_session"
MAX_SIGNIN_MINUTES = 60
MAX_USER_LENGTH = 200


class SignInError(ValueError):
    """A token that is not accepted; the message says why, for the page the user sees."""


@dataclass(frozen=True)
class Session:
    tenant_id: str
    user: str
    exp: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: str, payload: str) -> str:
    return _b64(hmac.new(key, f"{purpose}.{payload}".encode(), hashlib.sha256).digest())


def sign(key: bytes, purpose: str, tenant_id: str, user: str, exp: int) -> str:
    validate_tenant_id(tenant_id)
    if not user or len(user) > MAX_USER_LENGTH or not user.isprintable():
        raise SignInError(f"user {user!r} of tenant {tenant_id}: 1-200 printable characters")
    body = json.dumps({"tenant_id": tenant_id, "user": user, "exp": exp}, separators=(",", ":"))
    payload = _b64(body.encode())
    return f"{payload}.{_mac(key, purpose, payload)}"


def verify(key: bytes, purpose: str, token: str, now: float | None = None) -> Session:
    """The session a token vouches for; SignInError when it is malformed, tampered or expired."""
    payload, _, signature = (token or "").partition(".")
    if not payload or not signature:
        raise SignInError("the sign-in link is incomplete")
    if not hmac.compare_digest(signature, _mac(key, purpose, payload)):
        raise SignInError("the sign-in link's signature does not match: it was changed or forged")
    try:
        claims = json.loads(_unb64(payload))
        session = Session(
            tenant_id=validate_tenant_id(claims["tenant_id"]),
            user=str(claims["user"]),
            exp=int(claims["exp"]),
        )
    except (ValueError, KeyError, TypeError, TenantIdError):
        raise SignInError("the sign-in link's content is not valid") from None
    if session.exp <= (time.time() if now is None else now):
        raise SignInError(
            f"the sign-in link for {session.tenant_id} has expired: ask for a new one"
        )
    return session


def signin_token(key: bytes, tenant_id: str, user: str, minutes: float) -> str:
    if not 0 < minutes <= MAX_SIGNIN_MINUTES:
        raise SignInError(f"minutes={minutes}: allowed 1..{MAX_SIGNIN_MINUTES}")
    return sign(key, SIGNIN, tenant_id, user, int(time.time() + minutes * 60))


def current_session(request: Request) -> Session | None:
    """The signed-in session of the request's cookie, or None (none, tampered or expired)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return verify(request.app.state.web.signing_key, SESSION, cookie)
    except SignInError:
        return None


NOT_SIGNED_IN = (
    "You are not signed in. Open the sign-in link your account's app gives you "
    "(locally: `tenantpulse web token TENANT`)."
)
HOME_ROUTE = "dashboard"  # the route a signed-in user lands on (web/pages.py)


def session_cookie(web, session: Session) -> str:
    return sign(
        web.signing_key,
        SESSION,
        session.tenant_id,
        session.user,
        int(time.time() + web.session_minutes * 60),
    )


def home_url(request: Request, session: Session) -> str | None:
    """The signed-in tenant's home page; None while no module serves it."""
    try:
        return str(request.url_for(HOME_ROUTE, tenant_id=session.tenant_id))
    except NoMatchFound:
        return None


def require_session(request: Request, tenant_id: str | None = None) -> Session:
    """The signed-in session, which must be `tenant_id`'s when given; else the 401/403 page."""
    session = current_session(request)
    if session is None:
        raise HTTPException(401, NOT_SIGNED_IN)
    if tenant_id is not None and tenant_id != session.tenant_id:
        raise HTTPException(
            403, f"Signed in for {session.tenant_id}: this page is not one of its pages."
        )
    return session
