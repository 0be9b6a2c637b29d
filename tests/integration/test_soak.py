"""The fault-injection soak (bench/soak.py) at a size that fits the test suite.

Through the dev stack over loopback HTTP: Segment requests (single, array and ``{"batch"}``),
2% invalid, ~5% re-sent, the Orb sandbox injecting 500s, 429s, timeouts and dropped connections,
and one ingest invocation SIGKILLed mid-flight. ``make soak`` runs the same with 100,000 events.
About 30 s on two cores; SOAK_TEST_EVENTS changes the size.
"""

from __future__ import annotations

import os

import pytest

from bench.soak import SoakConfig, run_soak

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:No application metrics to publish")]


def test_soak_every_valid_event_billed_once_and_every_invalid_one_kept() -> None:
    config = SoakConfig(events=int(os.environ.get("SOAK_TEST_EVENTS", "10000")), max_queue_depth=1000)

    report = run_soak(config)

    print(report.summary())
    assert report.failures == []
    assert report.valid_events > 0 and report.invalid_events > 0 and report.resent_events > 0
    assert report.ingested == report.valid_events and report.missing == 0
    assert report.duplicates_billed == 0 and report.extra_keys == 0 and report.content_mismatches == 0
    assert report.invalid_on_rejected_queue == report.invalid_events and report.valid_on_rejected_queue == 0
    # The faults really happened, and the killed invocation had sent part of its batch to Orb.
    injected = ("error_500", "error_429", "timeout", "drop_connection")
    assert sum(report.orb_outcomes.get(name, 0) for name in injected) > 0, report.orb_outcomes
    assert report.killed_invocation["killed"] and 0 < report.killed_invocation["in_orb_at_kill"]
