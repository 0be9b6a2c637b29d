"""The dev stack's SQS poller behaves like Lambda's SQS event source mapping (against moto's server)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from orb_bridge_dev.devstack.local_aws import LocalAws
from orb_bridge_dev.devstack.poller import LambdaContext, SqsEventSourcePoller, failed_message_ids
from orb_bridge_dev.devstack.stack import wait_until
from orb_bridge_dev.devstack.template import load_template


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    local = LocalAws(load_template())
    local.start()
    yield local
    local.stop()


@pytest.fixture
def sqs(aws: LocalAws) -> Any:
    return aws.client("sqs")


def make_queue(sqs: Any, *, visibility: int = 1, max_receive_count: int | None = None) -> tuple[str, str, str | None]:
    """A fresh queue (and its dead-letter queue when ``max_receive_count`` is given)."""
    name = f"q-{uuid.uuid4().hex[:12]}"
    attributes = {"VisibilityTimeout": str(visibility)}
    dlq_url = None
    if max_receive_count is not None:
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq_url


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


class Recorder:
    """A handler that records its invocations and answers with ``respond(event)``."""

    def __init__(self, respond: Any = None) -> None:
        self.invocations: list[tuple[dict[str, Any], Any, int]] = []
        self.respond: Any = respond or (lambda event: {"batchItemFailures": []})

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.invocations.append((event, context, context.get_remaining_time_in_millis()))
        return self.respond(event)

    @property
    def bodies(self) -> list[str]:
        return [record["body"] for event, _, _ in self.invocations for record in event["Records"]]


def poller(sqs: Any, url: str, arn: str, handler: Any, **options: Any) -> SqsEventSourcePoller:
    options.setdefault("function_timeout", 30.0)
    return SqsEventSourcePoller(
        sqs_client=sqs, queue_url=url, queue_arn=arn, handler=handler, function_name="OrbIngestFunction", **options
    )


def test_successful_batch_is_delivered_lambda_shaped_and_deleted(sqs: Any) -> None:
    url, arn, _ = make_queue(sqs)
    sqs.send_message(
        QueueUrl=url, MessageBody='{"n": 1}', MessageAttributes={"kind": {"DataType": "String", "StringValue": "usage"}}
    )
    handler = Recorder()

    assert poller(sqs, url, arn, handler, function_timeout=7).poll_once() == 1

    (event, context, remaining_ms) = handler.invocations[0]
    (record,) = event["Records"]
    assert record["body"] == '{"n": 1}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert record["receiptHandle"] and record["messageId"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert "SentTimestamp" in record["attributes"]
    assert record["messageAttributes"]["kind"]["stringValue"] == "usage"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert 0 < remaining_ms <= 7000
    assert context.function_name == "OrbIngestFunction"
    assert depth(sqs, url) == 0


def test_batch_item_failures_stay_and_come_back_after_the_visibility_timeout(sqs: Any) -> None:
    url, arn, _ = make_queue(sqs, visibility=1)
    for body in ("keep", "fail", "keep too"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    calls = {"n": 0}

    def respond(event: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        failing = [r["messageId"] for r in event["Records"] if r["body"] == "fail" and calls["n"] == 1]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failing]}

    handler = Recorder(respond)
    source = poller(sqs, url, arn, handler, batch_size=10)
    assert source.poll_once() == 3
    assert depth(sqs, url) == 1
    assert source.poll_once() == 0  # invisible until the visibility timeout passes

    assert wait_until(lambda: source.poll_once() == 1, timeout=60)
    (retry,) = handler.invocations[-1][0]["Records"]
    assert retry["body"] == "fail"
    assert retry["attributes"]["ApproximateReceiveCount"] == "2"
    assert depth(sqs, url) == 0
    assert source.stats.snapshot()["failed"] == 1


def test_a_raised_exception_fails_the_whole_batch(sqs: Any) -> None:
    url, arn, _ = make_queue(sqs, visibility=30)
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))

    def explode(event: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    source = poller(sqs, url, arn, Recorder(explode))
    assert source.poll_once() == 3

    assert depth(sqs, url) == 3
    stats = source.stats.snapshot()
    assert stats["failed"] == 3 and stats["succeeded"] == 0 and stats["batch_errors"] == 1
    assert "RuntimeError: boom" in stats["last_error"]


def test_an_invocation_past_the_function_timeout_fails_the_whole_batch(sqs: Any) -> None:
    url, arn, _ = make_queue(sqs, visibility=30)
    sqs.send_message(QueueUrl=url, MessageBody="slow")

    def slow(event: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.3)
        return {"batchItemFailures": []}

    source = poller(sqs, url, arn, Recorder(slow), function_timeout=0.1)
    source.poll_once()

    assert depth(sqs, url) == 1
    assert "timed out" in source.stats.snapshot()["last_error"]


def test_redrive_moves_a_message_to_the_dead_letter_queue_after_max_receive_count(sqs: Any) -> None:
    url, arn, dlq_url = make_queue(sqs, visibility=1, max_receive_count=2)
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    handler = Recorder(
        lambda event: {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}
    )
    source = poller(sqs, url, arn, handler)
    source.start()
    assert dlq_url is not None
    try:
        assert wait_until(lambda: depth(sqs, dlq_url) == 1, timeout=60)
    finally:
        source.stop()

    assert len(handler.invocations) == 2  # delivered maxReceiveCount times, then dead-lettered
    assert depth(sqs, url) == 0
    (moved,) = sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert moved["Body"] == "poison"


def test_batches_respect_the_batch_size_and_the_running_poller_drains_the_queue(sqs: Any) -> None:
    url, arn, _ = make_queue(sqs)
    for start in range(0, 25, 10):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": str(n)} for n in range(start, min(start + 10, 25))]
        )
    handler = Recorder()
    source = poller(sqs, url, arn, handler, batch_size=4, batching_window=0.2)
    source.start()
    try:
        assert wait_until(lambda: len(handler.bodies) == 25, timeout=60)
    finally:
        source.stop()

    assert sorted(handler.bodies, key=int) == [str(n) for n in range(25)]
    assert all(len(event["Records"]) <= 4 for event, _, _ in handler.invocations)
    assert depth(sqs, url) == 0


def test_local_caps_keep_template_batching_settings_sane(sqs: Any) -> None:
    source = poller(sqs, "url", "arn", Recorder(), batch_size=10_000, batching_window=300)
    assert source.batch_size == 100
    assert source.batching_window == 0.5


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "a"}]}, {"a"}),
        # Lambda treats an unknown, empty or missing identifier as a failure of the whole batch.
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": [{}]}, {"a", "b"}),
        ({"batchItemFailures": "a"}, {"a", "b"}),
        ("not a dict", {"a", "b"}),
    ],
)
def test_failed_message_ids_follow_report_batch_item_failures_rules(response: Any, expected: set[str]) -> None:
    assert failed_message_ids(response, {"a", "b"}) == expected


def test_context_remaining_time_counts_down() -> None:
    now = [100.0]
    context = LambdaContext("f", timeout_seconds=0.2, clock=lambda: now[0])
    assert context.get_remaining_time_in_millis() == 200 and not context.timed_out
    now[0] += 0.05
    assert context.get_remaining_time_in_millis() == 150 and not context.timed_out
    now[0] += 0.2
    assert context.get_remaining_time_in_millis() == 0 and context.timed_out
