"""What the dev stack has done: counters fed by the gateway, the status line and the banner."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from orb_bridge_dev.devstack.env import DEV_ORB_API_KEY, DEV_WEBHOOK_SECRET
from orb_bridge_dev.terminal import printable


@dataclass
class Counters:
    """What the stack has done, for the progress line and the tests."""

    segment_requests: int = 0
    received: int = 0  # Segment events in the requests answered
    enqueued: int = 0  # accepted: Orb events put on the ingest queue
    skipped: int = 0  # non-Track calls acknowledged
    intake_rejected: int = 0  # events intake's mapping refused (on the rejected queue)
    segment_refused: int = 0  # requests answered with an error (401, 400, 413...): nothing queued from them
    webhooks_verified: int = 0  # delivered and accepted (forwarded or duplicate)
    webhooks_duplicate: int = 0
    webhooks_refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # What the dev output says between status lines (a rejection's what and why), bounded.
    notices: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_NOTICES), repr=False)
    notices_dropped: int = 0


MAX_PENDING_NOTICES = 50
MAX_NOTICE_CHARS = 400


def _count(value: Any) -> int:
    return value if isinstance(value, int) else 0


class DevStackStatus:
    """The reporting half of ``DevStack``: counts answers, reads queue depths, prints status."""

    config: Any  # DevStackConfig
    counters: Counters
    user_env: Mapping[str, str]
    env: dict[str, str]
    resources: Any  # LocalResources
    poller: Any  # SqsEventSourcePoller
    sandbox: Any
    test_webhook_status: int | None
    _sqs: Any

    if TYPE_CHECKING:  # provided by DevStack and DevStackEnvironment

        @property
        def segment_url(self) -> str: ...
        @property
        def webhook_url(self) -> str: ...
        @property
        def segment_authenticated(self) -> bool: ...
        @property
        def uses_real_orb(self) -> bool: ...

    def _count_segment_response(self, status: int, body: dict[str, Any] | None) -> None:
        with self.counters.lock:
            self.counters.segment_requests += 1
            if not 200 <= status < 300:
                self.counters.segment_refused += 1
            listing = body.get("rejected") if body else None
            if not body or not isinstance(listing, list):
                if not 200 <= status < 300:
                    why = body.get("message") if body else None
                    self._notice(f"segment request refused: HTTP {status}: {why or 'no reason given'}")
                return
            accepted, skipped = _count(body.get("accepted")), _count(body.get("skipped"))
            rejected = len(listing) + _count(body.get("rejected_omitted"))
            self.counters.received += accepted + skipped + rejected
            self.counters.enqueued += accepted
            self.counters.skipped += skipped
            self.counters.intake_rejected += rejected
            for item in listing:
                item = item if isinstance(item, dict) else {}
                self._notice(
                    f"intake rejected event #{item.get('index', '?')} (messageId {item.get('messageId') or '-'}): "
                    f"{item.get('error') or 'no reason given'}"
                )
            if _count(body.get("rejected_omitted")):
                self._notice(f"intake rejected {body['rejected_omitted']} more event(s) of that request")

    def _notice(self, text: str) -> None:
        """Queue a line for the dev output (caller holds the lock); text from outside is escaped."""
        if len(self.counters.notices) == self.counters.notices.maxlen:
            self.counters.notices_dropped += 1
        line = printable(text)
        self.counters.notices.append(line if len(line) <= MAX_NOTICE_CHARS else line[: MAX_NOTICE_CHARS - 3] + "...")

    def drain_notices(self) -> list[str]:
        with self.counters.lock:
            lines = list(self.counters.notices)
            if self.counters.notices_dropped:
                lines.insert(0, f"({self.counters.notices_dropped} earlier rejection line(s) not shown)")
            self.counters.notices.clear()
            self.counters.notices_dropped = 0
        return lines

    def _count_webhook_response(self, status: int, body: dict[str, Any] | None) -> None:
        with self.counters.lock:
            if 200 <= status < 300:
                self.counters.webhooks_verified += 1
                if body and body.get("status") == "duplicate":
                    self.counters.webhooks_duplicate += 1
            else:
                self.counters.webhooks_refused += 1

    def queue_depth(self, queue_url: str) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def snapshot(self) -> dict[str, Any]:
        with self.counters.lock:
            counters: dict[str, Any] = {
                "segment_requests": self.counters.segment_requests,
                "received": self.counters.received,
                "enqueued": self.counters.enqueued,
                "skipped": self.counters.skipped,
                "intake_rejected": self.counters.intake_rejected,
                "segment_refused": self.counters.segment_refused,
                "webhooks_verified": self.counters.webhooks_verified,
                "webhooks_duplicate": self.counters.webhooks_duplicate,
                "webhooks_refused": self.counters.webhooks_refused,
            }
        poller = self.poller.stats.snapshot()
        counters["retried"] = poller["failed"]
        counters["ingest_done"] = poller["succeeded"]
        counters["ingested"] = self.sandbox.ingested_count if self.sandbox is not None else poller["succeeded"]
        counters["in_queue"] = self.queue_depth(self.resources.ingest_queue.url)
        counters["rejected"] = self.queue_depth(self.resources.rejected_queue.url)
        counters["forwarded"] = self.queue_depth(self.resources.bus_tap_queue.url)
        counters["last_error"] = poller["last_error"]
        loop = getattr(self, "reconcile_loop", None)
        counters["reconcile"] = loop.view.summary() if loop is not None else None
        return counters

    def status_line(self, snapshot: Mapping[str, Any] | None = None) -> str:
        s = snapshot or self.snapshot()
        return (
            f"segment: received {s['received']}, enqueued {s['enqueued']}, skipped {s['skipped']}, "
            f"rejected {s['intake_rejected']}, refused requests {s['segment_refused']} | "
            f"orb: ingested {s['ingested']}, retried {s['retried']}, in queue {s['in_queue']} | "
            f"rejected queue {s['rejected']} | "
            f"webhooks: verified {s['webhooks_verified']}, refused {s['webhooks_refused']}, "
            f"forwarded {s['forwarded']}" + (f" | {s['reconcile']}" if s.get("reconcile") else "")
        )

    def banner(self) -> str:
        orb = (
            f"{self.user_env['ORB_API_BASE_URL']} (real Orb, ORB_API_KEY from your environment)"
            if self.uses_real_orb
            else f"{self.sandbox.base_url}  (Orb sandbox, API key {DEV_ORB_API_KEY})"
        )
        auth = "authenticated (your SEGMENT_* settings)" if self.segment_authenticated else "ALLOW_UNAUTHENTICATED=true"
        lines = [
            "orb-bridge dev stack is up",
            f"  POST {self.segment_url}      Segment Track calls ({auth})",
            f"  POST {self.webhook_url}  Orb webhooks (secret {'from ORB_WEBHOOK_SECRET' if self.user_env.get('ORB_WEBHOOK_SECRET') else DEV_WEBHOOK_SECRET})",
            f"  Orb    {orb}",
            f"  AWS    {self.resources.endpoint_url} (moto): ingest queue {self.resources.ingest_queue.name} "
            f"(visibility {self.config.local_visibility_timeout} s locally, maxReceiveCount "
            f"{self.resources.ingest_queue.max_receive_count}), rejected queue {self.resources.rejected_queue.name}, "
            f"table {self.resources.idempotency_table_name}, bus {self.resources.event_bus_name}",
            f"  mapping: EXTERNAL_CUSTOMER_ID_FIELD={self.env['EXTERNAL_CUSTOMER_ID_FIELD']} "
            f"PROPERTIES_MAPPING={self.env['PROPERTIES_MAPPING']}",
        ]
        lines.append("  loopback only: a request with another Host or a web page's Origin gets a 403")
        if self.test_webhook_status is not None:
            lines.append(f"  sent a resource_event.test webhook: HTTP {self.test_webhook_status}")
        lines.append("Ctrl-C to stop.")
        return "\n".join(lines)


def run_forever(stack: DevStackStatus, out: TextIO, stop: threading.Event, interval: float = 1.0) -> None:
    """Print a status line at once, then whenever the counters change, until ``stop`` is set."""
    last = None
    last_error = None
    while True:
        for notice in stack.drain_notices():
            print(f"[{time.strftime('%H:%M:%S')}] {notice}", file=out, flush=True)
        try:
            snapshot = stack.snapshot()
        except Exception as exc:  # moto briefly unavailable: say so, keep going
            print(f"[{time.strftime('%H:%M:%S')}] status unavailable: {type(exc).__name__}", file=out, flush=True)
        else:
            line = stack.status_line(snapshot)
            if line != last:
                print(f"[{time.strftime('%H:%M:%S')}] {line}", file=out, flush=True)
                last = line
            if snapshot["last_error"] and snapshot["last_error"] != last_error:
                last_error = snapshot["last_error"]
                print(f"[{time.strftime('%H:%M:%S')}] ingest batch failed: {last_error}", file=out, flush=True)
        if stop.wait(interval):
            return
