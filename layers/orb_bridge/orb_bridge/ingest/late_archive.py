"""Deferred copies carrying Orb's acceptance: archived by a later invocation, never sent to Orb again.

A copy's body is the event exactly as Orb received it and its ``orb_bridge.accepted`` attribute
Orb's 200 (``orb_bridge.ingest.archive.Acceptance``). The copies of one Orb request that arrive
together are archived in one object (a late object: ``archived_late``, named after the invocation
that writes it, so copies of one request split across invocations never collide); those not
archived go back as copies again, each a fresh message, so waiting on the bucket never counts
towards ``maxReceiveCount``. After one failed write the invocation tries no more (the bucket is
likely down): the rest go back without a write, so an outage costs each invocation one timeout.

A copy whose attribute or body is not what ingest writes (outside input) is ingested as a plain
message: re-sending is safe (Orb ingests an idempotency key at most once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from orb_bridge.core.observability import logger
from orb_bridge.ingest.archive import ATTRIBUTE_ACCEPTED, Acceptance, ArchiveRun
from orb_bridge.orb.usage_event import orb_fields

# A copy waiting on the archive comes back after this, doubled with each deferral, at most 900 s.
ARCHIVE_RETRY_SECONDS = 30
MAX_ARCHIVE_RETRY_SECONDS = 900


class CopyRecord(Protocol):
    @property
    def message_id(self) -> str: ...

    @property
    def body(self) -> str: ...

    @property
    def message_attributes(self) -> dict[str, Any]: ...


def acceptance_of(record: CopyRecord) -> Acceptance | None:
    """Orb's acceptance when ``record`` is a copy waiting on the archive, else None."""
    attributes = record.message_attributes
    value = attributes.get(ATTRIBUTE_ACCEPTED) if attributes else None
    if value is None:
        return None
    text = value.get("stringValue") if isinstance(value, dict) else None
    acceptance = Acceptance.from_attribute(text) if isinstance(text, str) else None
    if acceptance is None or orb_fields(record.body) is None:
        logger.warning(
            "a message carries an unreadable acceptance: its event is sent to Orb again",
            extra={"message_id": record.message_id},
        )
        return None
    return acceptance


def accepted_copies(records: Sequence[CopyRecord]) -> dict[str, Acceptance]:
    """message id -> Orb's acceptance, for the copies waiting on the archive among ``records``."""
    found: dict[str, Acceptance] = {}
    for record in records:
        if record.message_attributes:  # a message as intake sent it has none: the usual case
            acceptance = acceptance_of(record)
            if acceptance is not None:
                found[record.message_id] = acceptance
    return found


def archive_late(records: Sequence[CopyRecord], copies: dict[str, Acceptance], run: ArchiveRun) -> list[str]:
    """Archive the copies among ``records``, one object per Orb request; the ids not archived."""
    chosen = [record for record in records if record.message_id in copies]
    if not chosen:
        return []
    if not run.on:  # archiving turned off since: acknowledged, as every other event then is
        logger.warning("archiving is off: accepted copies acknowledged unarchived", extra={"messages": len(chosen)})
        return []
    groups: dict[tuple[str, int, float], list[CopyRecord]] = {}
    for record in chosen:
        groups.setdefault(copies[record.message_id].request, []).append(record)
    not_archived: list[str] = []
    for group in groups.values():
        ids = [record.message_id for record in group]
        if run.write_failures:  # this invocation already failed a write: do not wait on the bucket again
            not_archived += ids
            continue
        acceptance = copies[ids[0]]
        repeat = any(copies[message_id].possible_repeat for message_id in ids)
        texts = list(dict.fromkeys(record.body for record in group))  # a duplicated copy: one line
        if not run.write(replace(acceptance, possible_repeat=repeat), texts, run.next_number(), archived_late=True):
            not_archived += ids
    if len(not_archived) < len(chosen):
        logger.info("accepted copies archived", extra={"messages": len(chosen) - len(not_archived)})
    return not_archived


def retry_delay(deferrals: int) -> float:
    """How long a copy waits for the archive, after ``deferrals`` earlier deferrals."""
    return float(min(MAX_ARCHIVE_RETRY_SECONDS, ARCHIVE_RETRY_SECONDS * 2 ** min(deferrals, 10)))
