"""`orb-bridge backfill`'s side of the audit archive: what Orb accepted into its backfills.

One object per ``/ingest?backfill_id=`` request Orb answered 200, under ``backfill/`` (the format
of ``orb_bridge.aws.archive``: header with ``backfill_id`` and ``source`` ``backfill``), named
``<backfill_id>-<n>``: ``n`` is 1 + the events this backfill held before the request (saved in
the state file), so a rerun that continues a backfill never reuses a name. A backfill that is
later reverted (its outcome was uncertain) may leave an object whose events Orb never bills:
the header's ``backfill_id`` says which backfill to check. ``orb-bridge replay`` archives
nothing itself: it sends to the ingest queue, and ingest archives.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orb_bridge.aws.archive import SOURCE_BACKFILL, ArchiveWriteError, ArchiveWriter, archive_body, archive_key, header
from orb_bridge_dev.terminal import printable


class BackfillArchive:
    def __init__(self, bucket: str, s3: Any, clock: Callable[[], float] = time.time) -> None:
        self.writer = ArchiveWriter(bucket, s3)
        self.run_id = f"backfill-{uuid.uuid4().hex}"
        self.clock = clock
        self.failures: list[str] = []

    def record(
        self, events: Sequence[Mapping[str, Any]], backfill_id: str, number: int, sent_at: float, answer: Any
    ) -> bool:
        """Archive the events Orb accepted (those not in the answer's ``validation_failed``)."""
        refused = _refused_keys(answer)
        accepted = [event for event in events if event.get("idempotency_key") not in refused]
        if not accepted:
            return True
        head = header(
            sent_at=sent_at,
            orb_response=answer,
            function_request_id=self.run_id,
            request_number=number,
            source=SOURCE_BACKFILL,
            events=len(accepted),
            possible_repeat=False,
            backfill_id=backfill_id,
        )
        texts = [json.dumps(event, separators=(",", ":")) for event in accepted]
        try:
            self.writer.put(archive_key(SOURCE_BACKFILL, sent_at, backfill_id, number), archive_body(head, texts))
        except ArchiveWriteError as exc:
            self.failures.append(f"backfill {backfill_id} request {number}: {printable(str(exc))[:200]}")
            return False
        return True


def _refused_keys(answer: Any) -> set[str]:
    failed = answer.get("validation_failed") if isinstance(answer, dict) else None
    if not isinstance(failed, list):
        return set()
    return {str(item.get("idempotency_key")) for item in failed if isinstance(item, dict)}
