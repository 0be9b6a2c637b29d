"""Every file in events/ drives its handler in-process and gives the real outcome.

AWS is moto (``mock_aws``), built from template.yaml's own definitions, and each function runs
with the environment the template gives it (secrets in moto's Secrets Manager). Orb is the Orb
sandbox, a real HTTP server on loopback.

Sample files keep fixed 2022 timestamps, which Orb would reject (older than its 12-hour grace
period): the ingest test refreshes them in memory before invoking, and a second test shows the
stale file's events kept on the rejected queue with Orb's reasons. Webhook samples are re-signed
at test time (a signature expires after 5 minutes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.ingest import container as ingest_container
from orb_bridge.intake import service as intake
from orb_bridge.orb.usage_event import OrbUsageEvent
from orb_bridge.webhooks import service as webhook_service
from orb_bridge_dev.commands.webhook import event as webhook_event
from orb_bridge_dev.devstack.template import function_environment, load_template, parameter_values, resolve
from orb_bridge_dev.orb_sandbox import OrbSandbox
from tests.support.lambdas import EVENTS, FakeLambdaContext, load_handler

# Credentials in the sample files' headers (documented in the README and the files themselves).
SAMPLE_BEARER_TOKEN = "sample-token"
SAMPLE_SHARED_SECRET = "sample-shared-secret"
ORB_API_KEY = "sandbox-orb-key"
WEBHOOK_SECRET = "dev-secret-sample_events_test"
PROPERTIES_MAPPING = {
    "amount": "amount",
    "currency": "currency",
    "endpoint": "endpoint",
    "region": "region",
    "billable": "billable",
    "duration_ms": "duration_ms",
    "gb_hours": "gb_hours",
    "tier": "tier",
}

INTAKE_HTTP_EVENTS = ["track_intake_http_api.json", "track_intake_http_api_batch.json"]
SEGMENT_BODIES = ["segment_track.json", "segment_batch.json"]
INGEST_EVENTS = ["orb_ingest_sqs.json"]
WEBHOOK_EVENTS = ["orb_webhook_http_api.json"]  # written by `orb-bridge webhook sign`; may be absent


def read_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_every_sample_event_is_exercised_here() -> None:
    covered = set(INTAKE_HTTP_EVENTS + SEGMENT_BODIES + INGEST_EVENTS + WEBHOOK_EVENTS)
    present = {path.name for path in EVENTS.glob("*.json")}
    assert present - covered == set(), "a sample event without a test"
    assert set(INTAKE_HTTP_EVENTS + SEGMENT_BODIES + INGEST_EVENTS) <= present


def test_segment_track_sample_is_the_seed_example() -> None:
    track = read_event("segment_track.json")
    assert (track["type"], track["event"], track["userId"]) == ("track", "payment_confirmed", "external_customer_id")
    assert track["properties"] == {
        "amount": 100.00,
        "currency": "USD",
        "confirmation_time": "2022-05-11T21:33:13.1652304793Z",
    }
    assert track["messageId"] and track["timestamp"] and track["context"]["library"]["name"]


def test_segment_batch_sample_mixes_track_calls_and_one_identify() -> None:
    batch = read_event("segment_batch.json")
    types = [element["type"] for element in batch]
    assert types.count("identify") == 1 and types.count("track") >= 3
    assert len({element["messageId"] for element in batch}) == len(batch)


# --- AWS built from the template --------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


@pytest.fixture
def stack(template: dict, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto resources shaped like the template's, plus parameter values pointing at them."""
    _forget_container_state()
    with mock_aws():
        region = "us-east-1"
        sqs = boto3.client("sqs", region_name=region)
        resources = template["Resources"]
        rejected_url = sqs.create_queue(QueueName="RejectedQueue")["QueueUrl"]
        rejected_arn = sqs.get_queue_attributes(QueueUrl=rejected_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        refs: dict[str, Any] = {"RejectedQueue": rejected_url, "RejectedQueue.Arn": rejected_arn}
        secretsmanager = boto3.client("secretsmanager", region_name=region)

        def secret(name: str, value: str) -> str:
            return secretsmanager.create_secret(Name=f"sample-events/{name}", SecretString=value)["ARN"]

        parameters = parameter_values(
            template,
            {
                "OrbApiKeySecretArn": secret("orb-api-key", ORB_API_KEY),
                "SegmentAuthTokenArn": secret("segment-token", SAMPLE_BEARER_TOKEN),
                "SegmentSharedSecretArn": secret("segment-shared", SAMPLE_SHARED_SECRET),
                "OrbWebhookSecretArn": secret("orb-webhook", WEBHOOK_SECRET),
                "PropertiesMapping": json.dumps(PROPERTIES_MAPPING),
            },
        )
        ingest_props = resolve(resources["IngestQueue"]["Properties"], template, parameters, refs)
        ingest_url = sqs.create_queue(
            QueueName="IngestQueue",
            Attributes={
                "VisibilityTimeout": str(ingest_props["VisibilityTimeout"]),
                "RedrivePolicy": json.dumps(ingest_props["RedrivePolicy"]),
            },
        )["QueueUrl"]
        refs["IngestQueue"] = ingest_url

        table = resources["WebhookIdempotencyTable"]["Properties"]
        boto3.client("dynamodb", region_name=region).create_table(
            TableName="WebhookIdempotencyTable",
            KeySchema=table["KeySchema"],
            AttributeDefinitions=table["AttributeDefinitions"],
            BillingMode=table["BillingMode"],
        )
        refs["WebhookIdempotencyTable"] = "WebhookIdempotencyTable"
        pacing = resources["OrbPacingTable"]["Properties"]
        boto3.client("dynamodb", region_name=region).create_table(
            TableName="OrbPacingTable",
            KeySchema=pacing["KeySchema"],
            AttributeDefinitions=pacing["AttributeDefinitions"],
            BillingMode=pacing["BillingMode"],
        )
        refs["OrbPacingTable"] = "OrbPacingTable"
        # The audit archive ingest writes each Orb 200 to.
        boto3.client("s3", region_name=region).create_bucket(Bucket="audit-bucket")
        refs["AuditBucket"] = "audit-bucket"
        refs["AuditBucket.Arn"] = "arn:aws:s3:::audit-bucket"

        # The example rule's pattern, enabled, delivering to a queue the test reads.
        events = boto3.client("events", region_name=region)
        bus_name = resolve(resources["OrbWebhookEventBus"]["Properties"]["Name"], template, parameters)
        events.create_event_bus(Name=bus_name)
        refs["OrbWebhookEventBus"] = bus_name
        capture_url = sqs.create_queue(QueueName="WebhookCapture")["QueueUrl"]
        capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name="all-orb", EventBusName=bus_name, EventPattern=json.dumps({"source": ["orb"]}))
        events.put_targets(Rule="all-orb", EventBusName=bus_name, Targets=[{"Id": "capture", "Arn": capture_arn}])

        def use_function_environment(function: str, **overrides: str) -> None:
            values = {**parameters, **overrides}
            for name, value in function_environment(template, function, values, refs).items():
                monkeypatch.setenv(name, value)

        yield {
            "sqs": sqs,
            "ingest_url": ingest_url,
            "rejected_url": rejected_url,
            "capture_url": capture_url,
            "table": "WebhookIdempotencyTable",
            "use_function_environment": use_function_environment,
        }
    _forget_container_state()


def _forget_container_state() -> None:
    """Each test is a fresh Lambda container: no clients or settings cached from another test."""
    aws.reset_clients()
    intake.reset()
    ingest_container.forget_container_service()


def drain(sqs: Any, queue_url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


# --- track intake ----------------------------------------------------------------------------


def check_intake_outcome(stack: dict, response: dict, segment_body: Any) -> None:
    elements = segment_body if isinstance(segment_body, list) else [segment_body]
    tracks = [element for element in elements if element["type"] == "track"]
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"]) == {
        "accepted": len(tracks),
        "skipped": len(elements) - len(tracks),
        "rejected": [],
    }
    queued = [OrbUsageEvent.from_message_body(body) for body in drain(stack["sqs"], stack["ingest_url"])]
    assert sorted(event.idempotency_key for event in queued) == sorted(track["messageId"] for track in tracks)
    by_key = {event.idempotency_key: event for event in queued}
    for track in tracks:
        event = by_key[track["messageId"]]
        assert (event.event_name, event.external_customer_id) == (track["event"], track["userId"])
        assert event.properties == {
            PROPERTIES_MAPPING[key]: value for key, value in track["properties"].items() if key in PROPERTIES_MAPPING
        }
        assert event.timestamp.endswith("Z") and event.timestamp[:19] == track["timestamp"][:19]
    assert drain(stack["sqs"], stack["rejected_url"]) == []


@pytest.mark.parametrize("name", INTAKE_HTTP_EVENTS)
def test_track_intake_accepts_the_http_api_sample(stack: dict, name: str) -> None:
    stack["use_function_environment"]("TrackIntakeFunction")
    event = read_event(name)
    assert event["routeKey"] == "POST /segment" and event["headers"]["content-type"] == "application/json"
    response = load_handler("track_intake").lambda_handler(event, FakeLambdaContext(10))
    check_intake_outcome(stack, response, json.loads(event["body"]))


@pytest.mark.parametrize("name", INTAKE_HTTP_EVENTS)
def test_http_api_samples_carry_a_valid_segment_signature(stack: dict, name: str) -> None:
    # Only the shared secret configured and the Bearer header removed: the signature in the file
    # must verify alone (X-Signature over a single event; X-Segment-Signature over a whole batch,
    # since an X-Signature over a batch's first event never authenticates a batch).
    stack["use_function_environment"]("TrackIntakeFunction", SegmentAuthTokenArn="")
    event = read_event(name)
    del event["headers"]["authorization"]
    response = load_handler("track_intake").lambda_handler(event, FakeLambdaContext(10))
    check_intake_outcome(stack, response, json.loads(event["body"]))


@pytest.mark.parametrize("name", INTAKE_HTTP_EVENTS)
def test_http_api_samples_are_refused_with_other_credentials(stack: dict, name: str) -> None:
    stack["use_function_environment"]("TrackIntakeFunction")
    event = read_event(name)
    event["headers"]["authorization"] = "Bearer not-the-token"
    event["headers"]["x-signature"] = "0" * 40
    event["headers"].pop("x-segment-signature", None)
    response = load_handler("track_intake").lambda_handler(event, FakeLambdaContext(10))
    assert response["statusCode"] == 401
    assert drain(stack["sqs"], stack["ingest_url"]) == []


@pytest.mark.parametrize("name", SEGMENT_BODIES)
def test_track_intake_accepts_the_segment_payload_as_posted(stack: dict, name: str) -> None:
    # segment_*.json are request bodies (curl -d @events/segment_batch.json); wrap one the way
    # API Gateway does, authenticated with the sample Bearer token.
    stack["use_function_environment"]("TrackIntakeFunction")
    envelope = read_event("track_intake_http_api.json")
    body = (EVENTS / name).read_text()
    envelope["body"] = body
    envelope["headers"]["content-length"] = str(len(body.encode()))
    del envelope["headers"]["x-signature"]
    response = load_handler("track_intake").lambda_handler(envelope, FakeLambdaContext(10))
    check_intake_outcome(stack, response, json.loads(body))


# --- Orb ingest ----------------------------------------------------------------------------------


@pytest.fixture
def orb() -> Iterator[OrbSandbox]:
    with OrbSandbox(api_key=ORB_API_KEY) as sandbox:
        yield sandbox


def with_fresh_timestamps(event: dict) -> dict:
    """The SQS sample with each Orb event's timestamp moved to the last minutes, keeping its order."""
    now = datetime.now(UTC)
    records = event["Records"]
    for position, record in enumerate(records):
        body = json.loads(record["body"])
        moment = now - timedelta(seconds=60 * (len(records) - position))
        body["timestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        record["body"] = OrbUsageEvent.model_validate(body).to_message_body()
        record["md5OfBody"] = hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324 - SQS's checksum
    return event


@pytest.mark.parametrize("name", INGEST_EVENTS)
def test_orb_ingest_sends_the_sqs_sample_to_orb(stack: dict, orb: OrbSandbox, name: str) -> None:
    stack["use_function_environment"]("OrbIngestFunction", OrbApiBaseUrl=orb.base_url)
    event = with_fresh_timestamps(read_event(name))
    sent = {record["body"]: OrbUsageEvent.from_message_body(record["body"]) for record in event["Records"]}

    response = load_handler("orb_ingest").lambda_handler(event, FakeLambdaContext(60))

    assert response == {"batchItemFailures": []}
    ingested = orb.ingested_events()
    assert set(ingested) == {orb_event.idempotency_key for orb_event in sent.values()}
    for orb_event in sent.values():
        stored = ingested[orb_event.idempotency_key]
        assert stored["event_name"] == orb_event.event_name
        assert stored["external_customer_id"] == orb_event.external_customer_id
        assert stored["properties"] == orb_event.properties
    assert drain(stack["sqs"], stack["rejected_url"]) == []


def test_stale_sample_events_are_kept_with_orbs_reasons_not_retried(stack: dict, orb: OrbSandbox) -> None:
    stack["use_function_environment"]("OrbIngestFunction", OrbApiBaseUrl=orb.base_url)
    event = read_event("orb_ingest_sqs.json")  # 2022 timestamps: outside Orb's grace period

    response = load_handler("orb_ingest").lambda_handler(event, FakeLambdaContext(60))

    assert response == {"batchItemFailures": []}  # Orb's verdict is final: no redelivery
    assert orb.ingested_events() == {}
    kept = [json.loads(body) for body in drain(stack["sqs"], stack["rejected_url"])]
    assert len(kept) == len(event["Records"])
    keys = {json.loads(record["body"])["idempotency_key"] for record in event["Records"]}
    assert {record["orb_event"]["idempotency_key"] for record in kept} == keys
    assert all(record["errors"] for record in kept)


# --- Orb webhook ----------------------------------------------------------------------------------


def signed_now(event: dict, secret: str) -> dict:
    """Re-sign a webhook HTTP API event at the current time, computing the HMAC here."""
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    raw_body = event["body"].encode()
    assert not event.get("isBase64Encoded")
    digest = hmac.new(secret.encode(), b"v1:" + timestamp.encode() + b":" + raw_body, hashlib.sha256).hexdigest()
    headers = {k: v for k, v in event["headers"].items() if k.lower() not in ("x-orb-timestamp", "x-orb-signature")}
    return {**event, "headers": {**headers, "x-orb-timestamp": timestamp, "x-orb-signature": f"v1={digest}"}}


def webhook_samples(tmp_path: Path) -> list[dict]:
    """The committed sample if there is one, and one written now by the documented command."""
    fresh = tmp_path / "orb_webhook_http_api.json"
    assert webhook_event.main(["--secret", WEBHOOK_SECRET, "-o", str(fresh)]) == 0
    samples = [json.loads(fresh.read_text())]
    if (EVENTS / WEBHOOK_EVENTS[0]).exists():
        samples.append(signed_now(read_event(WEBHOOK_EVENTS[0]), WEBHOOK_SECRET))
    return samples


def test_orb_webhook_accepts_freshly_signed_samples_and_forwards_them_once(stack: dict, tmp_path: Path) -> None:
    stack["use_function_environment"]("OrbWebhookFunction")
    handler = load_handler("orb_webhook")
    webhook_service.reset()
    for event in webhook_samples(tmp_path):
        webhook = json.loads(event["body"])
        assert event["routeKey"] == "POST /orb/webhook"
        first = handler.lambda_handler(event, FakeLambdaContext(10))
        again = handler.lambda_handler(event, FakeLambdaContext(10))  # Orb's at-least-once redelivery
        assert (first["statusCode"], again["statusCode"]) == (200, 200), (first["body"], again["body"])
        forwarded = [json.loads(body) for body in drain(stack["sqs"], stack["capture_url"])]
        assert len(forwarded) == 1
        assert forwarded[0]["source"] == "orb" and forwarded[0]["detail-type"] == webhook["type"]
        assert forwarded[0]["detail"]["id"] == webhook["id"]


def test_orb_webhook_refuses_a_sample_signed_with_another_secret(stack: dict, tmp_path: Path) -> None:
    stack["use_function_environment"]("OrbWebhookFunction")
    handler = load_handler("orb_webhook")
    webhook_service.reset()
    event = signed_now(webhook_samples(tmp_path)[0], "dev-secret-someone_else")
    response = handler.lambda_handler(event, FakeLambdaContext(10))
    assert response["statusCode"] == 401
    assert drain(stack["sqs"], stack["capture_url"]) == []
