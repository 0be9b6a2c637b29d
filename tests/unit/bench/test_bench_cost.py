"""The bench's cost model: the batch sizes the stated rates produce, and the archive's items."""

from __future__ import annotations

import pytest

from bench import cost


@pytest.fixture
def facts() -> cost.TemplateFacts:
    return cost.template_facts()


def test_the_template_defaults_are_read(facts: cost.TemplateFacts) -> None:
    assert (facts.ingest_batch_size, facts.ingest_batching_window_seconds, facts.audit_retention_days) == (2000, 5, 400)


def test_a_low_rate_fills_only_the_window_and_a_high_one_the_batch(facts: cost.TemplateFacts) -> None:
    assert facts.ingest_batch_at(20, 300) == 100  # 20 events/s x 5 s
    assert facts.ingest_batch_at(1_000, 300) == 2000  # 5,000 would arrive: IngestBatchSize caps it
    assert facts.ingest_batch_at(0.01, 300) == 1


def test_six_megabytes_of_payload_cap_a_batch(facts: cost.TemplateFacts) -> None:
    assert facts.ingest_batch_at(1_000, 6 * 1024) == 1024


def test_archive_items_follow_the_counted_puts_and_measured_bytes(facts: cost.TemplateFacts) -> None:
    rows = dict(
        (name, usd)
        for name, usd, _ in cost.archive_and_logs_per_million(
            facts=facts,
            ingest_batch_size=2000,
            puts_per_invocation=4,
            archive_bytes_per_event=100.0,
            orb_requests_per_invocation=4,
            ingest_log_bytes_per_invocation=0,
            intake_requests=0,
            intake_log_bytes_per_request=0,
        )
    )
    assert rows["S3 PUT (audit archive)"] == pytest.approx(2000 * 0.005 / 1000)
    # 100 MB (1e8 bytes) for 400 days at $0.023 per GB-month
    assert rows["S3 storage, 400 days"] == pytest.approx(1e8 / 1024**3 * 0.023 * 400 / (365 / 12))
    assert rows["DynamoDB pacing table"] == pytest.approx(2000 * 1 * 0.625 / 1e6)  # one write per Orb request
    assert rows["CloudWatch Logs"] == 0
