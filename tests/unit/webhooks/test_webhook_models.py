"""The Orb webhook payload model: what is required, what passes through."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from orb_bridge.webhooks.models import InvalidWebhookPayload, parse_webhook


def body(**fields) -> bytes:
    document = {"id": "whk_1", "type": "invoice.issued", "created_at": "2024-03-27T15:42:29+00:00", **fields}
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def test_expanded_payload_without_style():
    raw = body(invoice={"id": "inv_1", "amount_due": "10.00", "line_items": [{"amount": "10.00"}]})
    webhook, text = parse_webhook(raw)
    assert (webhook.id, webhook.type, webhook.style) == ("whk_1", "invoice.issued", "expanded")
    assert webhook.created_at_utc == datetime(2024, 3, 27, 15, 42, 29, tzinfo=UTC)
    assert text == raw.decode()  # handed on byte for byte, not re-serialised
    assert webhook.model_extra["invoice"]["id"] == "inv_1"


def test_standard_payload_style():
    webhook, _ = parse_webhook(body(payload_style="standard", invoice={"id": "inv_1"}))
    assert webhook.style == "standard"


def test_unknown_type_and_style_pass_through():
    webhook, _ = parse_webhook(body(type="widget.frobnicated", payload_style="compact", widget={"id": 1}))
    assert webhook.type == "widget.frobnicated"
    assert webhook.style == "compact"


def test_created_at_without_offset_is_utc():
    webhook, _ = parse_webhook(body(created_at="2024-03-27T15:42:29"))
    assert webhook.created_at_utc == datetime(2024, 3, 27, 15, 42, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "not JSON"),
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b'{"id": "a", "type": "t", "created_at": "2024-03-27T15:42:29Z", "x": NaN}', "NaN"),
        (body(id=...), "id"),
        (body(type=...), "type"),
        (body(created_at=...), "created_at"),
        (body(id=""), "id"),
        (body(id=5), "id"),
        (body(type="x" * 129), "type"),
        (body(created_at="yesterday"), "created_at"),
    ],
)
def test_unusable_payloads_explain_why(raw, fragment):
    with pytest.raises(InvalidWebhookPayload) as info:
        parse_webhook(raw)
    assert any(fragment in error for error in info.value.errors), info.value.errors


@pytest.mark.parametrize(
    "created_at",
    [
        "2024-03-27T15:42:29Z",
        "2024-03-27T15:42:29.123456+02:00",
        "2024-03-27T15:42:29",
        "2024-03-27T15:42:29-05:30",
        1711554149,
    ],
)
def test_the_plain_path_reads_what_the_pydantic_model_reads(created_at):
    from orb_bridge.webhooks.models import _plain_webhook, _validated

    document = json.loads(body(created_at=created_at, payload_style="standard", invoice={"id": "inv_1"}))
    reference = _validated(document)  # the pydantic model's reading
    webhook, _ = parse_webhook(json.dumps(document).encode())
    assert (webhook.id, webhook.type, webhook.style, webhook.created_at_utc, webhook.model_extra) == (
        reference.id,
        reference.type,
        reference.style,
        reference.created_at_utc,
        reference.model_extra,
    )
    assert (_plain_webhook(document) is None) == isinstance(created_at, int)  # epoch numbers: the model's job
