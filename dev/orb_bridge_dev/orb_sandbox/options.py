"""The sandbox's command-line options, shared by ``orb-bridge sandbox`` and ``orb-bridge dev``.

Standard library only (plus the light ``faults`` and ``validation`` modules), so that building
the ``orb-bridge`` parser does not import the HTTP server.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from orb_bridge_dev.orb_sandbox.faults import FaultConfig
from orb_bridge_dev.orb_sandbox.validation import ERROR_BODY_VARIANTS


def add_behaviour_arguments(parser: argparse.ArgumentParser) -> None:
    """Orb's rules and limits (shared with ``orb-bridge dev``)."""
    group = parser.add_argument_group("Orb sandbox behaviour")
    group.add_argument(
        "--grace-period-hours", type=float, default=12.0, help="older events need a backfill (Orb's default 12)"
    )
    group.add_argument(
        "--future-limit-minutes",
        type=float,
        default=5.0,
        help="events further ahead are invalid (Orb's texts say 5, 60 or 1440; default 5)",
    )
    group.add_argument(
        "--ingest-valid-events-on-400",
        action="store_true",
        help="when a request is answered 400, still ingest its valid events (default: ingest none)",
    )
    group.add_argument(
        "--error-body",
        choices=ERROR_BODY_VARIANTS,
        default="validation_failed",
        help="shape of the 400's per-event failures (Orb does not publish it; default validation_failed)",
    )
    group.add_argument(
        "--rate-limit-requests-per-second",
        type=float,
        default=0.0,
        help="answer 429 + Retry-After above this many ingest requests/s (0 = off; Orb live: 100)",
    )
    group.add_argument(
        "--rate-limit-events-per-minute",
        type=float,
        default=0.0,
        help="answer 429 + Retry-After above this many ingested events/min (0 = off; Orb live: 10000)",
    )
    group.add_argument(
        "--backfill-reflect-seconds",
        type=float,
        default=0.0,
        help="a closed backfill stays pending, its events hidden, this long before it is reflected (default 0)",
    )
    group.add_argument(
        "--dedupe-within-backfill",
        action="store_true",
        help="a backfill takes each key once (default: a key sent twice is billed twice, the costly reading)",
    )


def add_fault_arguments(parser: argparse.ArgumentParser, *, full: bool = True) -> None:
    group = parser.add_argument_group("Orb sandbox faults (per ingest request)")
    group.add_argument("--error-500-rate", type=float, default=0.0, help="probability of a 500 (default 0)")
    group.add_argument("--error-429-rate", type=float, default=0.0, help="probability of a 429 (default 0)")
    group.add_argument("--latency-seconds", type=float, default=0.0, help="added latency (default 0)")
    group.add_argument("--drop-connection-rate", type=float, default=0.0, help="probability of a dropped connection")
    group.add_argument(
        "--timeout-rate", type=float, default=0.0, help="probability of hanging past the client's timeout (default 0)"
    )
    group.add_argument(
        "--lose-rate",
        type=float,
        default=0.0,
        help="probability that an accepted event is silently not kept though the answer is 200 (default 0)",
    )
    if full:
        group.add_argument("--timeout-seconds", type=float, default=30.0, help="how long a timeout fault hangs")
        group.add_argument("--retry-after-seconds", type=float, default=None, help="retry-after on injected 429s")
        group.add_argument("--seed", type=int, default=None, help="seed of the fault draws")
        group.add_argument(
            "--backfill-answer-lost-rate",
            type=float,
            default=0.0,
            help="probability that an /ingest?backfill_id= request is ingested but its answer lost (default 0)",
        )
        group.add_argument(
            "--backfill-answer-lost-as",
            choices=("drop", "500"),
            default="drop",
            help="how a lost answer looks: a dropped connection or a 500 (default drop)",
        )


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    return FaultConfig(
        error_500_rate=args.error_500_rate,
        error_429_rate=args.error_429_rate,
        latency_seconds=args.latency_seconds,
        timeout_rate=args.timeout_rate,
        timeout_seconds=getattr(args, "timeout_seconds", 30.0),
        drop_connection_rate=args.drop_connection_rate,
        retry_after_seconds=getattr(args, "retry_after_seconds", None),
        backfill_answer_lost_rate=getattr(args, "backfill_answer_lost_rate", 0.0),
        backfill_answer_lost_as=getattr(args, "backfill_answer_lost_as", "drop"),
        lose_rate=getattr(args, "lose_rate", 0.0),
    )


def behaviour_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``OrbSandbox`` keyword arguments for the behaviour flags."""
    return {
        "grace_period": timedelta(hours=args.grace_period_hours),
        "future_limit": timedelta(minutes=args.future_limit_minutes),
        "ingest_valid_events_on_400": args.ingest_valid_events_on_400,
        "error_body": args.error_body,
        "rate_limit_requests_per_second": args.rate_limit_requests_per_second,
        "rate_limit_events_per_minute": args.rate_limit_events_per_minute,
        "backfill_reflect_delay": timedelta(seconds=args.backfill_reflect_seconds),
        "dedupe_within_backfill": args.dedupe_within_backfill,
    }
