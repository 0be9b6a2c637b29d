"""The state file of `orb-bridge backfill`: every step is written down BEFORE it is asked of Orb.

- a backfill before it is created (``creating``, with the create's ``Idempotency-Key`` and body,
  so a rerun replays the same create and gets the same backfill back);
- each ingest request's keys before the request is sent (``in_flight_keys``), moved to
  ``ingested_keys`` only after Orb's 200 (or dropped after a refusal);
- the close before it is sent (``closing``), and ``closed`` once Orb answers.

So a rerun can tell, for each backfill, whether Orb may hold events the file does not list as
ingested: such a backfill is *uncertain*. Orb documents no deduplication of keys within a
backfill and hides a pending backfill's events from search, so an uncertain backfill is reverted
and redone, never resumed (see docs/facts.md). A closed backfill's keys count as billed, whatever
search says, until Orb reports it reflected and their records are deleted; then it is forgotten.
The file is read as untrusted input: anything that does not parse is refused with its reason.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

Status = Literal["creating", "open", "closing", "closed", "reverted"]
VERSION = 2


class StateFileError(ValueError):
    pass


class SavedBackfill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    scope: tuple[str, str] | None
    timeframe_start: AwareDatetime
    timeframe_end: AwareDatetime
    status: Status
    create_key: str = ""  # the create's Idempotency-Key ("" for a version 1 file)
    create_body: dict[str, Any] = Field(default_factory=dict)
    backfill_id: str | None = None
    ingested_keys: list[str] = Field(default_factory=list)
    in_flight_keys: list[str] = Field(default_factory=list)
    # Set for a version 1 file's open backfill: it saved keys only after Orb's 200.
    outcome_unknown: bool = False
    reflected: bool = False
    records_deleted: bool = False

    @property
    def uncertain(self) -> bool:
        """Orb may hold events of this backfill that ``ingested_keys`` does not list."""
        return bool(self.in_flight_keys) or self.outcome_unknown

    def covers(self, scope: tuple[str, str] | None, start: Any, end: Any) -> bool:
        return self.scope == scope and self.timeframe_start <= start and end <= self.timeframe_end


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[2]
    backfills: list[SavedBackfill]


def _from_version_1(data: Any) -> dict[str, Any]:
    """Version 1 kept ``{id: {target, scope, timeframe_*, ingested_keys, closed}}``."""
    items = data.get("backfills") if isinstance(data, dict) else None
    if not isinstance(items, dict):
        raise StateFileError("version 1 state file without a backfills object")
    converted = []
    for backfill_id, item in items.items():
        if not isinstance(item, dict):
            raise StateFileError(f"version 1 backfill {backfill_id!r} is not an object")
        closed = item.get("closed") is True
        converted.append(
            {
                "backfill_id": backfill_id,
                "target": item.get("target"),
                "scope": item.get("scope"),
                "timeframe_start": item.get("timeframe_start"),
                "timeframe_end": item.get("timeframe_end"),
                "ingested_keys": item.get("ingested_keys", []),
                "status": "closed" if closed else "open",
                "outcome_unknown": not closed,
            }
        )
    return {"version": VERSION, "backfills": converted}


class StateFile:
    """The backfills this machine asked Orb for, for one target (written atomically)."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target
        self.entries: list[SavedBackfill] = []
        if path.exists():
            self.entries = self._read(path)

    @staticmethod
    def _read(path: Path) -> list[SavedBackfill]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise StateFileError(f"state file {path} cannot be read: {type(exc).__name__}") from None
        if isinstance(data, dict) and data.get("version") == 1:
            data = _from_version_1(data)
        try:
            return _File.model_validate(data).backfills
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            raise StateFileError(f"state file {path} is not an orb-bridge backfill state file ({problems})") from None

    # -- views -----------------------------------------------------------------------------------
    def ours(self) -> list[SavedBackfill]:
        return [entry for entry in self.entries if entry.target == self.target]

    def billed_keys(self) -> set[str]:
        """Keys of our closed backfills: billed, never sent again."""
        return {key for entry in self.ours() if entry.status == "closed" for key in entry.ingested_keys}

    def open_for(self, scope: tuple[str, str] | None, start: Any, end: Any) -> SavedBackfill | None:
        return next((e for e in self.ours() if e.status == "open" and e.covers(scope, start, end)), None)

    def owns(self, backfill_id: str) -> SavedBackfill | None:
        return next((entry for entry in self.ours() if entry.backfill_id == backfill_id), None)

    # -- steps, each saved before the call it describes ------------------------------------------
    def begin_create(self, scope: tuple[str, str] | None, start: Any, end: Any, body: dict[str, Any]) -> SavedBackfill:
        entry = SavedBackfill(
            target=self.target,
            scope=scope,
            timeframe_start=start,
            timeframe_end=end,
            status="creating",
            create_key=f"orb-bridge-backfill-{uuid.uuid4().hex}",
            create_body=body,
        )
        self.entries.append(entry)
        self.save()
        return entry

    def created(self, entry: SavedBackfill, backfill_id: str) -> None:
        entry.backfill_id, entry.status = backfill_id, "open"
        self.save()

    def ingest_started(self, entry: SavedBackfill, keys: Sequence[str]) -> None:
        entry.in_flight_keys = list(keys)
        self.save()

    def ingest_answered(self, entry: SavedBackfill, taken: bool) -> None:
        """Orb answered the in-flight request: took its events (200) or refused them all (4xx)."""
        if taken:
            entry.ingested_keys.extend(entry.in_flight_keys)
        entry.in_flight_keys = []
        self.save()

    def set_status(self, entry: SavedBackfill, status: Status, reflected: bool = False) -> None:
        entry.status, entry.reflected = status, reflected
        self.save()

    def records_deleted(self, entries: Iterable[SavedBackfill]) -> None:
        changed = [entry for entry in entries if not entry.records_deleted]
        for entry in changed:
            entry.records_deleted = True
        if changed:
            self.save()

    def forget(self, entries: Iterable[SavedBackfill]) -> None:
        gone = {id(entry) for entry in entries}
        if gone:
            self.entries = [entry for entry in self.entries if id(entry) not in gone]
            self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"version": VERSION, "backfills": [entry.model_dump(mode="json") for entry in self.entries]}
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".orb-bridge-backfill-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(body, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
