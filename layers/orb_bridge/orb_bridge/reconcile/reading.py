"""A first or final pass's reading of its send-hour: every archive object, a few fetched at once
(archive_reader.py), each line offered to the key selector (selection.py). A line the selector may
keep is parsed and checked in full; any other gives only its key and event hour, read from its text
when that is unambiguous (line_scan.py), else parsed. An object with a line that does not read is
reported unreadable and none of its events counted.

Reading an hour costs time in proportion to its objects: a pass that runs out of time stops (the next
run starts the hour's reading over), and says in its log when a whole run could not read the hour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from orb_bridge.aws.archive import ArchiveFormatError
from orb_bridge.core.observability import logger
from orb_bridge.reconcile.archive_reader import (
    ArchiveObject,
    ArchiveReader,
    HourArchive,
    event_of_line,
    hour_text,
)
from orb_bridge.reconcile.classify import parse_timestamp
from orb_bridge.reconcile.line_scan import scan_line
from orb_bridge.reconcile.selection import KeySelector


class ReadingOutOfTimeError(Exception):
    """The run's time ran out while reading an hour's archive."""


@dataclass
class HourReading:
    reverted: int = 0  # events of reverted backfills: expected absent, not looked up
    pending: bool = False  # a backfill in the hour is not settled: no pass yet


def event_hour_of(timestamp: object) -> str:
    moment = parse_timestamp(str(timestamp))
    return hour_text(moment) if moment else "unreadable"


def _offer(got: ArchiveObject, selector: KeySelector) -> None:
    """Every line of one object to ``selector``, or none if a line does not read."""
    rows: list[tuple[int, str, str, str]] = []  # rank, key, line, event hour
    for number, line in enumerate(got.lines, start=2):
        scanned = scan_line(line)
        parsed = scanned is None
        if scanned is None:  # the scan declined: parse (and check) the line
            event = event_of_line(line, got.name, number)
            scanned = (event["idempotency_key"], event_hour_of(event["timestamp"]))
        key, event_hour = scanned
        rank = selector.rank(key)
        if not parsed and selector.could_keep(rank, key):  # parsed and checked: it may be looked up
            event_of_line(line, got.name, number)
        rows.append((rank, key, line, event_hour))
    for rank, key, line, event_hour in rows:
        selector.add(key, line, event_hour, rank)


def read_hour(
    reader: ArchiveReader,
    hour: datetime,
    read: HourArchive,
    selector: KeySelector,
    wanted: Callable[[str | None], str],
    seconds_left: Callable[[], float],
    safety_margin_seconds: float,
) -> HourReading:
    """Offer the hour's archived events to ``selector`` (``read`` counts the objects and requests,
    lists the unreadable objects); ``wanted(backfill_id)`` says ``look up``,
    ``reverted`` or ``pending``. Raises ReadingOutOfTimeError when the run's time runs out."""
    reading = HourReading()
    names = reader.names(hour, read)
    at_start = seconds_left()
    for got in reader.objects(names, read):
        left = seconds_left()
        if left < safety_margin_seconds:
            _say_out_of_time(hour, read.objects - 1, len(names), at_start - left, at_start - safety_margin_seconds)
            raise ReadingOutOfTimeError
        status = wanted(got.backfill_id)
        if status == "pending":
            reading.pending = True
            return reading
        if status == "reverted":
            reading.reverted += len(got.lines)
            continue
        try:
            _offer(got, selector)
        except ArchiveFormatError as exc:
            read.unreadable.append(str(exc))
    return reading


def _say_out_of_time(hour: datetime, done: int, objects: int, seconds: float, run_seconds: float) -> None:
    """A pass whose reading cannot fit in one run starts over in every run and never finishes: say so."""
    needed = seconds / done * objects if done else None
    whole = needed is not None and needed > run_seconds
    logger.warning(
        "out of time reading an hour's archive: the next run starts it over"
        + (
            ": a whole run cannot read this hour; raise the function's MemorySize (CPU) or lower the volume"
            if whole
            else ""
        ),
        extra={
            "hour": hour_text(hour),
            "objects_read": done,
            "objects": objects,
            "seconds": round(seconds, 1),
            "seconds_needed": round(needed, 1) if needed is not None else None,
            "run_seconds": round(run_seconds, 1),
        },
    )
