"""Helpers for the actions tests: a webhook receiver on 127.0.0.1 and hand-built analysis days."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd

from tenantpulse.analysis.tables import ANALYSIS_SCHEMA, replace_days
from tenantpulse.tenants.registry import add_tenant


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that checks each POST's signature and idempotency key, answers
    the planned failure statuses first (then `otherwise`), and accepts each idempotency key once.
    `delay_seconds` holds each request that long before answering (two senders then overlap)."""

    def __init__(
        self,
        secret: str,
        fail_with: list[int] | None = None,
        otherwise: int = 200,
        delay_seconds: float = 0.0,
    ):
        self.secret = secret
        self.fail_with = list(fail_with or [])
        self.attempts: list[dict] = []  # every request, as received
        self.accepted: dict[str, dict] = {}  # idempotency key -> body, first successful delivery
        lock = threading.Lock()  # requests arrive on several threads
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                key = self.headers.get("Idempotency-Key")
                signed = hmac.compare_digest(
                    self.headers.get("X-Tenantpulse-Signature", ""), expected
                )
                time.sleep(delay_seconds)
                with lock:
                    status = receiver.fail_with.pop(0) if receiver.fail_with else otherwise
                    if not signed:
                        status = 401
                    duplicate = status == 200 and key in receiver.accepted
                    receiver.attempts.append(
                        {"key": key, "signed": signed, "status": status, "body": body}
                    )
                    if status == 200 and not duplicate:
                        receiver.accepted[key] = json.loads(body)
                reply = json.dumps({"duplicate": duplicate}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/actions"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def tenant_day(
    tenant_id: str,
    health_score: float,
    churn_risk: str,
    churn_probability: float,
    recommendations: list[tuple[str, str]] = (),
    anomalies: list[tuple[str, str, dt.date]] = (),
) -> dict[str, list[dict]]:
    """One tenant's analysis rows: (priority, action) recommendations, (metric, kind, date)
    anomalies."""
    return {
        "health_scores": [
            {
                "tenant_id": tenant_id,
                "health_score": health_score,
                "revenue": health_score,
                "payments": health_score,
                "engineering": health_score,
                "web": health_score,
                "data_freshness": 100.0,
                "components_used": "revenue,payments,engineering,web,data_freshness",
                "override": None,
            }
        ],
        "churn_risk": [
            {
                "tenant_id": tenant_id,
                "churn_risk": churn_risk,
                "churn_probability": churn_probability,
                "reason": None,
            }
        ],
        "recommendations": [
            {
                "tenant_id": tenant_id,
                "priority": priority,
                "action": action,
                "impact": "",
                "evidence": "[]",
                "rule": "test",
            }
            for priority, action in recommendations
        ],
        "anomalies": [
            {
                "tenant_id": tenant_id,
                "metric": metric,
                "date": pd.Timestamp(day),
                "value": 10.0,
                "expected": 100.0,
                "kind": kind,
            }
            for metric, kind, day in anomalies
        ],
    }


def write_analysis_day(conn, day: dt.date, tenants: list[dict[str, list[dict]]]) -> None:
    """Store hand-built tenant days as `day`'s analysis (registering the tenants)."""
    for tenant in tenants:
        tenant_id = tenant["health_scores"][0]["tenant_id"]
        add_tenant(conn, tenant_id, tenant_id, "stripe")
    for table in ("health_scores", "churn_risk", "recommendations", "anomalies"):
        rows = [row | {"as_of": day} for tenant in tenants for row in tenant[table]]
        if rows:
            replace_days(conn, ANALYSIS_SCHEMA, table, pd.DataFrame(rows), [day])


def lapse_claims(conn, age: dt.timedelta) -> None:
    """Date every claim in ops.action_log `age` earlier: as if the run holding it died that long
    ago (a claim older than the lease is taken again)."""
    conn.execute(
        "update ops.action_log set claimed_at = claimed_at - %s where claimed_at is not null",
        (age,),
    )
