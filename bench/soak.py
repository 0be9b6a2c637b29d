"""Fault-injection soak through the dev stack: Segment -> HTTP -> intake -> SQS -> ingest -> Orb sandbox.

    python -m bench.soak --events 100000      (make soak)

Sends Segment Track calls over loopback HTTP (single events, Webhooks Actions arrays and
``{"batch": [...]}`` bodies), 2% of them invalid, about 5% re-sent as Segment retries do, while
the Orb sandbox behaves as Orb's spec says and worse: rate limits (429 + ``Retry-After``), a
whole-request 400 for any request holding an event Orb refuses (a timestamp outside the grace
period or too far ahead: intake accepts those, only Orb can refuse them), its body form rotating
among those naming the events, the valid events of a 400 kept or not (``ingest_valid_events_on_400``),
plus injected 500s, 429s, timeouts and dropped connections. One ingest invocation is killed
(SIGKILL, in a child process) while the sandbox holds its second request, after part of its
batch is in Orb (``OrbSandbox.hold_ingest``), so its messages reappear after the visibility
timeout. Then it checks, and exits non-zero unless:

- every valid event is ingested in the sandbox exactly once (by idempotency key), none missing;
- nothing else was billed (duplicates billed: 0, judged by a unique ``seq`` property);
- every invalid event is on the rejected queue with its reason (the ones only Orb refuses with
  Orb's own message), and no valid one is (none dead-lettered by rate limiting either).

moto's SQS does work proportional to a queue's depth on every call, so the sender pauses while
the ingest queue is deep, keeping it drained as the soak goes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AUTH_TOKEN = "soak-bearer-token"
PROPERTIES_MAPPING = {"amount": "amount", "seq": "seq", "region": "region"}
INTAKE_REFUSES = ("missing userId", "nested property", "unparseable timestamp", "empty event name")
# Well-formed, so intake queues them; Orb's whole-request 400 refuses them (grace period 12 h,
# future limit 5 min: the sandbox's defaults, Orb's documented values).
ORB_REFUSES = ("stale timestamp", "future timestamp")
INVALID_KINDS = INTAKE_REFUSES + ORB_REFUSES
# The 400 body forms that name the failing events. The opaque form (naming nobody) is left out:
# its search by splitting needs many requests, which a rate limit answers with 429s (tested in
# tests/unit/ingest/test_ingest_orb_400.py, without a rate limit).
NAMING_ERROR_BODIES = ("validation_failed", "objects", "strings")


@dataclass
class SoakConfig:
    events: int = 10_000
    invalid_rate: float = 0.02
    resend_rate: float = 0.05
    single_rate: float = 0.05  # share of events sent one per request (classic Webhooks)
    max_batch: int = 400
    error_500_rate: float = 0.10
    error_429_rate: float = 0.05
    timeout_rate: float = 0.02
    drop_connection_rate: float = 0.01
    # Our client gives up after this; the sandbox's "timeout" holds the request a bit longer.
    orb_request_timeout: float = 1.0
    max_queue_depth: int = 1500
    senders: int = 3
    kill_one_invocation: bool = True
    # Orb's limits in the sandbox (429 + Retry-After above them). Two requests/s: a 400 and the
    # re-send that follows it at once, with other traffic, go over it (one request/s doubles the
    # soak's time: every re-sent batch waits).
    rate_limit_requests_per_second: float = 2.0
    rate_limit_events_per_minute: float = 12_000.0
    # Rotated every ``error_body_every`` Segment requests.
    error_bodies: tuple[str, ...] = NAMING_ERROR_BODIES
    error_body_every: int = 20
    ingest_valid_events_on_400: bool = False
    seed: int = 20261102
    drain_timeout: float = 600.0


@dataclass
class SoakReport:
    config: dict[str, Any]
    wall_seconds: float = 0.0
    send_seconds: float = 0.0
    valid_events: int = 0
    invalid_events: int = 0
    requests: int = 0
    requests_by_shape: dict[str, int] = field(default_factory=dict)
    resent_requests: int = 0
    resent_events: int = 0
    http_statuses: dict[str, int] = field(default_factory=dict)
    intake_retries: int = 0
    ingested: int = 0
    missing: int = 0
    extra_keys: int = 0
    duplicates_billed: int = 0
    content_mismatches: int = 0
    invalid_on_rejected_queue: int = 0
    invalid_without_reason: int = 0
    refused_by_orb: int = 0  # invalid events only Orb could refuse
    refused_by_orb_kept_with_orbs_reason: int = 0
    valid_on_rejected_queue: int = 0
    rejected_queue_messages: int = 0
    orb_requests: int = 0
    orb_outcomes: dict[str, int] = field(default_factory=dict)
    orb_duplicate_offers: int = 0
    orb_rate_limited: int = 0  # 429s from the sandbox's rate limits (not the injected ones)
    orb_validation_400s: int = 0
    poller: dict[str, Any] = field(default_factory=dict)
    killed_invocation: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        r = self
        lines = [
            f"soak: {r.valid_events + r.invalid_events:,} Segment events ({r.valid_events:,} valid, "
            f"{r.invalid_events:,} invalid) in {r.requests:,} requests {r.requests_by_shape}, "
            f"{r.resent_requests:,} requests re-sent ({r.resent_events:,} events)",
            f"  wall time {r.wall_seconds:.1f} s (sending {r.send_seconds:.1f} s); HTTP {r.http_statuses}, "
            f"intake retries {r.intake_retries}",
            f"  Orb sandbox: {r.orb_requests:,} ingest requests, outcomes {r.orb_outcomes}, "
            f"keys offered again and deduplicated {r.orb_duplicate_offers:,}; 429s from its rate limits "
            f"{r.orb_rate_limited:,}, whole-request 400s {r.orb_validation_400s:,}",
            f"  poller: {r.poller}",
            f"  killed invocation: {r.killed_invocation}",
            f"  ingested {r.ingested:,} of {r.valid_events:,} valid; missing {r.missing}; extra keys {r.extra_keys}; "
            f"duplicates billed: {r.duplicates_billed}; content mismatches {r.content_mismatches}",
            f"  rejected queue: {r.rejected_queue_messages:,} messages; invalid events found "
            f"{r.invalid_on_rejected_queue:,} of {r.invalid_events:,} (without reason {r.invalid_without_reason}); "
            f"valid events there {r.valid_on_rejected_queue}; refused by Orb {r.refused_by_orb:,}, kept with Orb's "
            f"reason {r.refused_by_orb_kept_with_orbs_reason:,}",
            "  RESULT: " + ("PASS" if r.ok else "FAIL: " + "; ".join(r.failures)),
        ]
        return "\n".join(lines)


# ---- the Segment side -------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now_iso() -> str:
    return _iso(datetime.now(UTC))


def make_event(run_id: str, seq: int, invalid_kind: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "track",
        "event": "api_call",
        "userId": f"customer_{seq % 500}",
        "messageId": f"{run_id}-{seq:07d}",
        "timestamp": _now_iso(),
        "properties": {"amount": seq % 100, "seq": seq, "region": "eu-west-1", "ignored": "not mapped"},
        "context": {"library": {"name": "soak"}},
    }
    if invalid_kind == "missing userId":
        del event["userId"]
    elif invalid_kind == "nested property":
        event["properties"]["amount"] = {"value": 3}
    elif invalid_kind == "unparseable timestamp":
        event["timestamp"] = "not a time"
    elif invalid_kind == "empty event name":
        event["event"] = ""
    elif invalid_kind == "stale timestamp":
        event["timestamp"] = _iso(datetime.now(UTC) - timedelta(hours=13))
    elif invalid_kind == "future timestamp":
        event["timestamp"] = _iso(datetime.now(UTC) + timedelta(hours=2))
    return event


@dataclass
class Plan:
    requests: list[tuple[str, bytes, int]]  # (shape, body, events in it)
    valid: dict[str, dict[str, Any]]  # messageId -> Segment event
    invalid: dict[str, str]  # messageId -> kind


def plan_requests(config: SoakConfig, run_id: str, rng: random.Random) -> Plan:
    valid: dict[str, dict[str, Any]] = {}
    invalid: dict[str, str] = {}
    events = []
    for seq in range(config.events):
        kind = INVALID_KINDS[seq % len(INVALID_KINDS)] if rng.random() < config.invalid_rate else None
        event = make_event(run_id, seq, kind)
        events.append(event)
        if kind:
            invalid[event["messageId"]] = kind
        else:
            valid[event["messageId"]] = event
    requests: list[tuple[str, bytes, int]] = []
    index = 0
    while index < len(events):
        if rng.random() < config.single_rate / (config.single_rate + (1 - config.single_rate) / (config.max_batch / 2)):
            chunk, shape = events[index : index + 1], "single"
            body: Any = chunk[0]
        else:
            size = rng.randint(2, config.max_batch)
            chunk = events[index : index + size]
            shape = "batch" if rng.random() < 0.2 else "array"
            body = {"batch": chunk} if shape == "batch" else chunk
        requests.append((shape, json.dumps(body, separators=(",", ":")).encode(), len(chunk)))
        index += len(chunk)
    return Plan(requests, valid, invalid)


class Sender:
    """Posts the planned requests like Segment: retries 5xx and connection errors, re-sends some."""

    def __init__(self, stack: Any, config: SoakConfig, rng: random.Random, report: SoakReport) -> None:
        import httpx

        self.stack = stack
        self.config = config
        self.rng = rng
        self.report = report
        self.client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=config.senders + 2))
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.sqs = stack.local_aws.client("sqs")

    def post(self, body: bytes) -> int:
        import httpx

        headers = {"content-type": "application/json", "authorization": f"Bearer {AUTH_TOKEN}"}
        for attempt in range(8):
            try:
                status = self.client.post(self.stack.segment_url, content=body, headers=headers).status_code
            except httpx.HTTPError:
                status = 0
            with self.lock:
                self.statuses[str(status)] += 1
            if status and status < 500 and status != 429:
                return status
            with self.lock:
                self.report.intake_retries += 1
            time.sleep(min(0.05 * 2**attempt, 2))
        raise RuntimeError("intake kept failing: Segment would give up after 4 hours; the soak gives up now")

    def wait_for_room(self) -> None:
        """Backpressure: moto slows down with queue depth, so keep the ingest queue shallow."""
        url = self.stack.resources.ingest_queue.url
        while True:
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]
            if int(attributes["ApproximateNumberOfMessages"]) < self.config.max_queue_depth:
                return
            time.sleep(0.05)

    def send_all(self, plan: Plan, on_progress: Any = None) -> None:
        requests = list(plan.requests)
        resends = [r for r in requests if self.rng.random() < self.config.resend_rate]
        # Segment retries after a while; interleave the re-sends with the later traffic.
        schedule: list[tuple[str, bytes, int, bool]] = [(*r, False) for r in requests]
        for resend in resends:
            position = self.rng.randint(requests.index(resend) + 1, len(schedule))
            schedule.insert(position, (*resend, True))
        self.report.resent_requests = len(resends)
        self.report.resent_events = sum(r[2] for r in resends)
        self.report.requests = len(schedule)
        self.report.requests_by_shape = dict(Counter(r[0] for r in requests))

        cursor = iter(enumerate(schedule))
        cursor_lock = threading.Lock()
        errors: list[BaseException] = []

        def worker() -> None:
            sent_since_check = 0
            while True:
                with cursor_lock:
                    item = next(cursor, None)
                if item is None or errors:
                    return
                position, (_, body, count, _) = item
                if sent_since_check >= 200:
                    self.wait_for_room()
                    sent_since_check = 0
                try:
                    self.post(body)
                except BaseException as exc:  # noqa: BLE001 (reported after the join)
                    errors.append(exc)
                    return
                sent_since_check += count
                if on_progress is not None:
                    on_progress(position, count)

        threads = [threading.Thread(target=worker, name=f"soak-sender-{i}") for i in range(self.config.senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        self.client.close()


# ---- the killed invocation --------------------------------------------------------------------

KILLED_CHILD = textwrap.dedent(
    """
    import json, os, sys
    import boto3
    sys.path.insert(0, os.environ["SOAK_DEV_PATH"])
    from orb_bridge_dev.devstack.stack import load_function
    from orb_bridge_dev.devstack.poller import LambdaContext, sqs_record
    # Small sequential chunks: the sandbox holds the second request once the first is in Orb.
    os.environ["ORB_MAX_EVENTS_PER_REQUEST"] = "10"
    os.environ["ORB_MAX_CONCURRENT_REQUESTS"] = "1"
    sqs = boto3.client("sqs")
    url, arn = os.environ["SOAK_QUEUE_URL"], os.environ["SOAK_QUEUE_ARN"]
    messages = []
    for _ in range(40):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                  VisibilityTimeout=int(os.environ["SOAK_VISIBILITY"])).get("Messages", [])
        messages += got
        if len(messages) >= 200:
            break
    handler = load_function("orb_ingest", module_prefix="soak_killed")
    keys = [json.loads(m["Body"]).get("idempotency_key") for m in messages]
    print(json.dumps({"received": len(messages), "keys": keys}), flush=True)
    sys.stdin.readline()  # the parent has set up the hold on these keys
    handler.lambda_handler({"Records": [sqs_record(m, arn) for m in messages]}, LambdaContext("killed", 60))
    print(json.dumps({"finished": True}), flush=True)
    """
)


# Generous: only a broken child or sandbox takes this long, and then the soak fails anyway.
HOLD_DEADLINE_SECONDS = 300


def kill_one_invocation(stack: Any, visibility_seconds: int) -> dict[str, Any]:
    """Run one ingest invocation in a child process and SIGKILL it mid-flight: the sandbox holds
    its next request once part of its batch is in Orb, so the kill lands there every time."""
    sandbox = stack.sandbox
    env = dict(
        os.environ,
        SOAK_DEV_PATH=str(ROOT / "dev"),
        SOAK_QUEUE_URL=stack.resources.ingest_queue.url,
        SOAK_QUEUE_ARN=stack.resources.ingest_queue.arn,
        SOAK_VISIBILITY=str(visibility_seconds),
        PYTHONPATH=os.pathsep.join([str(ROOT / "dev"), os.environ.get("PYTHONPATH", "")]),
    )
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    info: dict[str, Any] = {"messages": 0, "in_orb_at_kill": 0, "killed": False}
    hold = None
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline()
        started: dict[str, Any] = json.loads(line) if line.startswith("{") else {"received": 0, "keys": []}
        keys = {key for key in started["keys"] if key}
        info["messages"] = started["received"]
        hold = sandbox.hold_ingest(keys)
        child.stdin.write("go\n")
        child.stdin.flush()
        # Part of the batch is in Orb and the next request is held: kill the invocation there.
        if keys and hold.reached.wait(HOLD_DEADLINE_SECONDS) and child.poll() is None:
            child.send_signal(signal.SIGKILL)
            info["killed"] = True
        child.wait(timeout=30)
        offered = sandbox.ingest_attempts_by_key
        info["in_orb_at_kill"] = sum(1 for key in keys if offered[key])
    finally:
        if hold is not None:
            hold.release.set()
        if child.poll() is None:
            child.kill()
            child.wait()
    return info


# ---- checking the outcome -----------------------------------------------------------------------


def read_queue(sqs: Any, queue_url: str) -> list[str]:
    bodies: list[str] = []
    empty_rounds = 0
    while empty_rounds < 2:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
            "Messages", []
        )
        if not messages:
            empty_rounds += 1
            continue
        empty_rounds = 0
        bodies += [message["Body"] for message in messages]
    return bodies


def check(stack: Any, plan: Plan, report: SoakReport) -> None:
    ingested = stack.sandbox.ingested_events()
    valid_keys = set(plan.valid)
    report.ingested = len(ingested)
    report.missing = len(valid_keys - ingested.keys())
    report.extra_keys = len(ingested.keys() - valid_keys)
    seqs = Counter(event.get("properties", {}).get("seq") for event in ingested.values())
    report.duplicates_billed = sum(count - 1 for count in seqs.values() if count > 1) + report.extra_keys
    for key, stored in ingested.items():
        source = plan.valid.get(key)
        if source is None:
            continue
        expected_properties = {
            orb: source["properties"][segment]
            for segment, orb in PROPERTIES_MAPPING.items()
            if segment in source["properties"]
        }
        if (
            stored.get("event_name") != source["event"]
            or stored.get("external_customer_id") != source["userId"]
            or stored.get("properties") != expected_properties
        ):
            report.content_mismatches += 1

    rejected = [
        json.loads(body) for body in read_queue(stack.local_aws.client("sqs"), stack.resources.rejected_queue.url)
    ]
    report.rejected_queue_messages = len(rejected)
    found_invalid: set[str] = set()
    orb_reasons: set[str] = set()
    for record in rejected:
        segment_event = record.get("segment_event") if isinstance(record, dict) else None
        message_id = (segment_event or {}).get("messageId") if isinstance(segment_event, dict) else None
        # A raw usage event (redriven after maxReceiveCount) or an Orb/ingest rejection of a valid one.
        key = message_id or record.get("idempotency_key") or (record.get("orb_event") or {}).get("idempotency_key")
        if key in plan.invalid:
            found_invalid.add(key)
            if not record.get("reason"):
                report.invalid_without_reason += 1
            # Orb's own words on the timestamp, not a bare status (a redriven message has none).
            if (
                plan.invalid[key] in ORB_REFUSES
                and record.get("stage") == "orb"
                and any("timestamp" in str(error) for error in record.get("errors") or [])
            ):
                orb_reasons.add(key)
        elif key in plan.valid:
            report.valid_on_rejected_queue += 1
    report.invalid_on_rejected_queue = len(found_invalid)
    report.refused_by_orb = sum(1 for kind in plan.invalid.values() if kind in ORB_REFUSES)
    report.refused_by_orb_kept_with_orbs_reason = len(orb_reasons)

    stats = stack.sandbox.stats()
    report.orb_requests = stats["ingest_requests"]
    report.orb_outcomes = stats["outcomes"]
    report.orb_duplicate_offers = stats["duplicates"]
    report.poller = {k: v for k, v in stack.poller.stats.snapshot().items() if k != "last_error"}

    if report.missing:
        report.failures.append(f"{report.missing} valid events never ingested")
    if report.duplicates_billed:
        report.failures.append(f"{report.duplicates_billed} duplicates billed")
    if report.content_mismatches:
        report.failures.append(f"{report.content_mismatches} ingested events differ from what was sent")
    if report.invalid_on_rejected_queue != len(plan.invalid):
        report.failures.append(
            f"{len(plan.invalid) - report.invalid_on_rejected_queue} invalid events missing from the rejected queue"
        )
    if report.refused_by_orb_kept_with_orbs_reason != report.refused_by_orb:
        report.failures.append(
            f"{report.refused_by_orb - report.refused_by_orb_kept_with_orbs_reason} events refused by Orb "
            "are not on the rejected queue with Orb's reason"
        )
    if report.invalid_without_reason:
        report.failures.append(f"{report.invalid_without_reason} rejected events without a reason")
    report.orb_rate_limited = stats["outcomes"].get("rejected_429", 0)
    report.orb_validation_400s = stats["outcomes"].get("rejected_400", 0)
    if report.valid_on_rejected_queue:
        report.failures.append(f"{report.valid_on_rejected_queue} valid events on the rejected queue")
    if stats["conflicting_duplicates"]:
        report.failures.append(f"{stats['conflicting_duplicates']} requests held one key twice with different bodies")


# ---- the run ----------------------------------------------------------------------------------


def run_soak(config: SoakConfig, progress: Any = None) -> SoakReport:
    sys.path.insert(0, str(ROOT / "dev")) if str(ROOT / "dev") not in sys.path else None
    from orb_bridge_dev.devstack.stack import DevStack, DevStackConfig, wait_until
    from orb_bridge_dev.orb_sandbox import FaultConfig

    rng = random.Random(config.seed)
    report = SoakReport(config=asdict(config))
    run_id = f"soak-{uuid.uuid4().hex[:10]}"
    plan = plan_requests(config, run_id, rng)
    report.valid_events, report.invalid_events = len(plan.valid), len(plan.invalid)

    faults = FaultConfig(
        error_500_rate=config.error_500_rate,
        error_429_rate=config.error_429_rate,
        timeout_rate=config.timeout_rate,
        timeout_seconds=config.orb_request_timeout + 0.5,
        drop_connection_rate=config.drop_connection_rate,
    )
    visibility = 2
    # Long enough that the poller does not get the killed invocation's messages while it runs.
    killed_visibility = 30
    user_env = {
        "SEGMENT_AUTH_TOKEN": AUTH_TOKEN,
        "EXTERNAL_CUSTOMER_ID_FIELD": "userId",
        "PROPERTIES_MAPPING": json.dumps(PROPERTIES_MAPPING),
        # Thousands of injected faults each log a warning: keep the output to the summary.
        "POWERTOOLS_LOG_LEVEL": os.environ.get("SOAK_LOG_LEVEL", "ERROR"),
    }
    # Read by the ingest function at its first request; the dev stack leaves these alone.
    saved = {name: os.environ.get(name) for name in ("ORB_REQUEST_TIMEOUT_SECONDS", "INGEST_SAFETY_MARGIN_SECONDS")}
    os.environ["ORB_REQUEST_TIMEOUT_SECONDS"] = str(config.orb_request_timeout)
    sandbox_options = {
        "rate_limit_requests_per_second": config.rate_limit_requests_per_second,
        "rate_limit_events_per_minute": config.rate_limit_events_per_minute,
        "ingest_valid_events_on_400": config.ingest_valid_events_on_400,
        "error_body": config.error_bodies[0],
    }
    stack_config = DevStackConfig(
        port=0,
        sandbox_port=0,
        faults=faults,
        send_test_webhook=False,
        user_env=user_env,
        local_visibility_timeout=visibility,
        sandbox_options=sandbox_options,
    )
    started = time.perf_counter()
    try:
        with DevStack(stack_config) as stack:
            stack.sandbox.rng.seed(config.seed)  # deterministic fault sequence for a given seed
            sender = Sender(stack, config, rng, report)
            kill_at = len(plan.requests) // 3 if config.kill_one_invocation else -1
            kill_done = threading.Event()

            def on_progress(position: int, count: int) -> None:
                bodies = config.error_bodies
                stack.sandbox.rules.error_body = bodies[(position // max(1, config.error_body_every)) % len(bodies)]
                if position == kill_at and not kill_done.is_set():
                    kill_done.set()
                    report.killed_invocation = kill_one_invocation(stack, killed_visibility)
                if progress is not None:
                    progress(stack, position, len(plan.requests))

            try:
                sender.send_all(plan, on_progress)
            finally:
                sender.close()
            report.send_seconds = time.perf_counter() - started
            report.http_statuses = dict(sender.statuses)

            valid_keys = plan.valid
            assert stack.local_aws is not None and stack.resources is not None
            sqs = stack.local_aws.client("sqs")
            ingest_queue_url = stack.resources.ingest_queue.url

            def in_ingest_queue() -> int:
                # Visible, in flight (an invocation has it, or the killed one had it) and delayed
                # (deferred copies): nothing is left to land once all three are 0.
                names = [
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ]
                attributes = sqs.get_queue_attributes(QueueUrl=ingest_queue_url, AttributeNames=names)["Attributes"]
                return sum(int(attributes.get(name, 0)) for name in names)

            def drained() -> bool:
                return stack.sandbox.ingested_count >= len(valid_keys) and in_ingest_queue() == 0

            # Returns as soon as it holds: the timeout only bounds a broken run.
            wait_until(drained, timeout=config.drain_timeout, interval=0.5)
            report.wall_seconds = time.perf_counter() - started
            left = in_ingest_queue()
            check(stack, plan, report)
            if left:
                report.failures.append(f"{left} messages still in the ingest queue after {config.drain_timeout:.0f} s")
            if config.kill_one_invocation and not report.killed_invocation.get("killed"):
                report.failures.append(f"the ingest invocation was not killed mid-flight: {report.killed_invocation}")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=SoakConfig.seed)
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    # make soak keeps the valid events of a 400; the test-suite soak (tests/integration/test_soak.py)
    # does not: together they cover both readings of Orb's undocumented behaviour.
    parser.add_argument(
        "--valid-events-of-400",
        choices=("ingested", "dropped"),
        default="ingested",
        help="whether the sandbox ingests the valid events of a request it answers 400",
    )
    parser.add_argument(
        "--rate-limit-requests-per-second", type=float, default=SoakConfig.rate_limit_requests_per_second
    )
    parser.add_argument("--rate-limit-events-per-minute", type=float, default=SoakConfig.rate_limit_events_per_minute)
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    last = [0.0]

    def progress(stack: Any, position: int, total: int) -> None:
        if time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            print(f"[{position + 1}/{total} requests] {stack.status_line()}", flush=True)

    config = SoakConfig(
        events=args.events,
        seed=args.seed,
        ingest_valid_events_on_400=args.valid_events_of_400 == "ingested",
        rate_limit_requests_per_second=args.rate_limit_requests_per_second,
        rate_limit_events_per_minute=args.rate_limit_events_per_minute,
    )
    report = run_soak(config, progress)
    print(report.summary())
    if args.json:
        print(json.dumps(asdict(report), indent=2, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
