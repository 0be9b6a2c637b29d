"""The sandbox's switches reach it from both command lines."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from orb_bridge_dev import cli
from orb_bridge_dev.orb_sandbox import cli as sandbox_cli


def test_orb_bridge_dev_passes_the_sandbox_switches_to_the_dev_stack() -> None:
    args = cli.build_parser().parse_args(
        [
            "dev",
            "--error-body",
            "strings",
            "--ingest-valid-events-on-400",
            "--future-limit-minutes",
            "60",
            "--grace-period-hours",
            "1",
            "--rate-limit-requests-per-second",
            "10",
            "--rate-limit-events-per-minute",
            "2000",
            "--backfill-reflect-seconds",
            "30",
            "--dedupe-within-backfill",
        ]
    )
    assert cli.behaviour_from_args(args) == {
        "grace_period": timedelta(hours=1),
        "future_limit": timedelta(minutes=60),
        "ingest_valid_events_on_400": True,
        "error_body": "strings",
        "rate_limit_requests_per_second": 10.0,
        "rate_limit_events_per_minute": 2000.0,
        "backfill_reflect_delay": timedelta(seconds=30),
        "dedupe_within_backfill": True,
    }


def test_defaults_are_orbs_strict_reading_with_limits_off() -> None:
    sandbox = sandbox_cli.sandbox_from_args(sandbox_cli.build_parser().parse_args([]))
    assert sandbox.rules.grace_period == timedelta(hours=12) and sandbox.rules.future_limit == timedelta(minutes=5)
    assert sandbox.rules.error_body == "validation_failed" and sandbox.rules.ingest_valid_events_on_400 is False
    assert not sandbox.rate_limiter.enabled and sandbox.host == "127.0.0.1"
    # Orb documents no deduplication within a backfill: by default a key sent twice is billed twice.
    assert sandbox.dedupe_within_backfill is False and sandbox.backfill_reflect_delay == timedelta(0)
    assert sandbox.faults.backfill_answer_lost_rate == 0.0


def test_orb_bridge_sandbox_flags_configure_the_sandbox() -> None:
    args = sandbox_cli.build_parser().parse_args(
        [
            "--port",
            "0",
            "--error-body",
            "opaque",
            "--rate-limit-events-per-minute",
            "600",
            "--error-500-rate",
            "0.5",
            "--seed",
            "3",
            "--backfill-answer-lost-rate",
            "0.25",
            "--backfill-answer-lost-as",
            "500",
            "--backfill-reflect-seconds",
            "5",
        ]
    )
    sandbox = sandbox_cli.sandbox_from_args(args)
    assert sandbox.rules.error_body == "opaque" and sandbox.rate_limiter.events_per_minute == 600
    assert sandbox.faults.error_500_rate == 0.5
    assert sandbox.faults.backfill_answer_lost_rate == 0.25 and sandbox.faults.backfill_answer_lost_as == "500"
    assert sandbox.backfill_reflect_delay == timedelta(seconds=5)


def test_building_the_cli_parser_does_not_import_the_http_server() -> None:
    code = (
        "import sys; from orb_bridge_dev import cli; cli.build_parser(); "
        "print(sorted(m for m in ('werkzeug', 'httpx', 'orb_bridge_dev.orb_sandbox.server') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
