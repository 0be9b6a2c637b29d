"""Writes audit archive objects exactly in the archive's format, for the reconciler's tests: the
archive's real writer belongs to ingest (issue 17)."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from typing import Any


def archive_body(
    events: list[dict[str, Any]],
    sent_at: datetime,
    *,
    request_id: str = "req-1",
    request_number: int = 1,
    backfill_id: str | None = None,
    orb_response: dict[str, Any] | None = None,
) -> bytes:
    header = {
        "format": 1,
        "sent_at": sent_at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{sent_at.microsecond // 1000:03d}Z",
        "orb_status": 200,
        "orb_response": orb_response if orb_response is not None else {"validation_failed": []},
        "backfill_id": backfill_id,
        "function_request_id": backfill_id or request_id,
        "request_number": request_number,
        "source": "backfill" if backfill_id else "ingest",
        "events": len(events),
        "possible_repeat": False,
        "archived_late": False,
    }
    lines = [json.dumps({"header": header})] + [json.dumps({"event": event}) for event in events]
    return gzip.compress(("\n".join(lines) + "\n").encode("utf-8"))


def archive_key(
    sent_at: datetime, *, request_id: str = "req-1", request_number: int = 1, backfill_id: str | None = None
) -> str:
    source = "backfill" if backfill_id else "ingest"
    owner = backfill_id or request_id
    return f"{source}/sent_hour={sent_at.strftime('%Y-%m-%dT%H')}/{owner}-{request_number:05d}.jsonl.gz"


def write_archive_object(s3: Any, bucket: str, events: list[dict[str, Any]], sent_at: datetime, **kwargs: Any) -> str:
    key = archive_key(
        sent_at, **{name: kwargs[name] for name in ("request_id", "request_number", "backfill_id") if name in kwargs}
    )
    s3.put_object(Bucket=bucket, Key=key, Body=archive_body(events, sent_at, **kwargs), IfNoneMatch="*")
    return key


def archive_accepted_requests(s3: Any, bucket: str, accepted: list[dict[str, Any]], request_id: str) -> int:
    """Archive every request the Orb sandbox answered 200 (``store.accepted_requests``), as ingest's
    writer would: one object per request, events as sent. The number of objects written."""
    for number, request in enumerate(accepted, start=1):
        write_archive_object(
            s3,
            bucket,
            request["events"],
            request["sent_at"],
            request_id=request_id,
            request_number=number,
            backfill_id=request["backfill_id"],
            orb_response=request["orb_response"],
        )
    return len(accepted)


def forget_earlier_archives(stack: Any) -> None:
    """The stack is shared by the package's tests: this one reconciles only what it sends, so the
    archive, the reports and the checkpoints earlier tests left are cleared first."""
    s3 = stack.local_aws.client("s3")
    bucket = stack.env["AUDIT_BUCKET_NAME"]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    dynamodb = stack.local_aws.client("dynamodb")
    table = stack.env["RECONCILE_CHECKPOINT_TABLE_NAME"]
    key_names = [k["AttributeName"] for k in dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]]
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            dynamodb.delete_item(TableName=table, Key={name: item[name] for name in key_names})
