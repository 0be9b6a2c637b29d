"""`orb-bridge webhook sign`: writes a freshly signed HTTP API v2 event."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

from orb_bridge.webhooks.signature import parse_timestamp
from orb_bridge_dev.commands.webhook.event import main


def independent_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), b"v1:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def test_default_payload_is_a_fresh_signed_test_webhook(tmp_path):
    output = tmp_path / "events" / "event.json"
    assert main(["--secret", "dev-secret-x", "-o", str(output)]) == 0
    event = json.loads(output.read_text())
    assert event["version"] == "2.0" and event["routeKey"] == "POST /orb/webhook"
    assert event["isBase64Encoded"] is False
    headers = event["headers"]
    body = event["body"].encode()
    assert headers["x-orb-signature"] == independent_signature("dev-secret-x", headers["x-orb-timestamp"], body)
    age = (datetime.now(UTC) - parse_timestamp(headers["x-orb-timestamp"])).total_seconds()
    assert 0 <= age < 60
    payload = json.loads(body)
    assert payload["type"] == "resource_event.test" and payload["id"].startswith("whk_")
    # A fresh id each time, so repeated local invokes are not deduplicated.
    assert main(["--secret", "dev-secret-x", "-o", str(output)]) == 0
    assert json.loads(json.loads(output.read_text())["body"])["id"] != payload["id"]


def test_payload_file_sent_byte_for_byte_base64(tmp_path, monkeypatch):
    payload = tmp_path / "invoice.json"
    raw = b'{"id":"whk_9",  "type":"invoice.issued","created_at":"2024-03-27T15:42:29Z","invoice":{"id":"inv_1"}}\n'
    payload.write_bytes(raw)
    monkeypatch.setenv("ORB_WEBHOOK_SECRET", "dev-secret-first,dev-secret-second")
    output = tmp_path / "event.json"
    assert main([str(payload), "--base64", "-o", str(output)]) == 0
    event = json.loads(output.read_text())
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw
    assert event["headers"]["x-orb-signature"] == independent_signature(
        "dev-secret-first", event["headers"]["x-orb-timestamp"], raw
    )


def test_missing_secret_and_bad_payload_fail_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ORB_WEBHOOK_SECRET", raising=False)
    assert main(["-o", str(tmp_path / "e.json")]) == 2
    assert "no secret" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert main([str(bad), "--secret", "s", "-o", str(tmp_path / "e.json")]) == 2
    assert "not UTF-8 JSON" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.json"), "--secret", "s"]) == 2
    assert not (tmp_path / "e.json").exists()
