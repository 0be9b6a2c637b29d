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

This module runs it; the parts live beside it: ``soak_config`` (what it is told and reports),
``soak_traffic`` (the Segment side), ``soak_kill`` (the killed invocation), ``soak_check`` (the verdict).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import soak_reconcile
from bench.soak_check import check
from bench.soak_config import AUTH_TOKEN, PROPERTIES_MAPPING, SoakConfig, SoakReport
from bench.soak_kill import kill_one_invocation
from bench.soak_traffic import Sender, plan_requests

ROOT = Path(__file__).resolve().parent.parent


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
            soak_reconcile.start_recording(stack)
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
            # Ends with a reconciliation: every valid event archived and present in Orb.
            report.reconciliation, failures = soak_reconcile.reconcile(stack, set(valid_keys), run_id)
            report.failures.extend(failures)
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
