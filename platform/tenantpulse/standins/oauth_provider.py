"""A stand-in OAuth 2.0 provider on 127.0.0.1, not GitHub, Shopify or Google: an authorization
endpoint, a token endpoint and a revocation endpoint per provider (`/<provider>/authorize`,
`/<provider>/token`, `/<provider>/revoke`) speaking RFC 6749 (authorization code, refresh token,
JSON error bodies) with PKCE S256 (RFC 7636) and RFC 7009 (token revocation).

How its token endpoint behaves is set per provider (`Behaviour`): non-expiring tokens (GitHub App
user tokens without expiry), 1 h tokens with a refresh token that rotates on every use and is
refused when presented again (Shopify's expiring offline tokens), a revoked grant (invalid_grant),
slow answers, and a number of failures (503 or 429) before it answers again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

NON_EXPIRING, ROTATING, REVOKED = "non_expiring", "rotating", "revoked"


@dataclass
class Behaviour:
    tokens: str = ROTATING  # NON_EXPIRING, ROTATING or REVOKED
    expires_in: int = 3600
    delay_seconds: float = 0.0  # before each token answer
    failures: int = 0  # token requests answered with `failure_status` before it works again
    failure_status: int = 503
    deny: bool = False  # the user clicks "deny" on the consent page
    revoke_failures: int = 0  # revocation requests answered 503 before it works again


@dataclass
class StandInState:
    codes: dict[str, dict] = field(default_factory=dict)  # code -> what it was issued for
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # live token -> provider
    used_refresh_tokens: set[str] = field(default_factory=set)
    issued_access_tokens: list[str] = field(default_factory=list)
    refreshes: int = 0  # successful refresh_token grants
    reused: int = 0  # refresh tokens presented again after they rotated
    requests: list[tuple[str, str]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)  # tokens revoked through /revoke, in order


class OAuthStandIn:
    def __init__(
        self,
        client_id: str = "tp-client",
        client_secret: str = "tp-secret-not-real",
        port: int = 0,
    ):
        self.client_id, self.client_secret = client_id, client_secret
        self.behaviour: dict[str, Behaviour] = {}
        self.state = StandInState()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OAuthStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def behave(self, provider: str, **settings) -> Behaviour:
        self.behaviour[provider] = Behaviour(**settings)
        return self.behaviour[provider]

    def grant(self, provider: str, refresh_token: str | None = None) -> dict:
        """Tokens as if a tenant had just connected (for refresher tests that skip the flow)."""
        with self._lock:
            return self._issue(provider, refresh_token)

    # --- endpoints ----------------------------------------------------------------------------

    def authorize(self, provider: str, query: dict) -> tuple[int, dict, str]:
        """(status, headers, body): a redirect back to the client, as after the user's click."""
        q = {k: v[0] for k, v in query.items()}
        if q.get("client_id") != self.client_id or not q.get("redirect_uri"):
            return 400, {}, "unknown client_id or no redirect_uri"
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
            return 400, {}, "response_type=code with an S256 code_challenge required"
        back = {"state": q.get("state", "")}
        if self._behaviour(provider).deny:
            back |= {"error": "access_denied", "error_description": "The user denied access"}
        else:
            code = secrets.token_urlsafe(16)
            with self._lock:
                self.state.codes[code] = {
                    "provider": provider,
                    "redirect_uri": q["redirect_uri"],
                    "challenge": q["code_challenge"],
                }
            back["code"] = code
        return 302, {"Location": f"{q['redirect_uri']}?{urlencode(back)}"}, ""

    def token(self, provider: str, form: dict) -> tuple[int, dict]:
        f = {k: v[0] for k, v in form.items()}
        behaviour = self._behaviour(provider)
        if behaviour.delay_seconds:
            time.sleep(behaviour.delay_seconds)
        with self._lock:
            if behaviour.failures > 0:
                behaviour.failures -= 1
                return behaviour.failure_status, {"message": "try again later"}
            if (f.get("client_id"), f.get("client_secret")) != (self.client_id, self.client_secret):
                return 401, {"error": "invalid_client"}
            if f.get("grant_type") == "authorization_code":
                issued = self.state.codes.pop(f.get("code", ""), None)  # single use
                if issued is None or issued["provider"] != provider:
                    return 400, _error("invalid_grant", "unknown or used code")
                if issued["redirect_uri"] != f.get("redirect_uri"):
                    return 400, _error("invalid_grant", "redirect_uri mismatch")
                if _s256(f.get("code_verifier", "")) != issued["challenge"]:
                    return 400, _error("invalid_grant", "PKCE verification failed")
                return 200, self._issue(provider)
            if f.get("grant_type") == "refresh_token":
                presented = f.get("refresh_token", "")
                if presented in self.state.used_refresh_tokens:
                    self.state.reused += 1
                    return 400, _error("invalid_grant", "refresh token already used")
                if behaviour.tokens == REVOKED or self.state.refresh_tokens.get(presented) != (
                    provider
                ):
                    return 400, _error("invalid_grant", "refresh token revoked")
                self.state.refreshes += 1
                if behaviour.tokens == ROTATING:
                    del self.state.refresh_tokens[presented]
                    self.state.used_refresh_tokens.add(presented)
                    return 200, self._issue(provider)
                return 200, self._issue(provider, presented)
            return 400, _error("unsupported_grant_type", "")

    def revoke(self, provider: str, form: dict) -> tuple[int, dict]:
        """RFC 7009: the token (and, for a refresh token, its grant) stops working; an unknown
        token is answered 200 as well."""
        f = {k: v[0] for k, v in form.items()}
        behaviour = self._behaviour(provider)
        with self._lock:
            if behaviour.revoke_failures > 0:
                behaviour.revoke_failures -= 1
                return 503, {"message": "try again later"}
            if (f.get("client_id"), f.get("client_secret")) != (self.client_id, self.client_secret):
                return 401, {"error": "invalid_client"}
            token = f.get("token", "")
            if not token:
                return 400, _error("invalid_request", "no token")
            self.state.refresh_tokens.pop(token, None)
            self.state.revoked.append(token)
            return 200, {}

    def _behaviour(self, provider: str) -> Behaviour:
        return self.behaviour.setdefault(provider, Behaviour())

    def _issue(self, provider: str, keep_refresh: str | None = None) -> dict:
        behaviour = self._behaviour(provider)
        access = f"{provider}_at_{secrets.token_urlsafe(18)}"
        self.state.issued_access_tokens.append(access)
        token = {"access_token": access, "token_type": "bearer", "scope": "read"}
        if behaviour.tokens == NON_EXPIRING:
            return token
        refresh = keep_refresh or f"{provider}_rt_{secrets.token_urlsafe(18)}"
        self.state.refresh_tokens[refresh] = provider
        return token | {"expires_in": behaviour.expires_in, "refresh_token": refresh}


def _error(code: str, description: str) -> dict:
    return {"error": code, "error_description": description}


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _handler(standin: OAuthStandIn):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            parts = urlsplit(self.path)
            standin.state.requests.append(("GET", parts.path))
            provider, _, kind = parts.path.strip("/").partition("/")
            if kind != "authorize":
                return self._send(404, {}, b"not found")
            status, headers, body = standin.authorize(provider, parse_qs(parts.query))
            self._send(status, headers, body.encode())

        def do_POST(self):
            parts = urlsplit(self.path)
            standin.state.requests.append(("POST", parts.path))
            provider, _, kind = parts.path.strip("/").partition("/")
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            if kind not in ("token", "revoke"):
                return self._send(404, {}, b"not found")
            answer = standin.token if kind == "token" else standin.revoke
            status, payload = answer(provider, form)
            headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
            self._send(status, headers, json.dumps(payload).encode())

        def _send(self, status: int, headers: dict, body: bytes):
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler
