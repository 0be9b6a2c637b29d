"""A basis read back is outside input: anything but the shape a final pass writes, or larger than
the bound stored or inflated, is refused with a reason (the daily pass then reads the archive)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orb_bridge.reconcile import basis
from orb_bridge.reconcile.basis import BasisError, basis_key, parse_basis, read_basis

HOUR = "2026-03-02T10"
EVENT = {"idempotency_key": "k1", "timestamp": "2026-03-02T10:00:00.000Z", "properties": {}, "event_name": "e"}


def document(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "format": 1,
        "hour": HOUR,
        "archived_keys": 2,
        "present_keys": 1,
        "sample": [EVENT],
        "not_present": [{**EVENT, "idempotency_key": "k2"}],
        "not_present_unlisted": 0,
        "present_by_event_hour": {HOUR: 1},
        "unchecked_by_event_hour": {},
        "archived_by_event_hour": {HOUR: 2},
        "reverted_backfill_events": 0,
    }
    base.update(overrides)
    return base


def packed(value: Any) -> bytes:
    return gzip.compress(json.dumps(value).encode(), mtime=0)


def test_a_written_basis_reads_back_with_its_events_ordered_by_key() -> None:
    read = parse_basis(packed(document()), HOUR)
    assert [event["idempotency_key"] for event in read.events()] == ["k1", "k2"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x1f\x8b garbage", "not gzip JSON"),
        (packed([1, 2]), "not a format 1 basis"),
        (packed(document(hour="2026-03-02T11")), "the basis of another hour"),
        (packed(document(archived_keys=True)), "archived_keys is not a count"),
        (packed(document(present_keys=-1)), "present_keys is not a count"),
        (packed(document(sample=[{"idempotency_key": 5}])), "sample holds an entry that is not an archived event"),
        (packed(document(not_present={"k": 1})), "not_present is not a list of events"),
        (packed(document(present_by_event_hour={HOUR: "1"})), "present_by_event_hour is not a map"),
        (gzip.compress(b"[" * 100_000 + b"]" * 100_000, mtime=0), "not gzip JSON"),  # nested past the recursion limit
        (gzip.compress(b" " * (basis.MAX_BASIS_BYTES + 1), mtime=0), "inflates to more than"),
    ],
)
def test_a_hostile_basis_is_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BasisError, match=reason):
        parse_basis(body, HOUR)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="audit")
        yield client


def test_a_basis_stored_larger_than_the_bound_is_refused_unread(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(basis, "MAX_BASIS_BYTES", 1000)
    s3.put_object(Bucket="audit", Key=basis_key(HOUR), Body=b"x" * 1001)
    assert read_basis(s3, "audit", HOUR) == (None, "basis refused: larger than 1000 bytes")


def test_no_basis_is_said_so(s3: Any) -> None:
    found, why = read_basis(s3, "audit", HOUR)
    assert found is None and why.startswith("no basis")
