"""The fault-injection soak (bench/soak.py) at a size that fits the test suite.

Through the dev stack over loopback HTTP: Segment requests (single, array and ``{"batch"}``),
2% invalid (a third of those well-formed but stale or in the future: only Orb refuses them, with
a whole-request 400 naming them in a rotating body form, keeping none of that request's valid
events), ~5% re-sent, the Orb sandbox rate-limited (2 requests/s, 12,000 events/min) and
injecting 500s, 429s, timeouts and dropped connections, and one ingest invocation SIGKILLed
while the sandbox holds its second request. ``make soak`` runs the same with 100,000 events and
the valid events of a 400 kept.

3,000 events here (about 45 s on two shared cores; SOAK_TEST_EVENTS changes the size): enough for
every fault to happen every run. The plan (invalid, stale, future and re-sent events) comes from
the seed, so their counts are fixed; the sandbox draws one fault per ingest request from its own
rng seeded alike, so the first draws are fixed too, whatever the timing. TEST_SEED's first seven
draws hold a dropped connection, a 500, a timeout and a 429, and any run sends Orb more than seven
ingest requests (~2,900 valid events at most 500 per request, plus each whole-request 400's
re-send).
"""

from __future__ import annotations

import os
import random

import pytest

from bench.soak import SoakConfig, run_soak
from orb_bridge_dev.orb_sandbox import FaultConfig

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:No application metrics to publish")]


TEST_EVENTS = 3_000
# Its first fault draws: None, drop_connection, error_500, None, timeout, None, error_429.
TEST_SEED = 20262344
INJECTED = ("error_500", "error_429", "timeout", "drop_connection")


def test_the_seed_puts_every_injected_fault_in_the_first_seven_requests() -> None:
    """What makes the soak's "every fault happened" assertion hold on every run, at any timing."""
    config = SoakConfig(seed=TEST_SEED)
    faults = FaultConfig(
        error_500_rate=config.error_500_rate,
        error_429_rate=config.error_429_rate,
        timeout_rate=config.timeout_rate,
        drop_connection_rate=config.drop_connection_rate,
    )
    rng = random.Random(TEST_SEED)
    assert set(INJECTED) <= {faults.draw(rng) for _ in range(7)}


def test_soak_every_valid_event_billed_once_and_every_invalid_one_kept() -> None:
    config = SoakConfig(
        events=int(os.environ.get("SOAK_TEST_EVENTS", str(TEST_EVENTS))),
        max_queue_depth=1000,
        ingest_valid_events_on_400=False,
        seed=TEST_SEED,
    )

    report = run_soak(config)

    print(report.summary())
    assert report.failures == []
    assert report.valid_events > 0 and report.invalid_events > 0 and report.resent_events > 0
    assert report.ingested == report.valid_events and report.missing == 0
    assert report.duplicates_billed == 0 and report.extra_keys == 0 and report.content_mismatches == 0
    assert report.invalid_on_rejected_queue == report.invalid_events and report.valid_on_rejected_queue == 0
    # Orb, not intake, refused some, and kept them with its own words; Orb's 400s answered. How
    # often the rate limit answers 429 depends on timing (reported, not asserted); the seeded
    # injected 429s take the same path.
    assert report.refused_by_orb > 0 and report.refused_by_orb_kept_with_orbs_reason == report.refused_by_orb
    assert report.orb_validation_400s > 0
    # The faults really happened, and the killed invocation had part of its batch in Orb (the
    # sandbox held its next request until the kill: no race).
    assert report.orb_requests > 7, report.orb_requests
    assert all(report.orb_outcomes.get(name, 0) > 0 for name in INJECTED), report.orb_outcomes
    assert report.killed_invocation["killed"] and report.killed_invocation["in_orb_at_kill"] > 0
