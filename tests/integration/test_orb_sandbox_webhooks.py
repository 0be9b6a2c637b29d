"""The Orb sandbox signs and sends webhooks as Orb does, over real loopback HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orb_bridge_dev.orb_sandbox import OrbSandbox, format_orb_timestamp, parse_iso8601

API_KEY = "test-orb-key"
WEBHOOK_SECRET = "whsec-sandbox-test"


@pytest.fixture
def sandbox() -> Iterator[OrbSandbox]:
    with OrbSandbox(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, seed=7) as running:
        yield running


# ----------------------------------------------------------------------------- webhooks


class _Receiver:
    """A loopback endpoint recording raw webhook deliveries."""

    def __init__(self) -> None:
        received: list[Any] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/orb/webhook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    endpoint = _Receiver()
    yield endpoint
    endpoint.close()


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), b"v1:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def test_send_webhook_signs_like_orb(sandbox: OrbSandbox, receiver: _Receiver) -> None:
    response = sandbox.send_webhook(receiver.url)
    assert response.status_code == 200

    [delivery] = receiver.received
    stamp = delivery["headers"]["X-Orb-Timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", stamp)
    assert abs(parse_iso8601(stamp) - datetime.now(UTC)) < timedelta(minutes=1)
    assert delivery["headers"]["X-Orb-Signature"] == "v1=" + expected_signature(WEBHOOK_SECRET, stamp, delivery["body"])
    body = json.loads(delivery["body"])
    assert body["type"] == "resource_event.test"
    assert body["id"] and body["created_at"] and isinstance(body["properties"], dict)


def test_webhook_ids_are_unique_and_resources_follow_the_type(sandbox: OrbSandbox, receiver: _Receiver) -> None:
    sandbox.send_webhook(receiver.url, "customer.created")
    sandbox.send_webhook(receiver.url, "invoice.payment_failed", {"properties": {"reason": "card declined"}})
    customer, invoice = (json.loads(d["body"]) for d in receiver.received)
    assert customer["id"] != invoice["id"]
    assert customer["customer"]["id"] and customer["type"] == "customer.created"
    assert invoice["invoice"]["customer"]["external_customer_id"]
    assert invoice["properties"] == {"reason": "card declined"}


def test_timestamp_override_is_signed_as_given(sandbox: OrbSandbox, receiver: _Receiver) -> None:
    stale = datetime(2024, 3, 27, 15, 42, 29, 551000, tzinfo=UTC)
    sandbox.send_webhook(receiver.url, timestamp=stale)
    [delivery] = receiver.received
    assert delivery["headers"]["X-Orb-Timestamp"] == "2024-03-27T15:42:29.551"
    assert delivery["headers"]["X-Orb-Signature"] == "v1=" + expected_signature(
        WEBHOOK_SECRET, "2024-03-27T15:42:29.551", delivery["body"]
    )


def test_redelivery_sends_the_same_body_with_a_fresh_valid_signature(sandbox: OrbSandbox, receiver: _Receiver) -> None:
    sandbox.send_webhook(receiver.url, "subscription.started", timestamp=datetime.now(UTC) - timedelta(seconds=5))
    assert sandbox.redeliver_webhook().status_code == 200
    first, again = receiver.received
    assert again["body"] == first["body"]
    assert again["headers"]["X-Orb-Timestamp"] != first["headers"]["X-Orb-Timestamp"]
    stamp = again["headers"]["X-Orb-Timestamp"]
    assert again["headers"]["X-Orb-Signature"] == "v1=" + expected_signature(WEBHOOK_SECRET, stamp, again["body"])
    assert [w.id for w in sandbox.sent_webhooks()] == [json.loads(first["body"])["id"]] * 2


def test_sending_a_webhook_needs_a_secret(receiver: _Receiver) -> None:
    with OrbSandbox() as unsigned, pytest.raises(ValueError, match="webhook_secret"):
        unsigned.send_webhook(receiver.url)
    assert receiver.received == []


def test_format_orb_timestamp_reads_naive_as_utc() -> None:
    assert format_orb_timestamp(datetime(2024, 3, 27, 15, 42, 29, 551999)) == "2024-03-27T15:42:29.551"
