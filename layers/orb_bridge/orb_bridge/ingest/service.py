"""Orb ingest: a batch of SQS messages (one OrbUsageEvent each) -> ``POST /ingest`` in chunks.

What happens to each message (nothing is ever silently dropped):

- done: Orb ingested its event, or it was written to the rejected queue with its reason
  (unreadable body, conflicting duplicate idempotency key, named by Orb's 400 or a 200's
  ``validation_failed``, or refused alone once a 400 naming nobody was split down to it; an
  event older than Orb's grace period that Orb refused says so and names ``orb-bridge
  backfill``), or it carried nothing to bill (a replayed non-Track Segment call);
- deferred (re-enqueued by the handler with a delay, not counting towards ``maxReceiveCount``):
  it waited on pacing, our own (no slot within this invocation's time) or Orb's (a 429, held
  back at least ``Retry-After``), or the invocation ran short of time before sending it. The
  delay is what is left of the wait when the copy is sent (measured on a monotonic clock), so
  the copy comes back when its slot does, however long the invocation's other requests took;
- failed (``batchItemFailures``: SQS redelivers it after an exponential hold-back, and after
  ``maxReceiveCount`` the redrive keeps it in the rejected queue): Orb answered 5xx/408/409,
  timed out or was unreachable; the API key or base URL is wrong (a configuration error); a 400
  naming nobody could not be narrowed down within the request budget; or writing its
  rejection failed; or it is a redriven rejection record to re-map while the mapping settings
  are broken. A pacing table that cannot be used is none of these: the invocation paces by its
  container's share of the budget instead (``orb_bridge.ingest.table_or_local.TableOrLocal``).

A message may be a rejection record redriven from the rejected queue (the SQS console's DLQ
redrive to a custom destination): its event is replayed, and if it fails again it goes back as
one flat record with a ``replay_count`` (``orb_bridge.ingest.replay``).

A 400 that names events: those go to the rejected queue with Orb's messages and the rest is
sent again at once (whether Orb ingested the valid events of a 400 is undocumented; re-sending
is safe: Orb ingests a key at most once). A 400 naming nobody is split in halves sent at once.
Every request takes a pacing slot first; after a 200 its worker archives what Orb accepted
(``orb_bridge.ingest.archive``), or the events are ``unarchived``: done with Orb, not re-sent.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from orb_bridge.aws.queues import SqsQueue
from orb_bridge.core.config import MappingSettings
from orb_bridge.core.observability import logger
from orb_bridge.ingest.archive import ArchiveRun
from orb_bridge.ingest.messages import Batch, Message, PendingEvent, collect, epoch, in_order
from orb_bridge.ingest.pacing import NoPacing, Pacer, container_share
from orb_bridge.ingest.rejections import is_late, orb_refusal, write_rejections
from orb_bridge.ingest.settings import IngestSettings
from orb_bridge.ingest.state import Attempt, IngestReport, Job, RunState
from orb_bridge.ingest.table_or_local import TableOrLocal
from orb_bridge.orb.client import OrbClient, Outcome

# Below this, a request is not worth starting even if the settings allow it.
MIN_REQUEST_TIMEOUT_SECONDS = 0.1


class IngestService:
    def __init__(
        self,
        settings: IngestSettings,
        orb: OrbClient,
        rejected_queue: SqsQueue,
        pacer: Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        mapping_settings: Callable[[], MappingSettings] | None = None,
        clock: Callable[[], float] = time.time,
        local_pacer: Pacer | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.orb = orb
        self.rejected_queue = rejected_queue
        self.pacer = pacer if pacer is not None else NoPacing()
        # When the pacing table fails: this container's share of the budget (kept across invocations).
        self.local_pacer = local_pacer or container_share(
            settings.requests_per_second, settings.events_per_minute, settings.ingest_max_concurrency
        )
        self.monotonic = monotonic
        self.sleep = sleep
        # Called only to re-map a redriven intake record (a broken mapping must not stop plain events).
        self.mapping_settings = mapping_settings or MappingSettings.from_env
        self.clock = clock

    def ingest(
        self, messages: Sequence[Message], remaining_seconds: Callable[[], float], archive: ArchiveRun | None = None
    ) -> IngestReport:
        """Send every message's event to Orb; ``remaining_seconds`` is the invocation's clock."""
        batch = Batch()
        run = RunState(pacer=TableOrLocal(self.pacer, self.local_pacer), archive=archive or ArchiveRun.off())
        # Chunks are sent as soon as they are read: reading 10,000 bodies overlaps Orb's answers.
        chunks = collect(messages, batch, self.settings.max_events_per_request, self.mapping_settings)
        self._schedule(chunks, run, remaining_seconds)
        rejections = batch.rejections
        run.rejections[:0] = rejections

        failed = {message_id for event in run.failed for message_id in event.message_ids}
        unwritten, run.counted.rejected_records_written = write_rejections(self.rejected_queue, run.rejections)
        failed.update(unwritten)
        if batch.mapping_error_ids:
            logger.error(
                "redriven records cannot be re-mapped: mapping settings broken, left for SQS to redeliver",
                extra={"messages": len(batch.mapping_error_ids), "error": batch.mapping_error},
            )
            failed.update(batch.mapping_error_ids)
        deferred_as_of = self.monotonic()
        deferred: dict[str, float] = {}
        for event, due in run.deferred:
            for message_id in event.message_ids:
                if message_id not in failed:
                    deferred[message_id] = max(due - deferred_as_of, deferred.get(message_id, 0.0))
        pending_events = run.failed + [event for event, _ in run.deferred]
        return IngestReport(
            failed_message_ids=in_order(messages, failed),
            deferred=deferred,
            deferred_as_of=deferred_as_of,
            events_ingested=run.ingested,
            events_rejected_by_orb=run.rejected_by_orb,
            messages_rejected_at_ingest=sum(len(r.message_ids) for r in rejections),
            requests_made=run.requests_started,
            rate_limited=run.rate_limited,
            configuration_error=run.configuration_error,
            oldest_pending_event=min((epoch(event) for event in pending_events), default=None),
            events_replayed=batch.replayed,
            replays_refused=batch.replays_refused,
            mapping_error_message_ids=in_order(messages, set(batch.mapping_error_ids)),
            mapping_error=batch.mapping_error,
            late_events_rejected=run.late_rejected,
            pacing_table_errors=getattr(run.pacer, "table_errors", 0),
            unarchived=run.unarchived,
            archive_write_failures=run.archive.write_failures,
            counted=run.counted,
        )

    def _schedule(
        self, chunks: Iterator[list[PendingEvent]], run: RunState, remaining_seconds: Callable[[], float]
    ) -> None:
        """Keep up to ``max_concurrent_requests`` jobs in flight, reading the next chunk only when
        a worker is free; answers may add jobs (re-sends, halves), handled here in one thread so
        the run's state needs no lock."""
        workers = self.settings.max_concurrent_requests  # threads start only as jobs need them
        jobs: deque[Job] = deque()
        running: dict[Future[Attempt], Job] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="orb-ingest") as pool:
            while True:
                while len(running) < workers and not run.stop.is_set():
                    if run.requests_started >= self.settings.max_requests_per_invocation:
                        break
                    if not jobs:
                        chunk = next(chunks, None)
                        if chunk is None:
                            break
                        jobs.append(Job(chunk))
                    job = jobs.popleft()
                    run.requests_started += 1
                    running[pool.submit(self._attempt, job, run, remaining_seconds)] = job
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    attempt = future.result()
                    if attempt.not_sent:
                        run.requests_started -= 1
                    self._handle(job, attempt, jobs, run)
        jobs.extend(Job(chunk) for chunk in chunks)  # the rest of the batch, read now
        for job in jobs:  # never started: stopped, or out of request budget
            self._leave(job, run, "budget" if not run.stop.is_set() else "stopped")

    def _attempt(self, job: Job, run: RunState, remaining_seconds: Callable[[], float]) -> Attempt:
        """In a worker: take a pacing slot, wait for it, send."""
        stop = run.stop
        if stop.is_set():
            return Attempt(not_sent="stopped")
        timeout = self._request_timeout(remaining_seconds)
        if timeout is None:
            return Attempt(not_sent="time")
        latest_start = remaining_seconds() - self.settings.safety_margin_seconds - timeout
        measured_at = self.monotonic()
        slot = run.pacer.reserve(len(job.events), latest_start)  # the table, or this container's share
        if not slot.granted:
            return Attempt(not_sent="paced", wait_seconds=slot.wait_seconds, measured_at=measured_at)
        if slot.wait_seconds > 0:
            self.sleep(slot.wait_seconds)
            if stop.is_set():
                return Attempt(not_sent="stopped")
        events, sent_at, number = job.events, self.clock(), run.archive.next_number()
        started = self.monotonic()
        answer = self.orb.ingest_texts([event.text() for event in events], [event.key for event in events], timeout)
        elapsed = self.monotonic() - started
        return Attempt(answer, unarchived=run.archive.record(events, answer, sent_at, number), elapsed_seconds=elapsed)

    def _request_timeout(self, remaining_seconds: Callable[[], float]) -> float | None:
        """The timeout for a request started now, or None when there is no time to start one."""
        budget = remaining_seconds() - self.settings.safety_margin_seconds
        if budget < self.settings.request_timeout_seconds or budget < MIN_REQUEST_TIMEOUT_SECONDS:
            return None
        return min(self.settings.request_timeout_seconds, budget)

    def _handle(self, job: Job, attempt: Attempt, jobs: deque[Job], run: RunState) -> None:
        events = job.events
        if attempt.not_sent:
            if attempt.not_sent == "paced":
                logger.info(
                    "no pacing slot within this invocation: events deferred",
                    extra={"events": len(events), "wait_seconds": round(attempt.wait_seconds, 3)},
                )
                due = attempt.measured_at + attempt.wait_seconds
                run.deferred.extend((event, due) for event in events)
            else:
                self._leave(job, run, attempt.not_sent)
            return
        answer = attempt.answer
        assert answer is not None  # noqa: S101 (for mypy: a sent attempt has an answer)
        outcome = answer.outcome
        run.counted.answer(outcome.value, attempt.elapsed_seconds)
        if outcome is Outcome.OK:
            for event in events:
                errors = answer.validation_failed.get(event.key)
                if errors is None:
                    run.ingested += 1
                else:
                    self._reject(run, event, "Orb refused the event (validation_failed)", errors)
            if attempt.unarchived is not None:
                run.unarchived.append(attempt.unarchived)
        elif outcome is Outcome.RATE_LIMITED:
            run.rate_limited += 1
            wait_seconds = answer.retry_after_seconds or 0.0
            due = self.monotonic() + wait_seconds
            run.retry_until = max(run.retry_until, due)
            if not run.stop.is_set():
                logger.warning(
                    "Orb rate limited ingest: no new requests in this invocation",
                    extra={"retry_after_seconds": wait_seconds},
                )
            run.stop.set()
            run.pacer.hold_off(wait_seconds)
            run.deferred.extend((event, due) for event in events)
        elif outcome is Outcome.RETRYABLE:
            logger.warning(
                "Orb ingest failed, SQS will redeliver", extra={"error": answer.error_summary, "events": len(events)}
            )
            run.failed.extend(events)
        elif outcome is Outcome.CONFIGURATION:
            # No request can succeed: stop sending, fail everything unsent, never reject as bad data.
            run.stop.set()
            run.configuration_error = (
                f"Orb refused the request ({answer.error_summary}): check the API key "
                "(ORB_API_KEY_SECRET_ARN) and ORB_API_BASE_URL"
            )
            run.failed.extend(events)
        else:  # INVALID_EVENTS or BAD_REQUEST
            named = answer.attribution.by_key if outcome is Outcome.INVALID_EVENTS else {}
            hit = [event for event in events if event.key in named]
            if hit:
                reason = f"Orb refused the event (HTTP {answer.status_code} request validation error)"
                for event in hit:
                    self._reject(run, event, reason, named[event.key])
                rest = [event for event in events if event.key not in named]
                if rest:  # re-send the others now: whether Orb kept them is unknown, re-sending is safe
                    jobs.appendleft(Job(rest, job.split))
            elif len(events) == 1:
                self._reject(run, events[0], f"Orb refused the event ({answer.error_summary})", answer.errors)
            else:  # nothing attributable: split, both halves at once
                middle = len(events) // 2
                jobs.appendleft(Job(events[middle:], True))
                jobs.appendleft(Job(events[:middle], True))

    def _leave(self, job: Job, run: RunState, why: str) -> None:
        """Events not sent: deferred when the wait is ours or Orb's pacing, failed otherwise."""
        if run.configuration_error:
            run.failed.extend(job.events)
        elif why == "stopped":  # after a 429
            due = max(run.retry_until, self.monotonic())
            run.deferred.extend((event, due) for event in job.events)
        elif job.split or why == "budget":
            # Narrowing down a 400 that named nobody is Orb's refusal, not pacing: it counts.
            logger.warning(
                "could not isolate the events Orb refused within this invocation",
                extra={"events": len(job.events), "reason": why},
            )
            run.failed.extend(job.events)
        else:  # too little time left to start: ours
            now = self.monotonic()
            run.deferred.extend((event, now) for event in job.events)

    def _reject(self, run: RunState, event: PendingEvent, reason: str, errors: Sequence[str]) -> None:
        run.rejected_by_orb += 1
        late = is_late(event, self.clock(), self.settings.grace_period_hours)
        run.late_rejected += late
        run.rejections.append(orb_refusal(event, reason, errors, self.settings.grace_period_hours if late else None))
