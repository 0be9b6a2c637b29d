"""Write a freshly signed Orb webhook as an HTTP API (payload v2) event for ``sam local invoke -e``.

A signed sample cannot live in ``events/``: its timestamp expires after the tolerance (5 min).
This signs a payload (a file, or a default ``resource_event.test`` webhook with a fresh id) with
the given secret at the current time, exactly as Orb would, and writes the event:

    orb-bridge webhook sign --secret dev-secret-local [PAYLOAD.json] [-o events/orb_webhook_http_api.json]
    python -m orb_bridge_dev.commands.webhook.event --secret dev-secret-local
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orb_bridge.webhooks.signature import format_timestamp, sign

DEFAULT_OUTPUT = Path("events") / "orb_webhook_http_api.json"
ROUTE_KEY = "POST /orb/webhook"


def default_payload(now: datetime) -> bytes:
    webhook = {
        "id": f"whk_{uuid.uuid4().hex}",
        "created_at": now.astimezone(UTC).replace(microsecond=0).isoformat(),
        "type": "resource_event.test",
        "payload_style": "expanded",
        "properties": {"message": "A test webhook from segment-orb-bridge"},
    }
    return json.dumps(webhook, indent=2).encode("utf-8")


def http_api_event(raw_body: bytes, timestamp: str, signature: str, *, base64_body: bool = False) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    return {
        "version": "2.0",
        "routeKey": ROUTE_KEY,
        "rawPath": "/orb/webhook",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "user-agent": "Orb-Webhooks",
            "x-orb-timestamp": timestamp,
            "x-orb-signature": signature,
            "content-length": str(len(raw_body)),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": "POST",
                "path": "/orb/webhook",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "Orb-Webhooks",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": ROUTE_KEY,
            "stage": "$default",
            "time": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": now_ms,
        },
        "body": base64.b64encode(raw_body).decode("ascii") if base64_body else raw_body.decode("utf-8"),
        "isBase64Encoded": base64_body,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orb-bridge webhook sign",
        description="Sign an Orb webhook payload now and write an HTTP API v2 event for `sam local invoke -e`.",
    )
    parser.add_argument(
        "payload", nargs="?", type=Path, help="JSON payload file, sent byte for byte (default: a resource_event.test)"
    )
    parser.add_argument("--secret", help="webhook secret (default: $ORB_WEBHOOK_SECRET; the first if several)")
    parser.add_argument(
        "-o",
        "--output",
        default=str(DEFAULT_OUTPUT),
        help=f"event file to write, '-' for stdout (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument("--base64", action="store_true", help="deliver the body base64-encoded (isBase64Encoded)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    secret = args.secret if args.secret is not None else os.environ.get("ORB_WEBHOOK_SECRET", "")
    # ORB_WEBHOOK_SECRET may list several secrets for rotation; sign with the first.
    secret = next((s.strip() for s in secret.replace("\n", ",").split(",") if s.strip()), "")
    if not secret:
        print("error: no secret: pass --secret or set ORB_WEBHOOK_SECRET", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    if args.payload is None:
        raw_body = default_payload(now)
    else:
        try:
            raw_body = args.payload.read_bytes()
        except OSError as exc:
            print(f"error: cannot read payload {args.payload}: {exc.strerror}", file=sys.stderr)
            return 2
        try:
            json.loads(raw_body.decode("utf-8"))
        except ValueError as exc:
            print(f"error: payload {args.payload} is not UTF-8 JSON: {exc}", file=sys.stderr)
            return 2
    timestamp = format_timestamp(now)
    event = http_api_event(raw_body, timestamp, sign(secret, timestamp, raw_body), base64_body=args.base64)
    text = json.dumps(event, indent=2) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output} (signed at {timestamp} UTC, valid for 5 minutes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
