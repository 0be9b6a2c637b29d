"""The ingest bench's audit archive: a bucket on moto's S3 server (127.0.0.1, its own process, as
S3 is another machine for Lambda), and what one invocation puts there, for the cost model.

Every Orb 200 is one PUT (``If-None-Match: *``) of one gzip JSON Lines object; the PUTs and the
compressed bytes per event are counted here from the objects the ingest handler really wrote.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.common import isolate_aws_environment
from bench.log_capture import log_bytes

BUCKET = "bench-audit"


@dataclass(frozen=True)
class BucketContents:
    objects: int
    compressed_bytes: int
    events: int


class AuditBucket:
    """The bench's audit bucket; ``contents()`` lists and reads every archive object in it."""

    def __init__(self, client: Any, server_pid: int | None = None) -> None:
        self.client = client
        self.server_pid = server_pid  # moto's server: the CPU its S3 spends on our PUTs

    def contents(self) -> BucketContents:
        from orb_bridge.aws.archive import read_archive

        objects = size = events = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="ingest/"):
            for item in page.get("Contents", []):
                body = self.client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                head, lines = read_archive(body)
                if head["events"] != len(lines):
                    raise RuntimeError(f"{item['Key']}: header says {head['events']} events, holds {len(lines)}")
                objects, size, events = objects + 1, size + len(body), events + len(lines)
        return BucketContents(objects, size, events)


@contextmanager
def audit_bucket() -> Iterator[AuditBucket]:
    """``AUDIT_BUCKET_NAME`` set, the archive's S3 client pointed at moto's server on 127.0.0.1."""
    from orb_bridge.aws import archive
    from orb_bridge.aws import clients as aws
    from orb_bridge_dev.devstack.moto_server import MotoServerProcess

    isolate_aws_environment()
    moto = MotoServerProcess()
    moto.start()
    saved = {name: os.environ.get(name) for name in ("AWS_ENDPOINT_URL_S3", "AUDIT_BUCKET_NAME")}
    try:
        host, port = moto.get_host_and_port()
        os.environ.update({"AWS_ENDPOINT_URL_S3": f"http://{host}:{port}", "AUDIT_BUCKET_NAME": BUCKET})
        archive.reset_s3_client()
        client = aws.session().client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield AuditBucket(client, moto.pid)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        archive.reset_s3_client()
        moto.stop()


def archive_on(on: bool) -> None:
    """Switch the archive for the next invocations (settings change: the service is rebuilt now,
    outside any timed run)."""
    from orb_bridge.ingest import container as ingest_container

    if on:
        os.environ["AUDIT_BUCKET_NAME"] = BUCKET
    else:
        os.environ.pop("AUDIT_BUCKET_NAME", None)
    ingest_container.container_service()


def measure_batch(handler: Any, bucket: AuditBucket, events: list[dict[str, Any]]) -> dict[str, Any]:
    """One invocation of ``len(events)`` records with the archive on, at the template's log level:
    its PUTs, compressed archive bytes and log bytes (untimed for the throughput figures)."""
    from bench.common import FakeLambdaContext
    from bench.ingest import sqs_event

    archive_on(True)
    before = bucket.contents()
    event = sqs_event(events)
    start, cpu_start = time.perf_counter(), time.process_time()
    response, logged = log_bytes(
        lambda: handler.lambda_handler(event, FakeLambdaContext(timeout_seconds=900, function_name="orb_ingest"))
    )
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    after = bucket.contents()
    if response["batchItemFailures"] or after.events - before.events != len(events):
        raise RuntimeError(f"{len(events)} events: {after.events - before.events} archived, {response}")
    return {
        "events": len(events),
        "puts": after.objects - before.objects,
        "compressed_bytes": after.compressed_bytes - before.compressed_bytes,
        "log_bytes": logged,
        "seconds": elapsed,
        "cpu_seconds": cpu,
    }
