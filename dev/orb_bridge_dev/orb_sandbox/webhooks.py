"""Webhooks as Orb sends them: Orb's body shapes, signed ``X-Orb-Signature`` over
``v1:<X-Orb-Timestamp>:<raw body>`` (HMAC-SHA256), delivered with httpx; redelivery keeps the
body and ``id`` and signs afresh, as Orb's at-least-once delivery does."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx


@dataclass(frozen=True)
class SentWebhook:
    """A webhook the sandbox delivered: the raw body is kept so it can be redelivered as is."""

    id: str
    type: str
    url: str
    body: bytes
    headers: dict[str, str]
    status_code: int


def format_orb_timestamp(moment: datetime | None = None) -> str:
    """``X-Orb-Timestamp``: ISO 8601 UTC with milliseconds and no offset, e.g. 2024-03-27T15:42:29.551."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def sign_orb_webhook(secret: str, body: bytes, timestamp_header: str) -> str:
    """``X-Orb-Signature`` value: ``v1=`` + hex HMAC-SHA256 of ``v1:<timestamp>:<raw body>``."""
    signed = b"v1:" + timestamp_header.encode("utf-8") + b":" + body
    return "v1=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


class WebhookSender:
    """Builds, signs and sends webhooks (``OrbSandbox`` is one; it needs no running server)."""

    def __init__(self, webhook_secret: str | None = None) -> None:
        self.webhook_secret = webhook_secret
        self._webhook_lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._sent_webhooks: list[SentWebhook] = []

    def _clear_sent_webhooks(self) -> None:
        with self._webhook_lock:
            self._sent_webhooks = []

    def _close_http(self) -> None:
        with self._webhook_lock:
            client, self._http = self._http, None
        if client is not None:
            client.close()

    def build_webhook_body(
        self, type: str = "resource_event.test", payload: dict | None = None, *, payload_style: str | None = "expanded"
    ) -> dict:
        """An Orb-style webhook body; ``payload`` is merged over the generated top-level fields."""
        now = datetime.now(UTC)
        body: dict[str, Any] = {
            "id": uuid.uuid4().hex[:20],
            "created_at": now.replace(microsecond=0, tzinfo=None).isoformat() + "Z",
            "type": type,
            "properties": {},
        }
        if payload_style is not None:
            body["payload_style"] = payload_style
        body.update(_resource_for(type))
        if type == "resource_event.test":
            body["properties"] = {"message": "A test webhook from the Orb sandbox"}
        for name, value in (payload or {}).items():
            body[name] = value
        return body

    def send_webhook(
        self,
        url: str,
        type: str = "resource_event.test",
        payload: dict | None = None,
        *,
        timestamp: datetime | None = None,
        payload_style: str | None = "expanded",
        secret: str | None = None,
        timeout: float = 10.0,
    ) -> httpx.Response:
        """Build, sign (as Orb does) and POST a webhook; returns the receiver's response.

        ``timestamp`` overrides the signing time (to test the receiver's tolerance); ``secret``
        overrides the configured one (to test a wrong signature)."""
        body = self.build_webhook_body(type, payload, payload_style=payload_style)
        raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
        return self._deliver(url, body["id"], type, raw, timestamp=timestamp, secret=secret, timeout=timeout)

    def redeliver_webhook(
        self,
        webhook_id: str | None = None,
        url: str | None = None,
        *,
        timestamp: datetime | None = None,
        timeout: float = 10.0,
    ) -> httpx.Response:
        """Deliver an already sent webhook again (same body, same ``id``, fresh signature), as
        Orb's at-least-once delivery does. Defaults to the last one sent, to the same URL."""
        with self._webhook_lock:
            candidates = [w for w in self._sent_webhooks if webhook_id is None or w.id == webhook_id]
        if not candidates:
            raise LookupError(f"no sent webhook {webhook_id!r} to redeliver")
        original = candidates[-1]
        return self._deliver(
            url or original.url,
            original.id,
            original.type,
            original.body,
            timestamp=timestamp,
            secret=None,
            timeout=timeout,
        )

    def sent_webhooks(self) -> list[SentWebhook]:
        with self._webhook_lock:
            return list(self._sent_webhooks)

    def _deliver(
        self,
        url: str,
        webhook_id: str,
        type: str,
        raw: bytes,
        *,
        timestamp: datetime | None,
        secret: str | None,
        timeout: float,
    ) -> httpx.Response:
        key = secret if secret is not None else self.webhook_secret
        if not key:
            raise ValueError("OrbSandbox needs webhook_secret to sign webhooks")
        stamp = format_orb_timestamp(timestamp)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Orb-Webhooks (sandbox)",
            "X-Orb-Timestamp": stamp,
            "X-Orb-Signature": sign_orb_webhook(key, raw, stamp),
        }
        with self._webhook_lock:
            if self._http is None:
                self._http = httpx.Client()
            client = self._http
        response = client.post(url, content=raw, headers=headers, timeout=timeout)
        with self._webhook_lock:
            self._sent_webhooks.append(SentWebhook(webhook_id, type, url, raw, headers, response.status_code))
        return response


def _resource_for(type: str) -> dict:
    """A plausible resource object for the webhook type's resource (Orb's "expanded" style)."""
    resource = type.split(".", 1)[0]
    customer = {
        "id": "cus_sandbox0001",
        "external_customer_id": "user-sandbox-1",
        "name": "Sandbox Customer",
        "email": "billing@example.com",
        "currency": "USD",
        "balance": "0.00",
        "timezone": "Etc/UTC",
        "created_at": "2024-01-01T00:00:00Z",
        "metadata": {},
    }
    if resource == "customer":
        return {"customer": customer}
    if resource == "subscription":
        return {
            "subscription": {
                "id": "sub_sandbox0001",
                "customer": customer,
                "status": "active",
                "plan": {"id": "plan_sandbox0001", "name": "Usage plan", "external_plan_id": "usage"},
                "start_date": "2024-01-01T00:00:00Z",
                "end_date": None,
                "metadata": {},
            }
        }
    if resource == "invoice":
        return {
            "invoice": {
                "id": "inv_sandbox0001",
                "customer": customer,
                "status": "issued",
                "currency": "USD",
                "amount_due": "42.00",
                "total": "42.00",
                "invoice_number": "SANDBOX-0001",
                "invoice_date": "2024-02-01T00:00:00Z",
                "due_date": "2024-02-15T00:00:00Z",
                "metadata": {},
            }
        }
    if resource == "credit_note":
        return {
            "credit_note": {
                "id": "cn_sandbox0001",
                "customer": customer,
                "total": "10.00",
                "credit_note_number": "SANDBOX-CN-0001",
                "reason": "Duplicate",
                "type": "refund",
            }
        }
    if resource == "backfill":
        return {"backfill": {"id": "bf_sandbox0001", "status": "reflected", "events_ingested": 0}}
    return {}
