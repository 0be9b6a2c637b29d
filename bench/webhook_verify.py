"""Webhook verification: microseconds per verify, ours beside the official SDK's.

Both verify the same signed delivery (a realistic ~1.5 KB invoice payload), both check the
timestamp tolerance. The SDK's ``client.webhooks.verify_signature`` needs only the standard
library (orb-billing 4.x; no ``standardwebhooks`` dependency).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bench.common import time_per_call

SECRET = "dev-secret-bench_secret_0123456789"


def sample_body() -> bytes:
    invoice = {
        "id": "inv_" + "a" * 20,
        "amount_due": "1234.50",
        "currency": "USD",
        "customer": {"id": "cus_123", "external_customer_id": "acme"},
        "line_items": [
            {"id": f"li_{i}", "name": f"API calls tier {i}", "quantity": 1000.0 * i, "amount": f"{i * 12.5:.2f}"}
            for i in range(12)
        ],
        "status": "issued",
    }
    payload = {
        "id": "wh_" + "b" * 22,
        "created_at": "2026-11-02T10:00:00.000Z",
        "type": "invoice.issued",
        "invoice": invoice,
        "properties": {"automatically_marked_as_paid": False},
    }
    return json.dumps(payload).encode("utf-8")


def run() -> dict:
    from orb import Orb

    from orb_bridge.webhooks import signature

    body = sample_body()
    timestamp = signature.format_timestamp(datetime.now(UTC))
    signature_header = signature.sign(SECRET, timestamp, body)
    headers = {"X-Orb-Timestamp": timestamp, "X-Orb-Signature": signature_header}
    sdk = Orb(api_key="bench-key", webhook_secret=SECRET)

    def ours() -> None:
        signature.verify(body, timestamp, signature_header, secrets=(SECRET,))

    def official() -> None:
        sdk.webhooks.verify_signature(payload=body, headers=headers, secret=SECRET)

    ours()  # both must accept the delivery, else the comparison means nothing
    official()
    ours_us = time_per_call(ours) * 1e6
    sdk_us = time_per_call(official) * 1e6
    return {"body_bytes": len(body), "ours_us": ours_us, "sdk_us": sdk_us}


if __name__ == "__main__":
    print(run())
