"""The SQS adapter: batching within SQS's limits, retrying Failed entries, holding back failures."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.queues import MAX_BATCH_BYTES, SqsQueue, queue_url_from_arn
from orb_bridge.aws.redelivery import Receipt, backoff_base_seconds, hold_back
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge.core.errors import ConfigurationError


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
        faults = [
            {"Id": e["Id"], "Code": "InternalError", "Message": "try again", "SenderFault": self.fail_first[e["Id"]]}
            for e in failed
        ]
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
    assert (backoff_base_seconds(False), backoff_base_seconds(True)) == (2, 900)
    # A bad value is an error naming it (it used to fall back to the default silently).
    monkeypatch.setenv("CONFIG_ERROR_BACKOFF_SECONDS", "not a number")
    with pytest.raises(ConfigurationError, match="CONFIG_ERROR_BACKOFF_SECONDS must be a whole number"):
        backoff_base_seconds(True)


def test_rejection_record_carries_reason_and_event():
    record = json.loads(
        rejection_record(stage="intake", reason="no userId", errors=["userId missing"], segment_event={"type": "track"})
    )
    assert record["stage"] == "intake" and record["reason"] == "no userId" and record["errors"] == ["userId missing"]
    assert record["segment_event"] == {"type": "track"} and record["rejected_at"].endswith("Z")


def test_visibility_is_capped_at_what_is_left_of_twelve_hours_since_receipt():
    from orb_bridge.aws.redelivery import MAX_RECEIPT_AGE_SECONDS, backoff_seconds, visibility_cap_seconds

    now = 1_800_000_000.0
    # First receive: ApproximateFirstReceiveTimestamp is this receive, 100 s ago.
    assert visibility_cap_seconds(1, int((now - 100) * 1000), now) == 43_200 - 100 - 60
    # Later receives: the first-receive time says nothing about this one; a receipt that still
    # works was received at most MAX_RECEIPT_AGE_SECONDS ago.
    assert visibility_cap_seconds(7, int((now - 86_400) * 1000), now) == 43_200 - MAX_RECEIPT_AGE_SECONDS - 60
    # The 7th failed delivery of a configuration error asks 15 min x 64 = 16 h: capped.
    assert backoff_seconds(7, 900, visibility_cap_seconds(7, None, now)) == 42_240


def test_hold_back_spans_recomputed_with_the_cap():
    from orb_bridge.aws.redelivery import hold_back_span

    assert hold_back_span(10, 60) == 1023 * 60  # about 17 hours of Orb errors
    assert hold_back_span(10, 900) == (15 + 30 + 60 + 120 + 240 + 480) * 60 + 4 * 42_240  # 2.6 days


def test_hold_back_never_asks_sqs_for_more_than_it_grants(sqs):
    url = sqs.create_queue(QueueName="IngestQueue", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.send_message(QueueUrl=url, MessageBody="held")
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]

    class Recording:
        def __init__(self) -> None:
            self.entries: list[dict] = []

        def change_message_visibility_batch(self, QueueUrl, Entries):  # noqa: N803
            self.entries += Entries
            return sqs.change_message_visibility_batch(QueueUrl=QueueUrl, Entries=Entries)

        def get_queue_url(self, **kwargs):
            return sqs.get_queue_url(**kwargs)

    client = Recording()
    receipt = Receipt(arn, message["ReceiptHandle"], receive_count=10, earlier_failures=3)
    assert hold_back([receipt], base_seconds=900, client=client) == 0
    assert client.entries[0]["VisibilityTimeout"] == 42_240
