"""The webhook and Slack handlers against stand-in servers on 127.0.0.1 (no network beyond it)."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from actionkit import WebhookReceiver
from tenantpulse.actions.action_log import ActionKey
from tenantpulse.actions.handlers import (
    ActionRequest,
    DeliveryError,
    SlackHandler,
    WebhookHandler,
    build_handlers,
    signature,
    slack_client,
)
from tenantpulse.config import SettingsError, load_settings

SECRET = "test-secret"
KEY = ActionKey("globex_churn", "churn_rescue", "offer_discount", dt.date(2026, 11, 1))
BODY = json.dumps({"tenant_id": "globex_churn", "params": {"percent": 20}}).encode()


def request(url: str) -> ActionRequest:
    return ActionRequest(KEY, {"url": url}, BODY)


def handler(waits: list[float] | None = None, attempts: int = 4) -> WebhookHandler:
    sleeps = waits if waits is not None else []
    return WebhookHandler(SECRET, timeout_seconds=5, max_attempts=attempts, sleep=sleeps.append)


def test_webhook_body_is_signed_and_carries_the_idempotency_key():
    with WebhookReceiver(SECRET) as receiver:
        receipt = handler().send(request(receiver.url))
    assert receipt.startswith("HTTP 200")
    [attempt] = receiver.attempts
    assert attempt["signed"] and attempt["body"] == BODY
    assert attempt["key"] == KEY.idempotency_key()
    assert signature(SECRET, BODY) == signature(SECRET, bytes(BODY))
    assert signature(SECRET, BODY) != signature("other", BODY)


def test_webhook_that_fails_twice_then_succeeds_gets_one_successful_delivery():
    waits = []
    with WebhookReceiver(SECRET, fail_with=[503, 429]) as receiver:
        handler(waits).send(request(receiver.url))
    assert [a["status"] for a in receiver.attempts] == [503, 429, 200]
    assert {a["key"] for a in receiver.attempts} == {KEY.idempotency_key()}
    assert len(receiver.accepted) == 1
    assert waits == [0.5, 1.0]  # exponential backoff; Retry-After: 0 does not shorten it


def test_webhook_gives_up_after_max_attempts_and_does_not_retry_a_client_error():
    with WebhookReceiver(SECRET, fail_with=[500, 500, 500]) as receiver:
        with pytest.raises(DeliveryError, match="gave up after 3 attempts; last: HTTP 500"):
            handler(attempts=3).send(request(receiver.url))
    with WebhookReceiver(SECRET, fail_with=[400]) as receiver:
        with pytest.raises(DeliveryError, match="refused the action: HTTP 400"):
            handler().send(request(receiver.url))
    assert len(receiver.attempts) == 1
    with WebhookReceiver("not-the-secret") as receiver:  # a receiver that rejects the signature
        with pytest.raises(DeliveryError, match="HTTP 401"):
            handler().send(request(receiver.url))


def test_webhook_retries_a_refused_connection():
    with WebhookReceiver(SECRET) as receiver:
        url = receiver.url  # the port is closed once the receiver stops
    waits = []
    with pytest.raises(DeliveryError, match="gave up after 2 attempts; last: URLError"):
        handler(waits, attempts=2).send(request(url))
    assert waits == [0.5]


class SlackStandIn:
    """Answers Slack's chat.postMessage like Slack does, recording each call."""

    def __init__(self, reply: dict):
        self.calls = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stand_in.calls.append(
                    (self.path, self.headers.get("Authorization"), json.loads(body))
                )
                answer = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_slack_posts_the_message_through_dagster_slacks_client():
    stand_in = SlackStandIn({"ok": True, "ts": "1700000000.000100"})
    try:
        slack = SlackHandler(slack_client("xoxb-test", stand_in.url))
        body = json.dumps({"message": "Call globex_churn", "reasons": []}).encode()
        receipt = slack.send(ActionRequest(KEY, {"channel": "#customer-success"}, body))
    finally:
        stand_in.close()
    assert receipt == "slack ts 1700000000.000100"
    [(path, auth, sent)] = stand_in.calls
    assert path == "/api/chat.postMessage" and auth == "Bearer xoxb-test"
    assert sent["channel"] == "#customer-success" and sent["text"] == "Call globex_churn"
    assert sent["metadata"]["event_payload"] == {"idempotency_key": KEY.idempotency_key()}


def test_slack_error_is_a_delivery_error():
    stand_in = SlackStandIn({"ok": False, "error": "channel_not_found"})
    try:
        slack = SlackHandler(slack_client("xoxb-test", stand_in.url))
        with pytest.raises(DeliveryError, match="channel_not_found"):
            slack.send(ActionRequest(KEY, {"channel": "#nowhere"}, b'{"message": "x"}'))
    finally:
        stand_in.close()


def test_a_handler_without_its_secret_is_a_settings_error_naming_it():
    settings = load_settings({}).actions
    with pytest.raises(SettingsError, match="TENANTPULSE_WEBHOOK_SECRET is not set"):
        build_handlers(settings, {"log", "webhook"})
    with pytest.raises(SettingsError, match="TENANTPULSE_SLACK_TOKEN is not set"):
        build_handlers(settings, {"slack"})
    assert set(build_handlers(settings, {"log"})) == {"log"}
