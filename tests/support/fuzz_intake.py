"""The Track intake fuzz harness: hypothesis strategies for Segment bodies, API Gateway
deliveries and forged credentials, and the real handler on moto's SQS (``Intake``).

Used by tests/fuzz and tests/hostile; their conftest.py files wrap ``intake_on_moto_env``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from hypothesis import strategies as st

from orb_bridge.aws import clients as aws
from orb_bridge.intake import service as intake
from tests.support.lambdas import FakeLambdaContext, load_handler
from tests.support.strategies import json_scalars, json_values

SHARED_SECRET = "fuzz-shared-secret-9c1d"
AUTH_TOKEN = "fuzz-bearer-token-5e7a"
PROPERTIES_MAPPING = {"amount": "amount", "plan": "plan_name"}

# ---- strategies -------------------------------------------------------------------------------

timestamps = (
    st.sampled_from(
        ["2026-11-02T10:00:00Z", "2022-05-11T21:33:13.1652304793Z", "2026-11-02T12:00:00+02:00", "yesterday", "", "NaN"]
    )
    | json_scalars
)
identifiers = st.text(min_size=0, max_size=10) | json_scalars
segment_events = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "TRACK", "alias"]) | json_scalars,
        "event": identifiers,
        "userId": identifiers,
        "anonymousId": identifiers,
        "messageId": identifiers,
        "timestamp": timestamps,
        "originalTimestamp": timestamps,
        "properties": st.dictionaries(
            st.sampled_from(["amount", "plan", "other"]) | st.text(max_size=5), json_values, max_size=4
        )
        | json_values,
        "context": json_values,
    },
)
# Mostly well-formed Track calls, so the mapping's accept path is exercised as much as its rejections.
track_calls = st.builds(
    lambda event, user, message, amount, extra: {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": message,
        "timestamp": "2026-11-02T10:00:00.123Z",
        "properties": {"amount": amount, **extra},
    },
    st.text(min_size=1, max_size=8),
    st.text(min_size=1, max_size=8),
    st.text(min_size=1, max_size=12),
    json_scalars,
    st.dictionaries(st.sampled_from(["plan", "other"]), json_values, max_size=2),
)
elements = track_calls | segment_events | json_values
documents = (
    track_calls
    | st.lists(track_calls | elements, min_size=1, max_size=6)
    | elements
    | st.lists(elements, max_size=6)
    | st.builds(lambda batch: {"batch": batch}, st.lists(elements, max_size=6) | json_values)
)


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    choice = draw(st.sampled_from([0, 1, 2, 2, 3, 3, 3]))  # biased towards JSON that parses
    if choice == 0:
        return draw(st.binary(max_size=200))
    document_bytes = json.dumps(draw(documents)).encode("utf-8")
    if choice == 1:  # truncated or corrupted JSON
        cut = draw(st.integers(0, len(document_bytes)))
        return document_bytes[:cut] + draw(st.binary(max_size=3))
    if choice == 2:  # not ASCII-escaped: raw UTF-8 text
        return json.dumps(draw(documents), ensure_ascii=False).encode("utf-8", "surrogatepass")
    return document_bytes


@st.composite
def http_bodies(draw: st.DrawFn, raw: bytes) -> tuple[Any, Any]:
    """How API Gateway might deliver ``raw``: (body, isBase64Encoded)."""
    encoding = draw(
        st.sampled_from(["text", "text", "text", "base64", "base64", "bad-base64", "odd-flag", "none", "not-a-string"])
    )
    if encoding == "text":
        try:
            return raw.decode("utf-8"), False
        except UnicodeDecodeError:
            return raw.decode("utf-8", "surrogateescape"), False  # lone surrogates: not encodable
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii"), True
    if encoding == "bad-base64":
        return draw(st.text(max_size=40)) + "!*", True
    if encoding == "odd-flag":
        return base64.b64encode(raw).decode("ascii"), draw(st.sampled_from(["true", 1, None, "yes"]))
    if encoding == "none":
        return None, draw(st.booleans())
    return draw(st.sampled_from([123, ["a"], {"k": "v"}, b"bytes"])), False


header_names = st.sampled_from(["content-type", "user-agent", "x-forwarded-for", "X-Custom"]) | st.text(max_size=12)
fuzz_headers = st.dictionaries(header_names, st.text(max_size=30), max_size=4).map(
    lambda headers: {k: v for k, v in headers.items() if k.lower() not in {"authorization", "x-signature"}}
)
forged_credentials = st.fixed_dictionaries(
    {},
    optional={
        "authorization": st.sampled_from(
            ["", "Bearer", "Bearer ", f"Basic {AUTH_TOKEN}", f"Bearer {AUTH_TOKEN}x", f"bearer {AUTH_TOKEN[:-1]}"]
        )
        | st.text(max_size=40),
        "x-signature": st.sampled_from(["", "0" * 40, "zz"]) | st.text(max_size=50),
    },
)


# ---- the harness --------------------------------------------------------------------------------

_queue_names = itertools.count()


def http_api_event(body: Any, is_base64: Any, headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /segment",
        "rawPath": "/segment",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/segment"}, "requestId": "fuzz", "stage": "$default"},
        "body": body,
        "isBase64Encoded": is_base64,
    }


def drain(sqs: Any, queue_url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        bodies += [message["Body"] for message in messages]


class Intake:
    """The real handler on moto's SQS; ``invoke`` uses a fresh pair of queues each time."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        self.handler = load_handler("track_intake").lambda_handler

    def invoke(self, event: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
        number = next(_queue_names)
        ingest_url = self.sqs.create_queue(QueueName=f"fuzz-ingest-{number}")["QueueUrl"]
        rejected_url = self.sqs.create_queue(QueueName=f"fuzz-rejected-{number}")["QueueUrl"]
        os.environ["INGEST_QUEUE_URL"] = ingest_url
        os.environ["REJECTED_QUEUE_URL"] = rejected_url
        intake.reset()
        response = self.handler(event, FakeLambdaContext())  # must not raise, whatever the event
        return response, drain(self.sqs, ingest_url), drain(self.sqs, rejected_url)


@contextmanager
def intake_on_moto_env() -> Iterator[Intake]:
    """The environment and moto backend of ``Intake`` (module-scoped fixtures wrap it)."""
    from moto import mock_aws

    env = {
        "SEGMENT_SHARED_SECRET": SHARED_SECRET,
        "SEGMENT_AUTH_TOKEN": AUTH_TOKEN,
        "EXTERNAL_CUSTOMER_ID_FIELD": "userId",
        "PROPERTIES_MAPPING": json.dumps(PROPERTIES_MAPPING),
        "ALLOW_UNAUTHENTICATED": "false",
        "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    }
    # patch.dict restores os.environ whole, including the variables each example sets.
    with mock.patch.dict(os.environ, env), mock_aws():
        aws.reset_clients()
        import boto3

        yield Intake(boto3.client("sqs", region_name="us-east-1"))
    aws.reset_clients()
    intake.reset()


def sign(raw: bytes) -> str:
    return hmac.new(SHARED_SECRET.encode(), raw, hashlib.sha1).hexdigest()


def first_element_bytes(raw: bytes) -> bytes | None:
    """What Segment signs in batch mode: body[0] exactly as sent (computed independently here)."""
    try:
        text = raw.decode("utf-8")
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(document, list) or not document:
        return None
    stripped = text.lstrip(" \t\n\r")[1:].lstrip(" \t\n\r")
    _, end = json.JSONDecoder().raw_decode(stripped)
    return stripped[:end].encode("utf-8")


def track_elements(raw: bytes) -> list[Any]:
    document = json.loads(raw)
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and "batch" in document and "type" not in document:
        return document["batch"]
    return [document]


def as_identifier(value: Any) -> str:
    """Segment identifiers may be numbers; Orb's are strings."""
    return value if isinstance(value, str) else repr(value)


as_id = as_identifier
