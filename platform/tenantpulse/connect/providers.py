"""How each source is connected in 2026, and who keeps its token alive.

- stripe: a restricted key the tenant creates through tenantpulse's Stripe App and pastes (Stripe's
  Connect OAuth is deprecated for this use). Nothing to refresh.
- github: a GitHub App user token with token expiry opted out in the App's settings: no refresh
  token, no expiry; the least privilege the GitHub connector accepts.
- shopify: a public app's expiring offline token (1 h access token, a refresh token that rotates
  on every use; mandatory for public apps from 2027-01-01). The Airbyte connector cannot refresh,
  so tenantpulse is the only refresher and pushes the fresh access token into the Airbyte source
  before each sync.
- google_analytics: Google OAuth with offline access; the connector refreshes the access token
  itself from the refresh token tenantpulse stores. An app left in Google's "Testing" mode gets
  refresh tokens that expire after 7 days: publish it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from authlib.integrations.requests_client import OAuth2Session

from tenantpulse.config import ConnectSettings
from tenantpulse.connect.vault import Tokens

PASTED_KEY, OAUTH = "pasted_key", "oauth"
# Who refreshes the access token.
NOBODY = "nobody"  # it does not expire
TENANTPULSE = "tenantpulse"  # the refresher, then a push into the Airbyte source
CONNECTOR = "connector"  # the Airbyte connector, from the stored refresh token
# How a disconnect revokes the token at the provider.
RFC7009 = "rfc7009"  # POST token=<refresh or access token> (Google's revoke endpoint; the stand-in)
GITHUB_APP_TOKEN = "github_app_token"  # DELETE /applications/<client id>/token, basic auth
SHOPIFY_UNINSTALL = "shopify_uninstall"  # DELETE api_permissions/current with the access token


@dataclass(frozen=True)
class Provider:
    name: str  # the source's name (sources/contracts.py)
    auth: str  # PASTED_KEY or OAUTH
    refreshed_by: str
    authorize_url: str = ""  # `{shop}` is the tenant's shop setting
    token_url: str = ""
    scope: str = ""
    authorize_params: dict[str, str] = field(default_factory=dict)
    token_params: dict[str, str] = field(default_factory=dict)
    warning: str | None = None  # shown when a tenant connects
    revocation: str | None = None  # RFC7009, GITHUB_APP_TOKEN, SHOPIFY_UNINSTALL; None: by hand
    revoke_url: str = ""  # `{shop}`, `{client_id}` filled in
    revoke_by_hand: str | None = None  # shown on disconnect when tenantpulse cannot revoke


PROVIDERS: dict[str, Provider] = {
    "stripe": Provider(
        "stripe",
        PASTED_KEY,
        NOBODY,
        revoke_by_hand="Stripe restricted keys are deleted by you: delete the key in your Stripe "
        "Dashboard (Developers, API keys), or uninstall the tenantpulse Stripe App.",
    ),
    "github": Provider(
        "github",
        OAUTH,
        NOBODY,
        "https://github.com/login/oauth/authorize",
        "https://github.com/login/oauth/access_token",
        revocation=GITHUB_APP_TOKEN,
        revoke_url="https://api.github.com/applications/{client_id}/token",
    ),
    "shopify": Provider(
        "shopify",
        OAUTH,
        TENANTPULSE,
        "https://{shop}.myshopify.com/admin/oauth/authorize",
        "https://{shop}.myshopify.com/admin/oauth/access_token",
        "read_orders,read_customers,read_products",
        token_params={"expiring": "1"},
        revocation=SHOPIFY_UNINSTALL,
        revoke_url="https://{shop}.myshopify.com/admin/api_permissions/current.json",
    ),
    "google_analytics": Provider(
        "google_analytics",
        OAUTH,
        CONNECTOR,
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/auth/analytics.readonly",
        authorize_params={"access_type": "offline", "prompt": "consent"},
        warning="Google gives apps in 'Testing' publishing status refresh tokens that expire "
        "after 7 days: publish the OAuth app, or this connection needs reconnecting weekly.",
        revocation=RFC7009,
        revoke_url="https://oauth2.googleapis.com/revoke",
    ),
}


def provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}") from None


def endpoint(settings: ConnectSettings, which: Provider, kind: str, shop: str | None) -> str:
    """The provider's `authorize`, `token` or `revoke` URL; under TENANTPULSE_CONNECT_PROVIDER_URL
    (a stand-in) `<url>/<provider>/<kind>`."""
    if settings.provider_url:
        return f"{settings.provider_url.rstrip('/')}/{which.name}/{kind}"
    template = {"authorize": which.authorize_url, "token": which.token_url}.get(
        kind, which.revoke_url
    )
    if "{shop}" in template and not shop:
        raise ValueError(f"the {which.name} connection has no shop setting")
    client_id = settings.clients.get(which.name, ("",))[0]
    return template.format(shop=shop, client_id=client_id)


def revocation_kind(settings: ConnectSettings, which: Provider) -> str | None:
    """How `which` revokes a token here: every stand-in endpoint speaks RFC 7009."""
    if which.revocation is not None and settings.provider_url:
        return RFC7009
    return which.revocation


def oauth_session(settings: ConnectSettings, which: Provider, **kwargs) -> OAuth2Session:
    """authlib's client for the provider, with tenantpulse's OAuth app credentials."""
    if which.name not in settings.clients:
        prefix = f"TENANTPULSE_CONNECT_{which.name.upper()}_CLIENT_"
        raise ValueError(f"{which.name} is not set up: set {prefix}ID and {prefix}SECRET")
    client_id, client_secret = settings.clients[which.name]
    session = OAuth2Session(
        client_id,
        client_secret,
        token_endpoint_auth_method="client_secret_post",
        scope=which.scope or None,
        **kwargs,
    )
    for hook in ("access_token_response", "refresh_token_response"):
        session.register_compliance_hook(hook, _raise_rate_limit)
    return session


def _raise_rate_limit(response):
    """A 429 is an HTTP error whatever its body (authlib reads a JSON body as the token)."""
    if response.status_code == 429:
        response.raise_for_status()
    return response


def tokens_from_response(token: dict, now: dt.datetime, previous: Tokens | None = None) -> Tokens:
    """Tokens from an RFC 6749 token response; a response without a refresh token keeps the
    previous one (a provider that does not rotate)."""
    if not token.get("access_token"):  # e.g. a 429 whose JSON body is not an OAuth error
        raise ValueError("the token endpoint answered without an access_token")
    expires_in = token.get("expires_in")
    return Tokens(
        access_token=token["access_token"],
        refresh_token=token.get("refresh_token") or (previous.refresh_token if previous else None),
        expires_at=now + dt.timedelta(seconds=int(expires_in)) if expires_in else None,
        scope=token.get("scope"),
    )


def next_refresh_at(which: Provider, tokens: Tokens, now: dt.datetime) -> dt.datetime | None:
    """When tenantpulse refreshes next: after 80% of the access token's life (12 minutes before
    a 1 h token expires); never for a token someone else refreshes or that does not expire."""
    if which.refreshed_by != TENANTPULSE or tokens.expires_at is None:
        return None
    return now + (tokens.expires_at - now) * 0.8
