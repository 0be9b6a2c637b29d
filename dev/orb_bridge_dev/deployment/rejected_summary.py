"""What the operator commands print about the rejected queue: its summary and a progress line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from orb_bridge_dev.deployment.rejected_records import Entry
from orb_bridge_dev.terminal import printable

AGE_BUCKETS = ((1, "< 1 h"), (12, "1-12 h"), (24, "12-24 h"), (24 * 7, "1-7 days"), (float("inf"), "> 7 days"))


def age_bucket(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return next(label for limit, label in AGE_BUCKETS if hours < limit)


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summary(entries: Sequence[Entry], now: datetime, top: int = 10) -> str:
    """Counts by stage, reason, event name, customer, event age and planned action."""
    columns: list[tuple[str, Callable[[Entry], str]]] = [
        ("stage", lambda e: e.stage),
        ("reason", lambda e: _short(e.reason)),
        ("event name", lambda e: e.event_name),
        ("customer", lambda e: e.customer),
        ("event age", lambda e: age_bucket(now - (e.event_time or e.rejected_at))),
        ("would", lambda e: f"{e.action}: {_short(e.why, 60)}" if e.action == "keep" else e.action),
    ]
    lines = [f"{len(entries)} rejected record(s)"]
    for title, key in columns:
        counts = Counter(printable(key(entry)) for entry in entries)  # text from outside: escaped
        if not counts:
            continue
        width = max(len(title), *(len(value) for value in counts))
        lines.append("")
        lines.append(f"  {title:<{width}}  count")
        rows = counts.most_common(top)
        if title == "event age":  # youngest first, not by count
            order = [label for _, label in AGE_BUCKETS]
            rows.sort(key=lambda row: order.index(row[0]))
        for value, count in rows:
            lines.append(f"  {value:<{width}}  {count:>5}")
        if len(counts) > top:
            lines.append(f"  ({len(counts) - top} more)")
    return "\n".join(lines)


class Progress:
    """A one-line progress bar on stderr for long runs (no dependency)."""

    def __init__(self, total: int, stream: Any, label: str, minimum: int = 100) -> None:
        self.total, self.stream, self.label, self.done = total, stream, label, 0
        self.enabled = total >= minimum

    def advance(self, count: int) -> None:
        self.done += count
        if self.enabled:
            filled = int(30 * self.done / max(1, self.total))
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
