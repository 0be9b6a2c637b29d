"""The SQS adapter: batching within SQS's limits, retrying Failed entries, holding back failures."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from orb_bridge import aws
from orb_bridge.queues import (
    MAX_BATCH_BYTES,
    Receipt,
    SqsQueue,
    backoff_base_seconds,
    hold_back,
    queue_url_from_arn,
    rejection_record,
)


@pytest.fixture
def sqs():
    with mock_aws():
        aws.reset_clients()
        yield boto3.client("sqs", region_name="us-east-1")
    aws.reset_clients()


def drain(sqs, url: str) -> list[str]:
    bodies: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"] for m in messages]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )
    return bodies


class CountingClient:
    """The real (moto) client, recording each SendMessageBatch and failing entries on demand."""

    def __init__(self, client, fail_first: dict[str, bool] | None = None) -> None:
        self.client = client
        self.calls: list[list[dict]] = []
        self.fail_first = dict(fail_first or {})  # entry Id -> SenderFault, failed on its first try

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803 (boto3's names)
        self.calls.append(Entries)
        failed = [e for e in Entries if e["Id"] in self.fail_first]
        sent = [e for e in Entries if e["Id"] not in self.fail_first]
        response = self.client.send_message_batch(QueueUrl=QueueUrl, Entries=sent) if sent else {}
        faults = [{"Id": e["Id"], "Code": "InternalError", "Message": "try again",
                   "SenderFault": self.fail_first[e["Id"]]} for e in failed]
        for entry in failed:
            if not self.fail_first[entry["Id"]]:
                del self.fail_first[entry["Id"]]  # a service fault: succeeds when retried
        return {"Successful": response.get("Successful", []), "Failed": faults}


def test_send_all_keeps_to_ten_entries_and_the_byte_limit(sqs):
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    client = CountingClient(sqs)
    bodies = [json.dumps({"n": n}) for n in range(23)] + ["x" * (MAX_BATCH_BYTES // 2)] * 3
    assert SqsQueue(url, client).send_all(bodies) == []
    assert max(len(call) for call in client.calls) == 10
    assert all(sum(len(e["MessageBody"]) for e in call) <= MAX_BATCH_BYTES for call in client.calls)
    assert sorted(drain(sqs, url)) == sorted(bodies)


def test_failed_entries_are_retried_and_sender_faults_reported(sqs):
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    client = CountingClient(sqs, fail_first={"1": False, "2": True})
    failures = SqsQueue(url, client).send_all(["a", "b", "c"])
    assert [(f.index, f.sender_fault) for f in failures] == [(2, True)]
    assert sorted(drain(sqs, url)) == ["a", "b"]


def test_a_queue_that_never_answers_fails_everything_after_the_attempts():
    class Down:
        calls = 0

        def send_message_batch(self, **_):
            Down.calls += 1
            raise ConnectionError("sqs unreachable")

    failures = SqsQueue("https://sqs.example/q", Down()).send_all(["a", "b"], attempts=2)
    assert [f.index for f in failures] == [0, 1] and Down.calls == 2


def test_hold_back_delays_redelivery_by_receive_count(sqs, monkeypatch):
    url = sqs.create_queue(QueueName="IngestQueue", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert queue_url_from_arn(arn) == url
    sqs.send_message(QueueUrl=url, MessageBody="held")
    sqs.send_message(QueueUrl=url, MessageBody="not held")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    held = next(m for m in received if m["Body"] == "held")

    assert hold_back([Receipt(arn, held["ReceiptHandle"], receive_count=3)], base_seconds=60) == 0

    visible = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]
    assert visible == ["not held"]  # the other one waits 4 minutes (60 s doubled twice)


def test_backoff_bases_come_from_the_environment(monkeypatch):
    assert (backoff_base_seconds(False), backoff_base_seconds(True)) == (60, 900)
    monkeypatch.setenv("RETRY_BACKOFF_SECONDS", "2")
    monkeypatch.setenv("CONFIG_ERROR_BACKOFF_SECONDS", "not a number")
    assert (backoff_base_seconds(False), backoff_base_seconds(True)) == (2, 900)


def test_rejection_record_carries_reason_and_event():
    record = json.loads(rejection_record(stage="intake", reason="no userId", errors=["userId missing"],
                                         segment_event={"type": "track"}))
    assert record["stage"] == "intake" and record["reason"] == "no userId" and record["errors"] == ["userId missing"]
    assert record["segment_event"] == {"type": "track"} and record["rejected_at"].endswith("Z")
