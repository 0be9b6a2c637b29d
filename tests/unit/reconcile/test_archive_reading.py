"""A pass reads an hour's archive objects a few at a time (their GETs overlap), hands them on in key
order whatever order the GETs finish in, and holds a bounded number (events, never timing)."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from orb_bridge.aws.clients import client, reset_clients
from orb_bridge.reconcile.archive_reader import READ_AHEAD, ArchiveReader, HourArchive
from tests.support.audit_archive import archive_body

SENT = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def body(number: int) -> bytes:
    events = [
        {"idempotency_key": f"k-{number}-{n}", "event_name": "e", "timestamp": "2026-03-02T10:00:00Z", "properties": {}}
        for n in range(3)
    ]
    return archive_body(events, SENT, request_number=number)


class SlowFirstS3:
    """An S3 whose first object's GET answers only once every other object's GET has begun: the
    reader must overlap its GETs to get anywhere, and still hand the first object on first."""

    def __init__(self, objects: int, block_first: bool = True) -> None:
        self.names = [f"ingest/sent_hour=2026-03-02T10/r-{n:05d}.jsonl.gz" for n in range(objects)]
        self.bodies = {name: body(n) for n, name in enumerate(self.names)}
        self.bodies[self.names[2]] = b"not gzip"
        self.requested: list[str] = []
        self.others_begun = threading.Event()
        self.block_first = block_first
        self._lock = threading.Lock()

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        with self._lock:
            self.requested.append(Key)
            if len(self.requested) >= min(READ_AHEAD, len(self.names)):
                self.others_begun.set()
        if self.block_first and Key == self.names[0]:
            assert self.others_begun.wait(30), "the reader did not overlap its GETs"
        return {"Body": io.BytesIO(self.bodies[Key])}


def test_objects_come_in_key_order_while_their_gets_overlap_and_unreadable_ones_are_listed() -> None:
    s3 = SlowFirstS3(READ_AHEAD + 4)
    read = HourArchive([], [], 0, 0)
    got = [item.name for item in ArchiveReader(s3, "bucket").objects(s3.names, read)]
    assert got == [name for name in s3.names if name != s3.names[2]]
    assert read.objects == len(s3.names) and read.s3_requests == len(s3.names)
    assert len(read.unreadable) == 1 and s3.names[2] in read.unreadable[0]


def test_at_most_read_ahead_objects_are_fetched_beyond_the_one_being_worked_on() -> None:
    s3 = SlowFirstS3(READ_AHEAD * 3, block_first=False)
    read = HourArchive([], [], 0, 0)
    objects = ArchiveReader(s3, "bucket").objects(s3.names, read)
    next(objects)  # working on the first object: only the read-ahead after it has been asked for
    assert len(s3.requested) <= READ_AHEAD + 1
    objects.close()  # a pass that stops early leaves no GET running or queued
    requested = len(s3.requested)
    assert requested <= READ_AHEAD + 1 and read.s3_requests == requested


def test_the_shared_s3_clients_connection_pool_serves_every_read_ahead_get_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    reset_clients()
    try:
        assert client("s3").meta.config.max_pool_connections >= READ_AHEAD
    finally:
        reset_clients()
