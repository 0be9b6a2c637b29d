"""Property tests on POST /orb/webhook: whatever arrives, no 5xx, no escaping exception, nothing
unauthenticated forwarded, and only usable webhooks forwarded (once).

DynamoDB and EventBridge are moto's (in-process); each example gets its own idempotency table and
event bus, whose rule copies every event to an SQS queue so what was forwarded can be read back.
Signatures are computed here with ``hmac``, independently of the project's signer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import event as record_event
from hypothesis import given
from hypothesis import strategies as st

from orb_bridge.aws import clients as aws
from tests.support.lambdas import FakeLambdaContext, load_handler
from tests.support.strategies import fuzz_settings, json_scalars, json_values

SECRET = "fuzz-orb-webhook-secret"
OTHER_SECRET = "fuzz-some-other-secret"

# Powertools warns when an invocation published no metric (every refused request): noise here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

FUZZ_SETTINGS = fuzz_settings(max_examples=150)

# ---- strategies -------------------------------------------------------------------------------

created_ats = (
    st.sampled_from(
        ["2026-11-02T10:00:00.000Z", "2024-03-27T15:42:29.551", "2026-11-02T10:00:00+02:00", "", "NaN", "0"]
    )
    | json_scalars
)
webhook_types = (
    st.sampled_from(["invoice.issued", "resource_event.test", "subscription.started", "x" * 200]) | json_scalars
)
webhook_payloads = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(min_size=0, max_size=12) | json_scalars,
        "type": webhook_types,
        "created_at": created_ats,
        "payload_style": st.sampled_from(["standard", "expanded", "future"]) | json_scalars,
        "invoice": json_values,
        "properties": json_values,
    },
)
# Webhooks as Orb sends them: always usable, must always be forwarded exactly once.
usable_webhooks = st.builds(
    lambda webhook_id, type_, style, extra: {
        "id": webhook_id,
        "created_at": "2026-11-02T10:00:00.000Z",
        "type": type_,
        **style,
        "properties": extra,
    },
    st.text(min_size=1, max_size=20).filter(str.strip),
    st.sampled_from(["invoice.issued", "customer.created", "resource_event.test", "some.future_type"]),
    st.sampled_from([{}, {"payload_style": "standard"}, {"payload_style": "expanded"}]),
    st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
)


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    choice = draw(st.sampled_from(["binary", "truncated", "json", "payload", "payload", "usable"]))
    if choice == "binary":
        return draw(st.binary(max_size=200))
    if choice == "usable":
        return json.dumps(draw(usable_webhooks), ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    document = draw(webhook_payloads) if choice == "payload" else draw(json_values)
    raw = json.dumps(document).encode("utf-8")
    if choice == "truncated":
        return raw[: draw(st.integers(0, len(raw)))] + draw(st.binary(max_size=3))
    return raw


def orb_timestamp(offset_seconds: float = 0) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=offset_seconds)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds")


def signature(secret: str, timestamp: str, raw: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), b"v1:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()


@st.composite
def forged_headers(draw: st.DrawFn, raw: bytes) -> dict[str, str]:
    """Headers an attacker or a broken proxy could send: never a valid signature for ``raw``."""
    timestamp = draw(
        st.sampled_from([orb_timestamp(), orb_timestamp(-3600), orb_timestamp(3600), "NaN", "", "garbage"])
        | st.text(max_size=30)
    )
    kind = draw(st.sampled_from(["wrong-secret", "other-body", "stale", "v0", "bare", "no-equals", "random", "none"]))
    valid_hex = signature(SECRET, timestamp, raw)[3:]
    values = {
        "wrong-secret": signature(OTHER_SECRET, timestamp, raw),
        "other-body": signature(SECRET, timestamp, raw + b" "),
        "stale": signature(SECRET, orb_timestamp(-3600), raw),  # signed for another timestamp
        "v0": "v0=" + valid_hex,
        "bare": valid_hex,
        "no-equals": "v1" + valid_hex,
        "random": draw(st.text(max_size=80)),
    }
    headers = dict(
        draw(
            st.dictionaries(
                st.sampled_from(["content-type", "user-agent"]) | st.text(max_size=10), st.text(max_size=20), max_size=3
            )
        )
    )
    headers = {k: v for k, v in headers.items() if k.lower() not in {"x-orb-timestamp", "x-orb-signature"}}
    if draw(st.booleans()):
        headers["x-orb-timestamp"] = timestamp
    if kind != "none":
        headers["x-orb-signature"] = values[kind]
    return headers


@st.composite
def deliveries(draw: st.DrawFn, raw: bytes) -> tuple[Any, Any]:
    """(body, isBase64Encoded) as API Gateway could pass ``raw``; None when it cannot carry it."""
    encoding = draw(st.sampled_from(["text", "text", "base64", "bad-base64", "not-a-string"]))
    if encoding == "text":
        try:
            return raw.decode("utf-8"), False
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), True
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii"), True
    if encoding == "bad-base64":
        return draw(st.text(max_size=20)) + "%%", True
    return draw(st.sampled_from([123, ["x"], {"a": 1}])), False


# ---- the harness --------------------------------------------------------------------------------

_numbers = itertools.count()


class WebhookStack:
    def __init__(self, sqs: Any, dynamodb: Any, events: Any) -> None:
        self.sqs, self.dynamodb, self.events = sqs, dynamodb, events
        self.handler = load_handler("orb_webhook").lambda_handler

    def invoke(self, event: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
        """Invoke on a fresh table and bus; return (response, events forwarded, records stored)."""
        responses, forwarded, stored = self.invoke_all([event])
        return responses[0], forwarded, stored

    def invoke_all(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        """Invoke each event in turn on one fresh table and bus."""
        number = next(_numbers)
        table = f"fuzz-idempotency-{number}"
        self.dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        bus = f"fuzz-bus-{number}"
        self.events.create_event_bus(Name=bus)
        tap_url = self.sqs.create_queue(QueueName=f"fuzz-tap-{number}")["QueueUrl"]
        tap_arn = self.sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(Name="tap", EventBusName=bus, EventPattern=json.dumps({"source": ["orb"]}))
        self.events.put_targets(Rule="tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": tap_arn}])
        os.environ["IDEMPOTENCY_TABLE_NAME"] = table
        os.environ["WEBHOOK_EVENT_BUS_NAME"] = bus

        # Must not raise, whatever the event.
        responses = [self.handler(event, FakeLambdaContext()) for event in events]

        forwarded = []
        while messages := self.sqs.receive_message(QueueUrl=tap_url, MaxNumberOfMessages=10).get("Messages", []):
            forwarded += [json.loads(message["Body"]) for message in messages]
        stored = self.dynamodb.scan(TableName=table)["Count"]
        return responses, forwarded, stored


@pytest.fixture(scope="module")
def webhook_stack() -> Iterator[WebhookStack]:
    from moto import mock_aws

    env = {"ORB_WEBHOOK_SECRET": SECRET, "POWERTOOLS_LOG_LEVEL": "CRITICAL"}
    # patch.dict restores os.environ whole, including the variables each example sets.
    with mock.patch.dict(os.environ, env), mock_aws():
        import boto3

        aws.reset_clients()
        yield WebhookStack(
            boto3.client("sqs", region_name="us-east-1"),
            boto3.client("dynamodb", region_name="us-east-1"),
            boto3.client("events", region_name="us-east-1"),
        )
    aws.reset_clients()


def http_api_event(body: Any, is_base64: Any, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /orb/webhook",
        "rawPath": "/orb/webhook",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "http": {"method": "POST", "path": "/orb/webhook"},
            "requestId": "fuzz",
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def usable(raw: bytes) -> bool:
    """Independent reading of the contract: a JSON object with non-empty string id and type and a
    created_at (what is usable beyond that is the receiver's call, so only the accept side is asserted)."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return (
        isinstance(document, dict)
        and isinstance(document.get("id"), str)
        and document["id"] != ""
        and isinstance(document.get("type"), str)
        and 0 < len(document["type"]) <= 128
        and document.get("created_at") is not None
    )


# ---- properties ---------------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(data=st.data())
def test_unauthenticated_deliveries_are_refused_and_never_forwarded(
    webhook_stack: WebhookStack, data: st.DataObject
) -> None:
    raw = data.draw(raw_bodies())
    body, is_base64 = data.draw(deliveries(raw))
    headers = data.draw(forged_headers(raw))

    response, forwarded, stored = webhook_stack.invoke(http_api_event(body, is_base64, headers))

    record_event(f"status {response['statusCode']}")
    assert response["statusCode"] in {400, 401, 413}, response
    assert forwarded == [] and stored == 0


@FUZZ_SETTINGS
@given(data=st.data())
def test_authentic_deliveries_forward_only_usable_webhooks_once(
    webhook_stack: WebhookStack, data: st.DataObject
) -> None:
    raw = data.draw(raw_bodies())
    timestamp = orb_timestamp(data.draw(st.integers(-290, 290)))
    body, is_base64 = data.draw(deliveries(raw))
    delivered_intact = isinstance(body, str) and not (is_base64 is True and body.endswith("%%"))
    entries = [signature(SECRET, timestamp, raw)]
    if data.draw(st.booleans()):  # several entries, one valid (rotation on Orb's side)
        entries = data.draw(st.permutations([*entries, signature(OTHER_SECRET, timestamp, raw), "v0=abc"]))
    headers = {"X-Orb-Timestamp": timestamp, "X-Orb-Signature": " ".join(entries)}

    response, forwarded, stored = webhook_stack.invoke(http_api_event(body, is_base64, headers))

    status = response["statusCode"]
    record_event(f"status {status}")
    assert status < 500, response
    if status == 200:
        assert delivered_intact and usable(raw)
        assert len(forwarded) == 1 and stored == 1
        document = json.loads(raw)
        assert forwarded[0]["detail"] == document
        assert forwarded[0]["detail-type"] == document["type"] and forwarded[0]["source"] == "orb"
    else:
        assert status in {400, 401, 413}, response
        assert forwarded == [] and stored == 0


@FUZZ_SETTINGS
@given(webhook=usable_webhooks, ensure_ascii=st.booleans(), as_base64=st.booleans(), skew=st.integers(-290, 290))
def test_webhooks_as_orb_sends_them_are_forwarded_exactly_once(
    webhook_stack: WebhookStack, webhook: dict[str, Any], ensure_ascii: bool, as_base64: bool, skew: int
) -> None:
    raw = json.dumps(webhook, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        as_base64 = True  # API Gateway base64-encodes what is not text
    body = base64.b64encode(raw).decode("ascii") if as_base64 else raw.decode("utf-8")
    timestamp = orb_timestamp(skew)
    headers = {"x-orb-timestamp": timestamp, "x-orb-signature": signature(SECRET, timestamp, raw)}
    delivery = http_api_event(body, as_base64, headers)

    # Orb delivers at least once: the redelivery is acknowledged and not handed on again.
    responses, forwarded, stored = webhook_stack.invoke_all([delivery, delivery])

    assert [response["statusCode"] for response in responses] == [200, 200], responses
    assert len(forwarded) == 1 and stored == 1
    assert forwarded[0]["detail"] == json.loads(raw)
