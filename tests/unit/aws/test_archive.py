"""The audit archive's S3 writer: the object's key and content, never overwriting, failures raised."""

from __future__ import annotations

import gzip
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from orb_bridge.aws.archive import (
    ArchiveWriteError,
    ArchiveWriter,
    archive_body,
    archive_key,
    header,
    read_archive,
    sent_at_text,
)

SENT_AT = 1_738_367_999.123  # 2025-01-31T23:59:59.123Z


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="audit-bucket")
        yield client


def example_header(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(
        sent_at=SENT_AT,
        orb_response={"validation_failed": []},
        function_request_id="req-1",
        request_number=3,
        source="ingest",
        events=2,
        possible_repeat=False,
    )
    values.update(changes)
    return header(**values)


def test_the_key_is_partitioned_by_the_utc_hour_the_request_was_sent():
    assert archive_key("ingest", SENT_AT, "req-1", 3) == "ingest/sent_hour=2025-01-31T23/req-1-00003.jsonl.gz"
    assert archive_key("backfill", SENT_AT + 1, "bf-9", 12) == "backfill/sent_hour=2025-02-01T00/bf-9-00012.jsonl.gz"
    assert sent_at_text(SENT_AT) == "2025-01-31T23:59:59.123Z"


def test_the_body_is_a_header_line_then_each_event_exactly_as_sent():
    texts = ['{"idempotency_key":"a","event_name":"x"}', '{"idempotency_key":"b","event_name":"y"}']

    lines = gzip.decompress(archive_body(example_header(), texts)).decode().splitlines()

    assert json.loads(lines[0]) == {
        "header": {
            "format": 1,
            "sent_at": "2025-01-31T23:59:59.123Z",
            "orb_status": 200,
            "orb_response": {"validation_failed": []},
            "backfill_id": None,
            "function_request_id": "req-1",
            "request_number": 3,
            "source": "ingest",
            "events": 2,
            "possible_repeat": False,
            "archived_late": False,
        }
    }
    assert lines[1:] == ['{"event":' + texts[0] + "}", '{"event":' + texts[1] + "}"]


def test_an_event_written_over_several_lines_stays_one_line():
    head, events = read_archive(archive_body(example_header(events=1), ['{"idempotency_key":\n"a"}']))

    assert events == [{"idempotency_key": "a"}]
    assert head["events"] == 1


def test_a_write_never_overwrites_and_a_repeat_is_not_an_error(s3):
    writer = ArchiveWriter("audit-bucket", s3)
    key = archive_key("ingest", SENT_AT, "req-1", 1)

    assert writer.put(key, b"first") is True
    assert writer.put(key, b"second") is False  # S3's 412: the object is already there

    assert s3.get_object(Bucket="audit-bucket", Key=key)["Body"].read() == b"first"


def test_a_write_that_fails_raises_with_the_reason(s3):
    writer = ArchiveWriter("no-such-bucket", s3)

    with pytest.raises(ArchiveWriteError, match="NoSuchBucket"):
        writer.put("ingest/x", b"body")


def test_a_denied_write_raises():
    class Denied:
        def put_object(self, **_kwargs):
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                "PutObject",
            )

    with pytest.raises(ArchiveWriteError, match="AccessDenied"):
        ArchiveWriter("audit-bucket", Denied()).put("ingest/x", b"body")


def test_every_put_asks_s3_not_to_overwrite():
    calls: list[dict] = []

    class Recording:
        def put_object(self, **kwargs):
            calls.append(kwargs)

    ArchiveWriter("audit-bucket", Recording()).put("ingest/x", b"body")

    assert calls[0]["IfNoneMatch"] == "*"
    assert calls[0]["Bucket"] == "audit-bucket"


def test_reading_an_object_that_inflates_past_the_limit_is_refused_without_inflating_it_whole():
    from orb_bridge.aws.archive import ArchiveFormatError

    bomb = gzip.compress(b'{"header": {}}\n' + b" " * 5_000_000)  # ~5 KB stored, 5 MB inflated
    with pytest.raises(ArchiveFormatError, match="inflates to more than 1000000 bytes"):
        read_archive(bomb, limit=1_000_000)
