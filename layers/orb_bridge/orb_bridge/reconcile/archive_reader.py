"""Reads the audit archive (format shared with ingest's writer, issue 17): one gzip JSON Lines
object per Orb ``/ingest`` request Orb answered 200, a header line then one line per event.

Keys: ``ingest/sent_hour=YYYY-MM-DDTHH/...`` (live) and ``backfill/sent_hour=.../...`` (backfills).
An object that does not read as that format is reported, never guessed at; nor is one larger than
``MAX_ARCHIVE_OBJECT_BYTES``, stored or inflated (a gzip bomb is never decompressed whole).
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from orb_bridge.aws.archive import MAX_OBJECT_BYTES, ArchiveFormatError, gunzip_bounded, is_archived_event

SOURCES = ("ingest", "backfill")
HOUR_FORMAT = "%Y-%m-%dT%H"
# One object is one Orb /ingest request: at most 500 events of at most 32 KiB each (16 MiB); an
# object larger than this, stored or inflated, is not one ingest wrote.
MAX_ARCHIVE_OBJECT_BYTES = MAX_OBJECT_BYTES
# Objects fetched at once by a pass: their GETs' latency overlaps. Below botocore's default pool of 10
# connections per client (the shared S3 client), so no request waits for a connection.
READ_AHEAD = 8


@dataclass(frozen=True)
class ArchivedEvent:
    event: dict[str, Any]  # exactly as sent to Orb's /ingest
    source: str  # "ingest" | "backfill"
    backfill_id: str | None
    line: str = field(default="", repr=False, compare=False)  # its archive line, ``{"event": ...}``

    @property
    def key(self) -> str:
        return str(self.event["idempotency_key"])


def hour_text(hour: datetime) -> str:
    """``HOUR_FORMAT`` (formatted by hand: strftime's cost counted, twice per event in a pass)."""
    moment = hour.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}"


def parse_hour(text: str) -> datetime:
    return datetime.strptime(text, HOUR_FORMAT).replace(tzinfo=UTC)


def hour_prefix(source: str, hour: datetime) -> str:
    return f"{source}/sent_hour={hour_text(hour)}/"


def fetch_object(
    s3: Any, bucket: str, name: str, limit: int = MAX_ARCHIVE_OBJECT_BYTES
) -> tuple[dict[str, Any], list[ArchivedEvent]]:
    """``read_object`` of a stored object, reading at most ``limit`` bytes of it."""
    return read_object(get_body(s3, bucket, name, limit), name, limit)


def get_body(s3: Any, bucket: str, name: str, limit: int = MAX_ARCHIVE_OBJECT_BYTES) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=name)["Body"].read(limit + 1)
    if len(body) > limit:
        raise ArchiveFormatError(f"{name}: larger than {limit} bytes (larger than any request)")
    return body


@dataclass(frozen=True)
class ArchiveObject:
    """One object's header checked and its event lines, not yet parsed (a pass parses only the
    lines it keeps: line_scan.py)."""

    name: str
    header: dict[str, Any]
    source: str
    backfill_id: str | None
    lines: list[str]  # ``{"event": ...}``, one per event


def split_object(body: bytes, name: str, limit: int = MAX_ARCHIVE_OBJECT_BYTES) -> ArchiveObject:
    """The object's header (checked) and its event lines (counted, not parsed)."""
    try:
        lines = [line for line in gunzip_bounded(body, name, limit).decode("utf-8").splitlines() if line.strip()]
        first = json.loads(lines[0]) if lines else None
    except (zlib.error, UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, ArchiveFormatError):
            raise
        raise ArchiveFormatError(f"{name}: not gzip JSON Lines ({type(exc).__name__})") from None
    if not isinstance(first, dict) or not isinstance(first.get("header"), dict):
        raise ArchiveFormatError(f"{name}: the first line is not a header")
    header = first["header"]
    if header.get("format") != 1:
        raise ArchiveFormatError(f"{name}: format {header.get('format')!r} is not 1")
    source = header.get("source")
    if source not in SOURCES:
        raise ArchiveFormatError(f"{name}: source {source!r} is not one of {SOURCES}")
    backfill_id = header.get("backfill_id")
    if source == "backfill" and not isinstance(backfill_id, str):
        raise ArchiveFormatError(f"{name}: a backfill object without a backfill_id")
    if header.get("events") != len(lines) - 1:
        raise ArchiveFormatError(f"{name}: the header counts {header.get('events')!r} events, {len(lines) - 1} follow")
    return ArchiveObject(name, header, source, backfill_id if source == "backfill" else None, lines[1:])


def event_of_line(line: str, name: str, number: int) -> dict[str, Any]:
    """The event of one archive line (``number``: its line in the object), checked."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ArchiveFormatError(f"{name}: not gzip JSON Lines ({type(exc).__name__})") from None
    event = record.get("event") if isinstance(record, dict) else None
    if not is_archived_event(event):
        raise ArchiveFormatError(f"{name}: line {number} is not an event line")
    return event


def read_object(
    body: bytes, name: str, limit: int = MAX_ARCHIVE_OBJECT_BYTES
) -> tuple[dict[str, Any], list[ArchivedEvent]]:
    """The header and events of one archive object, every line parsed and checked."""
    read = split_object(body, name, limit)
    events = [
        ArchivedEvent(event_of_line(line, name, number), read.source, read.backfill_id, line)
        for number, line in enumerate(read.lines, start=2)
    ]
    return read.header, events


@dataclass
class HourArchive:
    events: list[ArchivedEvent]  # empty while streamed
    unreadable: list[str]  # object keys, with why
    objects: int
    s3_requests: int


class ArchiveReader:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._lock = threading.Lock()

    def _keys(self, prefix: str) -> tuple[list[str], int]:
        keys: list[str] = []
        requests = 0
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            requests += 1
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys, requests

    def names(self, hour: datetime, read: HourArchive, sources: tuple[str, ...] = SOURCES) -> list[str]:
        """The send-hour's object keys, source by source, each in key order."""
        names: list[str] = []
        for source in sources:
            keys, listed = self._keys(hour_prefix(source, hour))
            read.s3_requests += listed
            names.extend(sorted(keys))
        return names

    def _get(self, name: str, read: HourArchive) -> ArchiveObject | ArchiveFormatError:
        with self._lock:  # every GET issued is a request billed, read through or not
            read.s3_requests += 1
        try:
            return split_object(get_body(self._s3, self._bucket, name), name)
        except ArchiveFormatError as exc:
            return exc

    def objects(self, names: list[str], read: HourArchive) -> Generator[ArchiveObject, None, None]:
        """The objects ``names``, in that order, ``READ_AHEAD`` fetched (GET and gunzip) at once
        while the caller works through the one before; ``read`` counts them and lists the
        unreadable ones. At most ``READ_AHEAD`` + 1 objects are held."""
        pool = ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="archive-read")
        pending: deque[Future[ArchiveObject | ArchiveFormatError]] = deque()
        queue = iter(names)
        try:
            for name in islice(queue, READ_AHEAD):
                pending.append(pool.submit(self._get, name, read))
            while pending:
                got = pending.popleft().result()
                for name in islice(queue, 1):
                    pending.append(pool.submit(self._get, name, read))
                read.objects += 1
                if isinstance(got, ArchiveFormatError):
                    read.unreadable.append(str(got))
                    continue
                yield got
        finally:  # a pass stopped early (out of time, a pending backfill) leaves nothing running
            pool.shutdown(wait=True, cancel_futures=True)

    def stream(self, hour: datetime, read: HourArchive, sources: tuple[str, ...] = SOURCES) -> Iterator[ArchivedEvent]:
        """Every event archived in this send-hour, object by object (a key may come twice: a request
        re-sent after a lost answer is archived twice with the same events, Orb deduplicated it);
        ``read`` counts the objects and requests and lists the unreadable objects."""
        for got in self.objects(self.names(hour, read, sources), read):
            try:
                events = [event_of_line(line, got.name, number) for number, line in enumerate(got.lines, start=2)]
            except ArchiveFormatError as exc:
                read.unreadable.append(str(exc))
                continue
            for event, line in zip(events, got.lines, strict=True):
                yield ArchivedEvent(event, got.source, got.backfill_id, line)

    def hour(self, hour: datetime, sources: tuple[str, ...] = SOURCES) -> HourArchive:
        """Every event archived in this send-hour, each key once, all held at once (for a repair
        of one hour; a pass streams instead)."""
        read = HourArchive([], [], 0, 0)
        found: dict[str, ArchivedEvent] = {}
        for archived in self.stream(hour, read, sources):
            found.setdefault(archived.key, archived)
        read.events = list(found.values())
        return read

    def archived_hours(self, since: datetime) -> list[datetime]:
        """The send-hours holding archive objects, from ``since`` on (one listing per source)."""
        hours: set[datetime] = set()
        for source in SOURCES:
            paginator = self._s3.get_paginator("list_objects_v2")
            start_after = hour_prefix(source, since)[:-1]
            for page in paginator.paginate(
                Bucket=self._bucket, Prefix=f"{source}/sent_hour=", Delimiter="/", StartAfter=start_after
            ):
                for common in page.get("CommonPrefixes", []):
                    text = common["Prefix"].removeprefix(f"{source}/sent_hour=").rstrip("/")
                    try:
                        moment = parse_hour(text)
                    except ValueError:
                        continue  # not an hour partition: not ours
                    if moment >= since:
                        hours.add(moment)
        return sorted(hours)
