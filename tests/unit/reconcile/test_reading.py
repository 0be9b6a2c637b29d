"""A pass's reading of an hour chooses the same keys and counts as parsing every line would, parses
what it may look up, and reports an object with a bad line it needs as unreadable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from orb_bridge.core.observability import logger
from orb_bridge.reconcile import reading
from orb_bridge.reconcile.archive_reader import ArchiveObject, ArchiveReader, HourArchive
from orb_bridge.reconcile.reading import read_hour
from orb_bridge.reconcile.selection import KeySelector

HOUR = datetime(2026, 3, 2, 10, tzinfo=UTC)


def line(number: int, escaped: bool = False) -> str:
    event = {
        "idempotency_key": f"k-{number:05d}",
        "event_name": "api" if not escaped else 'a"pi',
        "timestamp": f"2026-03-02T{10 + number % 3:02d}:00:00.000Z",
        "properties": {"n": number},
    }
    return json.dumps({"event": event}, separators=(",", ":"))


class Objects:
    """An hour's objects, as ArchiveReader hands them on."""

    def __init__(self, lines: list[list[str]]) -> None:
        self.got = [ArchiveObject(f"o-{n}", {}, "ingest", None, chunk) for n, chunk in enumerate(lines)]

    def names(self, hour: datetime, read: HourArchive) -> list[str]:
        return [got.name for got in self.got]

    def objects(self, names: list[str], read: HourArchive) -> Any:
        for got in self.got:
            read.objects += 1
            yield got


def selector() -> KeySelector:
    return KeySelector(100, 20, 7, lambda text: json.loads(text)["event"]["timestamp"][:13])


def read(lines: list[list[str]]) -> tuple[Any, HourArchive]:
    chosen, archive = selector(), HourArchive([], [], 0, 0)
    reading = read_hour(
        cast(ArchiveReader, Objects(lines)), HOUR, archive, chosen, lambda _: "look up", lambda: 900.0, 0
    )
    assert not reading.pending
    return chosen.selection(), archive


def test_the_same_sample_and_counts_as_parsing_every_line_in_any_object_order() -> None:
    lines = [line(n, escaped=n % 5 == 0) for n in range(1000)]  # every fifth line is parsed (an escape)
    parsed = selector()
    for text in lines:
        event = json.loads(text)["event"]
        parsed.add(event["idempotency_key"], text, event["timestamp"][:13])
    expected = parsed.selection()
    for order in (lines, lines[::-1]):
        got, archive = read([order[start : start + 100] for start in range(0, 1000, 100)])
        assert (got.keys, got.lines, got.total_keys) == (expected.keys, expected.lines, expected.total_keys)
        assert got.archived_by_event_hour == expected.archived_by_event_hour
        assert got.unchecked_by_event_hour == expected.unchecked_by_event_hour and archive.unreadable == []


def test_an_object_with_a_bad_line_that_may_be_looked_up_is_unreadable_and_none_of_it_counted() -> None:
    bad = '{"event":{"idempotency_key":"k-bad","timestamp":"2026-03-02T10:00:00Z"}}'  # no properties
    got, archive = read([[line(n) for n in range(10)], [bad, line(10)]])  # few keys: every line may be kept
    assert len(archive.unreadable) == 1 and "o-1: line 2 is not an event line" in archive.unreadable[0]
    assert got.total_keys == 10 and "k-bad" not in got.keys and "k-00010" not in got.keys


def test_out_of_time_says_when_a_whole_run_cannot_read_the_hour(monkeypatch: Any) -> None:
    said: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(logger, "warning", lambda message, extra: said.append((message, extra)))
    clock = iter(
        [100.0, 100.0, 60.0, 20.0, 0.0]
    )  # at the start, then before each object: a third of the hour read in 100 s
    objects = Objects([[line(n)] for n in range(10)])
    with pytest.raises(reading.ReadingOutOfTimeError):
        read_hour(
            cast(ArchiveReader, objects),
            HOUR,
            HourArchive([], [], 0, 0),
            selector(),
            lambda _: "look up",
            lambda: next(clock),
            10,
        )
    message, extra = said[0]
    assert "a whole run cannot read this hour" in message and "MemorySize" in message
    assert extra["objects_read"] == 3 and extra["objects"] == 10  # 3 objects in 100 s of a 90 s run
    assert (extra["seconds_needed"], extra["run_seconds"]) == (333.3, 90.0)
