"""The audit archive: one gzip JSON Lines object per Orb ``/ingest`` request Orb answered 200.

Shared by live ingest (``ingest/``) and ``orb-bridge backfill`` (``backfill/``), read by
reconciliation. The object's format (docs/architecture.md#the-audit-archive):

- key ``<source>/sent_hour=YYYY-MM-DDTHH/<name>-<request_number:05d>.jsonl.gz``: ``sent_hour`` is
  the UTC hour the request was sent, ``name`` the function request (or backfill) that wrote it;
- line 1 ``{"header": {...}}`` (``header``), then ``{"event": <the event exactly as sent>}`` per
  event Orb accepted (the events ``validation_failed`` named are not event lines).

Every PUT carries ``If-None-Match: *``: an object is never overwritten; S3's 412 means an object
of that key is already there (the same request's earlier write whose answer was lost), which is
success. The S3 client's timeouts are short (it is called within a Lambda invocation's margin,
after Orb's 200): a failed write is retried later from a deferred copy, never by waiting here.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeGuard

from orb_bridge.aws import clients

FORMAT_VERSION = 1
SOURCE_INGEST = "ingest"
SOURCE_BACKFILL = "backfill"
# Compression level: 500 events compress to about a tenth at level 5, about as small as at 9, in
# a fraction of the time (ingest writes the archive while other requests wait on Orb).
GZIP_LEVEL = 5
# Within a Lambda's safety margin after Orb's answer: 1 s to connect, 2 s to answer, 2 attempts.
S3_CONNECT_TIMEOUT_SECONDS = 1.0
S3_READ_TIMEOUT_SECONDS = 2.0
S3_MAX_ATTEMPTS = 2
# botocore keeps 10 connections by default; ingest writes one object per concurrent Orb request
# (20 by default), and every connection past the pool would be a new TLS handshake to S3.
S3_MIN_POOL_CONNECTIONS = 32


class ArchiveFormatError(ValueError):
    """An archive object that is not in the archive's format."""


class ArchiveWriteError(Exception):
    """The object could not be written (denied, unreachable, throttled): nothing was archived."""


def sent_at_text(epoch_seconds: float) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: ``2025-01-31T23:59:59.123Z``."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def archive_key(source: str, sent_at: float, name: str, request_number: int) -> str:
    hour = datetime.fromtimestamp(sent_at, UTC).strftime("%Y-%m-%dT%H")
    return f"{source}/sent_hour={hour}/{name}-{request_number:05d}.jsonl.gz"


def header(
    *,
    sent_at: float,
    orb_response: Any,
    function_request_id: str,
    request_number: int,
    source: str,
    events: int,
    possible_repeat: bool,
    backfill_id: str | None = None,
    archived_late: bool = False,
) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "sent_at": sent_at_text(sent_at),
        "orb_status": 200,
        "orb_response": orb_response,
        "backfill_id": backfill_id,
        "function_request_id": function_request_id,
        "request_number": request_number,
        "source": source,
        "events": events,
        "possible_repeat": possible_repeat,
        "archived_late": archived_late,
    }


def _one_line(event_text: str) -> str:
    # JSON Lines: an event written with a raw line break (whitespace JSON allows) is re-encoded;
    # the same event, on one line.
    if "\n" in event_text or "\r" in event_text:
        return json.dumps(json.loads(event_text), separators=(",", ":"))
    return event_text


def archive_body(head: Mapping[str, Any], event_texts: Sequence[str]) -> bytes:
    """The object: the header line, then one line per event (each event's JSON text as sent)."""
    lines = [json.dumps({"header": head}, separators=(",", ":"))]
    lines.extend('{"event":' + _one_line(text) + "}" for text in event_texts)
    return gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=GZIP_LEVEL, mtime=0)


# An object holds one Orb request: at most 500 events of Segment's 32 KB, plus its header.
MAX_OBJECT_BYTES = 64 * 1024 * 1024


def gunzip_bounded(body: bytes, name: str, limit: int) -> bytes:
    """``body`` inflated (every gzip member), refused as soon as it passes ``limit`` bytes."""
    inflated: list[bytes] = []
    size = 0
    while body:
        member = zlib.decompressobj(wbits=31)
        chunk = member.decompress(body, limit - size + 1)
        size += len(chunk)
        if size > limit:
            raise ArchiveFormatError(f"{name}: inflates to more than {limit} bytes (larger than any request)")
        if not member.eof:
            raise ArchiveFormatError(f"{name}: not gzip JSON Lines (cut short)")
        inflated.append(chunk)
        body = member.unused_data
    return b"".join(inflated)


def is_archived_event(value: Any) -> TypeGuard[dict[str, Any]]:
    """An event line's event with the fields reconciliation reads, of the types it reads them as."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("idempotency_key"), str)
        and isinstance(value.get("timestamp"), str)
        and isinstance(value.get("properties"), dict)
    )


def read_archive(body: bytes, limit: int = MAX_OBJECT_BYTES) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An object's header and events (tests and the bench read it so; reconciliation streams it),
    refused (``ArchiveFormatError``) when it inflates past ``limit`` bytes."""
    lines = gunzip_bounded(body, "archive object", limit).decode("utf-8").splitlines()
    head = json.loads(lines[0])["header"]
    return head, [json.loads(line)["event"] for line in lines[1:] if line]


def s3_client(concurrent_writes: int = 0) -> Any:
    """The container's S3 client for the archive (the shared Session, short timeouts), keeping a
    connection for each of ``concurrent_writes`` writers."""
    pool = max(S3_MIN_POOL_CONNECTIONS, concurrent_writes)

    def config() -> Any:
        from botocore.config import Config

        return Config(
            connect_timeout=S3_CONNECT_TIMEOUT_SECONDS,
            read_timeout=S3_READ_TIMEOUT_SECONDS,
            retries={"total_max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
            max_pool_connections=pool,
        )

    return clients.configured_client(f"s3:archive:{pool}", "s3", config)


def reset_s3_client() -> None:
    """Forget the client (tests switch between moto backends and endpoints): with all the others."""
    clients.reset_clients()


class ArchiveWriter:
    """Writes archive objects to one bucket; ``client`` is for tests (default: ``s3_client()``),
    ``concurrent_writes`` how many threads may write at once (its connection pool)."""

    def __init__(self, bucket: str, client: Any = None, concurrent_writes: int = 0) -> None:
        self.bucket = bucket
        self._client = client
        self.concurrent_writes = concurrent_writes

    def __repr__(self) -> str:
        return f"ArchiveWriter({self.bucket!r})"

    def put(self, key: str, body: bytes) -> bool:
        """Write ``body`` at ``key`` unless an object is there: True when written, False when it
        already existed (412). Raises ``ArchiveWriteError`` for anything else."""
        client = self._client if self._client is not None else s3_client(self.concurrent_writes)
        try:
            client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                IfNoneMatch="*",
                # Not Content-Encoding: tools would then hand the JSON Lines back decompressed.
                ContentType="application/gzip",
            )
        except Exception as exc:
            if _status(exc) == 412:
                return False
            raise ArchiveWriteError(f"{type(exc).__name__}: {exc}") from exc
        return True


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    return None
