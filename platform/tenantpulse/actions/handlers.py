"""Action handlers behind one interface: `send(request) -> receipt`, raising DeliveryError.

`log` sends nothing (the ledger row is the record), `webhook` POSTs the JSON body signed with
HMAC-SHA256 and an idempotency key, retrying with backoff, and `slack` posts through dagster-slack's
client. What an action does (a call, a discount) is in its parameters, not in a handler.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tenantpulse.actions.action_log import ActionKey
from tenantpulse.config import ActionSettings, SettingsError

SIGNATURE_HEADER = "X-Tenantpulse-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRY_AFTER_CAP_SECONDS = 30.0


class DeliveryError(RuntimeError):
    """The receiver did not take the action; the message says what it answered."""


@dataclass(frozen=True)
class ActionRequest:
    key: ActionKey
    params: dict  # the action's params from the playbook file (url, channel, ...)
    body: bytes  # the JSON payload, the same bytes on every attempt

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class Handler(Protocol):
    def send(self, request: ActionRequest) -> str:
        """Deliver the action; return what the receiver answered, or raise DeliveryError."""
        ...


class LogHandler:
    """The ledger row in ops.action_log is the whole action: nothing leaves the platform."""

    def send(self, request: ActionRequest) -> str:
        return "logged"


def signature(secret: str, body: bytes) -> str:
    """The value of the signature header: `sha256=<hex HMAC-SHA256 of the exact body bytes>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookHandler:
    """POST the body to `params.url`; retry 5xx, 429 and connection errors with exponential backoff
    (a 429's Retry-After is honoured, up to 30 s); any other 4xx fails at once."""

    def __init__(
        self,
        secret: str,
        timeout_seconds: float = 10.0,
        max_attempts: int = 4,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    def send(self, request: ActionRequest) -> str:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tenantpulse-actions",
            SIGNATURE_HEADER: signature(self.secret, request.body),
            IDEMPOTENCY_HEADER: request.key.idempotency_key(),
        }
        url = request.params["url"]
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            wait = self.backoff_seconds * 2 ** (attempt - 1)
            post = urllib.request.Request(url, data=request.body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(post, timeout=self.timeout_seconds) as response:
                    return f"HTTP {response.status} {response.read(500).decode(errors='replace')}".strip()
            except urllib.error.HTTPError as error:
                last_error = f"HTTP {error.code} {error.read(500).decode(errors='replace')}".strip()
                if error.code != 429 and error.code < 500:
                    raise DeliveryError(f"{url} refused the action: {last_error}") from None
                if error.code == 429:
                    wait = max(wait, _retry_after(error.headers.get("Retry-After")))
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                last_error = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
            if attempt < self.max_attempts:
                self.sleep(wait)
        raise DeliveryError(
            f"{url}: gave up after {self.max_attempts} attempts; last: {last_error}"
        )


class SlackHandler:
    """Post `message` to `params.channel` with a slack_sdk WebClient (from dagster-slack)."""

    def __init__(self, client):
        self.client = client

    def send(self, request: ActionRequest) -> str:
        from slack_sdk.errors import SlackApiError

        payload = request.payload
        try:
            response = self.client.chat_postMessage(
                channel=request.params["channel"],
                text=payload.get("message") or _default_text(payload),
                # Slack has no idempotency key; the metadata lets a reader spot a repeat.
                metadata={
                    "event_type": "tenantpulse_action",
                    "event_payload": {"idempotency_key": request.key.idempotency_key()},
                },
            )
        except SlackApiError as error:
            raise DeliveryError(
                f"Slack refused the message: {error.response.get('error')}"
            ) from None
        except OSError as error:
            raise DeliveryError(f"Slack unreachable: {error}") from None
        return f"slack ts {response.get('ts')}"


def slack_client(token: str, api_url: str):
    """dagster-slack's client, pointed at `api_url`, retrying rate limits and server errors."""
    from dagster_slack import SlackResource
    from slack_sdk.http_retry.builtin_handlers import (
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    client = SlackResource(token=token).get_client()
    client.base_url = api_url
    client.retry_handlers = [
        *client.retry_handlers,
        RateLimitErrorRetryHandler(max_retry_count=2),
        ServerErrorRetryHandler(max_retry_count=2),
    ]
    return client


def build_handlers(settings: ActionSettings, needed: set[str]) -> dict[str, Handler]:
    """The handlers the playbook file uses; a missing secret is a SettingsError naming it."""
    handlers: dict[str, Handler] = {"log": LogHandler()}
    if "webhook" in needed:
        if not settings.webhook_secret:
            raise SettingsError(
                "TENANTPULSE_WEBHOOK_SECRET is not set; the playbook file uses the webhook "
                "handler, which signs every request with it (allowed: any non-empty secret)"
            )
        handlers["webhook"] = WebhookHandler(
            settings.webhook_secret, settings.webhook_timeout_seconds, settings.webhook_max_attempts
        )
    if "slack" in needed:
        if not settings.slack_token:
            raise SettingsError(
                "TENANTPULSE_SLACK_TOKEN is not set; the playbook file uses the slack handler "
                "(allowed: a Slack bot token)"
            )
        handlers["slack"] = SlackHandler(slack_client(settings.slack_token, settings.slack_api_url))
    return handlers


def _default_text(payload: dict) -> str:
    reasons = "; ".join(payload.get("reasons", []))
    return f"{payload['playbook']}/{payload['action']} for {payload['tenant_id'] or 'the platform'}: {reasons}"


def _retry_after(value: str | None) -> float:
    try:
        return min(float(value), RETRY_AFTER_CAP_SECONDS) if value else 0.0
    except ValueError:
        return 0.0
