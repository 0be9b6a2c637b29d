"""How `orb-bridge backfill` bills each planned group of late events exactly once, across kills.

Every step is saved in the state file before Orb is asked (``backfill_state``). On a (re)run the
saved backfills are settled first (``prepare``): a create whose answer was lost is replayed with
its ``Idempotency-Key``; a backfill with an ingest request whose outcome is unknown is reverted
(waiting through ``pending_revert``) and its events sent again in a fresh backfill; a close whose
answer was lost is confirmed by fetching the backfill (closed = ``reflected``, or ``pending`` with
its ``close_time`` in the past). Within a run, an ingest answered by a 5xx or not at all is
handled the same way: revert, then redo, never a blind retry into the same backfill.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import time

from orb_bridge_dev.commands.backfill.archive import BackfillArchive
from orb_bridge_dev.commands.backfill.orb_client import MAX_INGEST_EVENTS, Backfill, OrbApiError, OrbBackfillClient
from orb_bridge_dev.commands.backfill.plan import Group, same_event
from orb_bridge_dev.commands.backfill.state import SavedBackfill, StateFile
from orb_bridge_dev.deployment.rejected_summary import Progress

# Keys are searched a day either side of the window: an event Orb holds under the same key with a
# slightly different timestamp (an earlier mapping) is still found.
SEARCH_MARGIN = timedelta(days=1)
# Fresh backfills tried per group and run when answers keep getting lost.
MAX_ATTEMPTS = 3
# Orb reflects and reverts asynchronously: how often and how long to wait for it.
POLL_SECONDS = 5.0
WAIT_LIMIT = timedelta(minutes=15)
REFUSED = (400, 413, 422)  # a refusal of the request's content: isolate the refused events


@dataclass
class GroupResult:
    backfill_id: str | None = None
    ingested: list[str] = field(default_factory=list)
    billed_before: list[str] = field(default_factory=list)  # through our backfills closed earlier
    already_in_orb: list[str] = field(default_factory=list)
    different_in_orb: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # key -> Orb's reason
    reverted: list[str] = field(default_factory=list)  # uncertain backfills reverted and redone
    closed: bool = False
    deleted: int = 0


class Backfiller:
    def __init__(
        self,
        orb: OrbBackfillClient,
        state: StateFile,
        clock: Callable[[], datetime],
        close_after: timedelta,
        close: bool,
        sleep: Callable[[float], None],
        archive: BackfillArchive | None = None,
    ) -> None:
        self.orb, self.state, self.clock, self.close_after, self.close = orb, state, clock, close_after, close
        self.sleep = sleep
        self.archive = archive  # the stack's audit archive (None: the target has none)
        self.now = clock()
        self.pending: dict[str, Backfill] = {}  # Orb's pending backfills, kept current as we act

    # -- what Orb has --------------------------------------------------------------------------
    def look_up(self, group: Group, keys: Sequence[str] | None = None) -> dict[str, bool]:
        """key -> whether the event Orb has under it is ours (absent keys are not listed)."""
        wanted = sorted(group.events if keys is None else keys)
        if not wanted:
            return {}
        found = self.orb.search_events(wanted, group.start - SEARCH_MARGIN, min(group.end + SEARCH_MARGIN, self.now))
        return {key: same_event(group.events[key], event) for key, event in found.items() if key in group.events}

    def _fetch(self, backfill_id: str) -> Backfill:
        backfill = self.orb.fetch_backfill(backfill_id)
        self._seen(backfill)
        return backfill

    def _seen(self, backfill: Backfill) -> None:
        if backfill.pending:
            self.pending[backfill.id] = backfill
        else:
            self.pending.pop(backfill.id, None)

    def _wait_for(self, backfill_id: str, done: Callable[[Backfill], bool], what: str) -> Backfill:
        deadline = self.clock() + WAIT_LIMIT
        while not done(backfill := self._fetch(backfill_id)):
            if self.clock() >= deadline:
                raise OrbApiError(None, f"backfill {backfill_id} is still {backfill.status}, not {what}: rerun later")
            self.sleep(POLL_SECONDS)
        return backfill

    # -- settling the state file ---------------------------------------------------------------
    def prepare(self, groups: Sequence[Group], keys_on_queue: set[str]) -> None:
        """Bring every saved backfill of this target to a certain state before anything is sent;
        forget the closed ones Orb has reflected whose records are gone (``keys_on_queue``: the
        keys of every record this run received)."""
        self.pending = {backfill.id: backfill for backfill in self.orb.pending_backfills()}
        for entry in list(self.state.ours()):
            self._settle(entry)
        for entry in list(self.state.ours()):
            if entry.status == "open" and not any(entry.covers(g.scope, g.start, g.end) for g in groups):
                # No longer matches the plan (the records changed): bill what it certainly holds.
                if entry.ingested_keys and self.close:
                    self._close(entry)
                elif not entry.ingested_keys:
                    self._revert(entry)
        closed = [e for e in self.state.ours() if e.status == "closed"]
        self.state.records_deleted(e for e in closed if not keys_on_queue.intersection(e.ingested_keys))
        self.state.forget(e for e in closed if e.reflected and e.records_deleted)

    def _settle(self, entry: SavedBackfill) -> None:
        if entry.status == "creating":
            try:
                self._create(entry)  # the same Idempotency-Key and body: the same backfill
            except OrbApiError as exc:
                if exc.uncertain or exc.status_code in (401, 403):
                    raise
            return
        if entry.status == "reverted" or entry.backfill_id is None:
            self.state.forget([entry])
            return
        backfill = self._fetch(entry.backfill_id)
        if entry.status == "closed":
            if not entry.reflected and backfill.status == "reflected":
                self.state.set_status(entry, "closed", reflected=True)
            return
        if entry.uncertain or backfill.status in ("pending_revert", "reverted"):
            self._revert(entry, backfill)
        elif backfill.closed(self.clock()):  # closed by our lost close, or at its close_time
            self.state.set_status(entry, "closed", reflected=backfill.status == "reflected")
        elif entry.status == "closing":
            self.state.set_status(entry, "open")  # the close never reached Orb: close again

    def _revert(self, entry: SavedBackfill, backfill: Backfill | None = None) -> None:
        """Spec: a revert before close drops the backfill's events; after close it undoes them."""
        assert entry.backfill_id is not None
        if backfill is None or backfill.status not in ("pending_revert", "reverted"):
            try:
                self._seen(self.orb.revert_backfill(entry.backfill_id))
            except OrbApiError as exc:  # refused: maybe reverted already (an earlier lost answer)
                if self._fetch(entry.backfill_id).status not in ("pending_revert", "reverted"):
                    raise exc from None
        self._wait_for(entry.backfill_id, lambda b: b.status == "reverted", "reverted")
        self.state.set_status(entry, "reverted")
        self.state.forget([entry])

    def records_deleted(self, keys: set[str]) -> None:
        """The records of these keys are gone: a closed backfill of them that Orb has reflected
        (search shows it now) need not be remembered."""
        done = [e for e in self.state.ours() if e.status == "closed" and keys.intersection(e.ingested_keys)]
        if done:
            self.state.records_deleted(done)
            self.state.forget(e for e in done if e.reflected)

    # -- one group -----------------------------------------------------------------------------
    def run_group(self, group: Group, progress: Progress) -> GroupResult:
        result = GroupResult()
        billed = self.state.billed_keys()
        result.billed_before = sorted(key for key in group.events if key in billed)
        present = self.look_up(group, [key for key in group.events if key not in billed])
        result.already_in_orb = sorted(key for key, same in present.items() if same)
        result.different_in_orb = sorted(key for key, same in present.items() if not same)
        to_send = [key for key in group.events if key not in billed and key not in present]
        entry = self.state.open_for(group.scope, group.start, group.end)
        progress.advance(len(group.events) - len(to_send))
        if not to_send and entry is None:
            return result
        for _attempt in range(MAX_ATTEMPTS):
            entry = entry or self._open(group)
            result.backfill_id = entry.backfill_id
            done = set(entry.ingested_keys)
            result.ingested = [key for key in to_send if key in done]
            remaining = [key for key in to_send if key not in done and key not in result.refused]
            try:
                for start in range(0, len(remaining), MAX_INGEST_EVENTS):
                    self._ingest(group, entry, remaining[start : start + MAX_INGEST_EVENTS], result)
            except OrbApiError as exc:
                if not exc.uncertain:
                    raise  # auth, not found...: stop; the state file lets a rerun resume
                result.reverted.append(str(entry.backfill_id))
                self._revert(entry)  # Orb may hold some of them: start this group afresh
                entry = None
                continue
            break
        else:
            raise OrbApiError(None, f"answers lost {MAX_ATTEMPTS} times; each backfill was reverted: rerun")
        progress.advance(len(to_send))
        if self.close:
            self._close(entry)
            result.closed = True
        return result

    def _ingest(self, group: Group, entry: SavedBackfill, keys: list[str], result: GroupResult) -> None:
        assert entry.backfill_id is not None
        self.state.ingest_started(entry, keys)  # before the request: its outcome may be lost
        events, number, sent_at = [group.events[key].to_orb() for key in keys], len(entry.ingested_keys) + 1, time()
        try:
            answer = self.orb.ingest(events, entry.backfill_id)
        except OrbApiError as exc:
            if exc.uncertain:
                raise  # in_flight_keys stay: this backfill is uncertain now and after a kill
            self.state.ingest_answered(entry, taken=False)  # refused: Orb took none of them
            if exc.status_code not in REFUSED:
                raise
            if len(keys) == 1:
                result.refused[keys[0]] = str(exc)
                return
            middle = len(keys) // 2  # a whole-request refusal: isolate the refused events
            self._ingest(group, entry, keys[:middle], result)
            self._ingest(group, entry, keys[middle:], result)
            return
        if self.archive is not None:  # before the state says taken: a kill re-sends, never skips it
            self.archive.record(events, entry.backfill_id, number, sent_at, answer)
        self.state.ingest_answered(entry, taken=True)
        result.ingested.extend(keys)

    # -- create and close ----------------------------------------------------------------------
    def _open(self, group: Group) -> SavedBackfill:
        for clash in [b for b in self.pending.values() if b.overlaps(group.start, group.end)]:
            ours = self.state.owns(clash.id)
            if ours is None or ours.status == "open":
                raise OrbApiError(
                    None,
                    f"pending backfill {clash.id} ({clash.timeframe_start.isoformat()} .. "
                    f"{clash.timeframe_end.isoformat()}) overlaps {group.start.isoformat()} .. "
                    f"{group.end.isoformat()}: close or revert it in Orb first",
                )
            # One of ours, closed and being reflected: Orb refuses an overlap until it is done.
            self._wait_for(clash.id, lambda b: not b.pending, "reflected")
        external = group.scope[1] if group.scope and group.scope[0] == "external_customer_id" else None
        customer = group.scope[1] if group.scope and group.scope[0] == "customer_id" else None
        body = self.orb.new_backfill_body(
            timeframe_start=group.start,
            timeframe_end=group.end,
            close_time=self.clock() + self.close_after,
            external_customer_id=external,
            customer_id=customer,
        )
        entry = self.state.begin_create(group.scope, group.start, group.end, body)
        self._create(entry)
        return entry

    def _create(self, entry: SavedBackfill) -> None:
        try:
            backfill = self.orb.create_backfill(entry.create_body, entry.create_key)
        except OrbApiError as exc:
            # Refused or in conflict, e.g. an overlap with the one this very request created once
            # Orb no longer remembers its Idempotency-Key (48 hours): adopt that one (it holds no
            # events: we never had its id).
            adopted = None if exc.status_code is None else self._adoptable(entry)
            if adopted is None:
                if not exc.uncertain:
                    self.state.forget([entry])
                raise  # if uncertain, it stays "creating": a rerun replays it
            backfill = adopted
        self._seen(backfill)
        self.state.created(entry, backfill.id)

    def _adoptable(self, entry: SavedBackfill) -> Backfill | None:
        """The pending backfill this entry's create made: same timeframe, no replace, and the
        close_time we asked for (to the second: a fingerprint of this run)."""
        close_time = entry.create_body.get("close_time")
        if not isinstance(close_time, str):
            return None
        wanted = datetime.fromisoformat(close_time)
        return next(
            (
                b
                for b in self.orb.pending_backfills()
                if b.timeframe_start == entry.timeframe_start
                and b.timeframe_end == entry.timeframe_end
                and not b.replace_existing_events
                and b.close_time is not None
                and abs((b.close_time - wanted).total_seconds()) < 1
            ),
            None,
        )

    def _close(self, entry: SavedBackfill) -> None:
        assert entry.backfill_id is not None
        self.state.set_status(entry, "closing")
        try:
            backfill = self.orb.close_backfill(entry.backfill_id)
        except OrbApiError as exc:  # maybe closed by an earlier attempt whose answer was lost
            backfill = self._fetch(entry.backfill_id)
            if not backfill.closed(self.clock()):
                raise exc from None
        self._seen(backfill)
        self.state.set_status(entry, "closed", reflected=backfill.status == "reflected")
