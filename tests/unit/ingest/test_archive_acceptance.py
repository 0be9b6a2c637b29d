"""The acceptance a copy waiting on the archive carries: read back strictly (outside input)."""

from __future__ import annotations

import pytest

from orb_bridge.ingest.archive import Acceptance
from orb_bridge.ingest.late_archive import accepted_copies, retry_delay


class Copy:
    def __init__(self, body: str, attribute: str | None) -> None:
        self.message_id, self.body = "m-1", body
        self.message_attributes = {} if attribute is None else {"orb_bridge.accepted": {"stringValue": attribute}}


EVENT = '{"event_name":"e","idempotency_key":"k","timestamp":"2026-01-01T00:00:00Z","external_customer_id":"c","properties":{}}'


def test_an_acceptance_round_trips_and_a_long_answer_is_summarised():
    acceptance = Acceptance(1_800_000_000.5, "req-1", 7, {"validation_failed": []}, True)
    assert Acceptance.from_attribute(acceptance.to_attribute()) == acceptance
    long = Acceptance(1.0e9, "r", 1, {"validation_failed": [{"idempotency_key": "x" * 50}] * 100}, False)
    assert Acceptance.from_attribute(long.to_attribute()).orb_response == {  # type: ignore[union-attr]
        "summarised": True,
        "validation_failed_count": 100,
    }


@pytest.mark.parametrize(
    "attribute",
    [
        "not json",
        "[]",
        '{"sent_at": "x", "function_request_id": "r", "request_number": 1}',
        '{"sent_at": 1e9, "function_request_id": 5, "request_number": 1}',
        '{"sent_at": 1e9, "function_request_id": "r", "request_number": true}',
        '{"sent_at": -1, "function_request_id": "r", "request_number": 1}',
    ],
)
def test_an_unreadable_acceptance_sends_the_event_to_orb_again(attribute):
    assert Acceptance.from_attribute(attribute) is None
    assert accepted_copies([Copy(EVENT, attribute)]) == {}


def test_a_copy_whose_body_is_not_an_orb_event_is_not_archived_unsent():
    good = Acceptance(1.0e9, "r", 1, {}, False).to_attribute()
    assert accepted_copies([Copy("{}", good)]) == {}
    assert accepted_copies([Copy(EVENT, good)]) == {"m-1": Acceptance(1.0e9, "r", 1, {}, False)}


def test_waiting_on_the_archive_backs_off_to_sqs_largest_delay():
    assert [retry_delay(n) for n in (0, 1, 2, 5, 50)] == [30, 60, 120, 900, 900]


@pytest.mark.parametrize("concurrency", [20, 48])
def test_the_archive_keeps_a_connection_for_every_concurrent_orb_request(rejected_queue, monkeypatch, concurrency):
    """Each concurrent Orb request writes its own object after Orb's 200: with botocore's default
    pool of 10, every write past the tenth would open (and drop) a new TLS connection to S3."""
    from orb_bridge.aws import archive as aws_archive
    from orb_bridge.ingest import container as ingest_container

    monkeypatch.setenv("ORB_API_KEY", "test-key")
    monkeypatch.setenv("REJECTED_QUEUE_URL", rejected_queue)
    monkeypatch.setenv("AUDIT_BUCKET_NAME", "audit-bucket")
    monkeypatch.setenv("ORB_MAX_CONCURRENT_REQUESTS", str(concurrency))
    ingest_container.forget_container_service()
    try:
        ingest_container.container_service()
        writer = ingest_container.container_archiver().writer
        assert writer is not None and writer.concurrent_writes == concurrency
        assert aws_archive.s3_client(writer.concurrent_writes).meta.config.max_pool_connections >= concurrency
    finally:
        ingest_container.forget_container_service()
