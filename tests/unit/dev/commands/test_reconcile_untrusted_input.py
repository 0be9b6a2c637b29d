"""`orb-bridge reconcile` and `orb-bridge trace` read reports and archive objects from a bucket:
input, like anything else a stack holds. Malformed, oversized and hostile objects (not JSON, wrong
types, too deep, too large, gzip bombs, keys and names holding terminal escapes or bidi overrides)
are listed as unreadable, never crash a command, everything printed is escaped, and ``--json``
output parses as strict JSON."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.reconcile.archive_reader import MAX_ARCHIVE_OBJECT_BYTES
from orb_bridge_dev.commands import trace
from orb_bridge_dev.commands.reconcile import command as reconcile
from orb_bridge_dev.deployment.reconcile_reports import MAX_REPORT_BYTES
from tests.support.audit_archive import archive_body, archive_key, write_archive_object
from tests.support.orb_backfill_fake import FakeOrb
from tests.support.reconcile_stack import REGION, Recorder, create_reconcile_stack, run_command

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOUR = NOW - timedelta(hours=2)
HOUR_TEXT = HOUR.strftime("%Y-%m-%dT%H")
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\u202eevil\u2066"
ESCAPES = ("\x1b", "\x07", "\u202e", "\u2066")


@pytest.fixture
def stack():
    with mock_aws():
        aws.reset_clients()
        yield create_reconcile_stack()
    aws.reset_clients()


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def put_report(bucket: str, pass_name: str, body: bytes | str, hour: str = HOUR_TEXT) -> None:
    s3().put_object(Bucket=bucket, Key=f"reports/sent_hour={hour}/{pass_name}.json", Body=body)


def report(**fields: Any) -> str:
    base: dict[str, Any] = {
        "format": 1,
        "hour": HOUR_TEXT,
        "pass": "after-grace",
        "generated_at": "2026-03-10T11:00:00Z",
        "archived_keys": 3,
        "counts": {"present": 2, "not_found": 1, "deprecated": 0, "different": 0, "unattributed": 0},
        "not_present": {"not_found": ["k-1"]},
    }
    return json.dumps({**base, **fields})


def event(key: str, at: datetime = HOUR, **extra: Any) -> dict[str, Any]:
    return {
        "event_name": "payment_confirmed",
        "idempotency_key": key,
        "external_customer_id": "cust_1",
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "properties": {"amount": 1},
        **extra,
    }


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes gzip-compressed (about a thousandth of that), built a MiB at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    parts = [packer.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join([*parts, packer.flush()])


def assert_escaped(text: str) -> None:
    for char in ESCAPES:
        assert char not in text, f"{char!r} printed raw"


def reconcile_cli(*argv: str) -> tuple[int, str, str, Recorder]:
    recorder = Recorder(FakeOrb(now=lambda: NOW), {"api.withorb.com"})
    code, out, err = run_command(reconcile, list(argv), NOW, recorder.client(), pace=lambda: None)
    return code, out, err, recorder


def trace_cli(key: str, *argv: str) -> tuple[int, str, str]:
    recorder = Recorder(FakeOrb(now=lambda: NOW), {"api.withorb.com"})
    return run_command(trace, [key, *argv], NOW, recorder.client(), wait_seconds=0)


HOSTILE_REPORTS: list[tuple[str, bytes | str]] = [
    ("not-json", b"\x1b[2J this is not JSON"),
    ("not-utf8", b"\xff\xfe{\x00"),
    ("a-list", "[1, 2, 3]"),
    ("counts-a-string", report(counts="many")),
    ("too-deep", "[" * 100_000 + "]" * 100_000),
    ("huge-number", '{"counts": {}, "archived_keys": ' + "9" * 5000 + "}"),
    ("nan", '{"counts": {"present": NaN}, "archived_keys": Infinity, "volume": {"orb_count": -Infinity}}'),
]


def test_malformed_reports_are_listed_unreadable_and_the_rest_shown(stack) -> None:
    bucket = stack["AuditBucketName"]
    for name, body in HOSTILE_REPORTS:
        put_report(bucket, name, body)
    put_report(bucket, "oversized", b" " * (MAX_REPORT_BYTES + 1))
    put_report(bucket, "after-grace", report())

    code, out, err, _ = reconcile_cli()
    assert code == 0, err
    assert "unreadable report(s)" in out
    unreadable = ("not-json", "not-utf8", "a-list", "counts-a-string", "too-deep", "huge-number", "oversized")
    for name in unreadable:
        assert f"{name}.json" in out
    assert "k-1" in out  # the readable report still counts
    assert_escaped(out + err)

    code, out, err, _ = reconcile_cli("--json")
    document = json.loads(out, parse_constant=lambda text: pytest.fail(f"{text} in --json output"))
    (row,) = document["hours"]
    assert row["counts"]["not_found"] == 1 and row["not_present"] == {"not_found": ["k-1"]}
    assert sorted(row["unreadable_reports"]) == sorted(f"reports/sent_hour={HOUR_TEXT}/{n}.json" for n in unreadable)
    # a report that does not say when it was written never hides the latest one that does
    assert row["latest_pass"] == "after-grace"


def test_wrong_types_inside_a_report_read_as_nothing_never_crash(stack) -> None:
    put_report(
        stack["AuditBucketName"],
        "after-grace",
        report(
            generated_at=12,
            archived_keys="3",
            counts={"present": True, "not_found": [1], "deprecated": {"x": 1}, HOSTILE: 7},
            not_present={"not_found": [HOSTILE, 5, {"a": None}], "deprecated": HOSTILE, HOSTILE: ["x"]},
            volume={"orb_count": HOSTILE, "expected_at_least": [1]},
            **{"pass": HOSTILE},
        ),
    )
    code, out, err, _ = reconcile_cli("--repair")
    assert code == 0, err
    assert_escaped(out + err)
    assert "\\x1b]0;pwned\\x07" in out and "\\u202eevil" in out  # shown, escaped
    json.loads(reconcile_cli("--json", "--repair")[1])


def test_hostile_keys_in_a_report_and_the_archive_are_escaped_in_the_repair_plan(stack) -> None:
    bucket = stack["AuditBucketName"]
    put_report(bucket, "after-grace", report(not_present={"not_found": [HOSTILE, "missing-key"]}))
    write_archive_object(s3(), bucket, [event(HOSTILE, event_name=HOSTILE)], HOUR)

    code, out, err, _ = reconcile_cli("--repair")
    assert code == 0, err
    assert "would re-send 1 event(s)" in out and "missing-key" in out
    assert_escaped(out + err)
    document = json.loads(reconcile_cli("--repair", "--json")[1])
    assert document["repair"]["resend"] == [HOSTILE] and document["repair"]["not_archived"] == ["missing-key"]


BAD_ARCHIVE_OBJECTS: list[tuple[str, bytes]] = [
    ("not-gzip", b"\x1b[2J plain text"),
    ("gzip-not-json", gzip.compress(b"\x1b[2J\n{{{\n")),
    ("no-header", gzip.compress(json.dumps({"event": event("k-1")}).encode())),
    (
        "wrong-types",
        gzip.compress(
            b'{"header": {"format": 1, "source": "ingest", "events": 1}}\n{"event": {"idempotency_key": 5}}\n'
        ),
    ),
    ("truncated", archive_body([event("k-1")], HOUR)[:-12]),
    ("too-deep", gzip.compress(b"[" * 100_000)),
]


def test_unreadable_archive_objects_are_listed_by_repair_and_trace(stack) -> None:
    bucket = stack["AuditBucketName"]
    put_report(bucket, "after-grace", report(not_present={"not_found": ["k-1"]}))
    prefix = archive_key(HOUR).rsplit("/", 1)[0]
    for name, body in BAD_ARCHIVE_OBJECTS:
        s3().put_object(Bucket=bucket, Key=f"{prefix}/{name}{HOSTILE}.jsonl.gz", Body=body)
    write_archive_object(s3(), bucket, [event("k-1")], HOUR)

    code, out, err, _ = reconcile_cli("--repair")
    assert code == 0, err
    assert "would re-send 1 event(s)" in out
    assert out.count("unreadable archive object") == len(BAD_ARCHIVE_OBJECTS)
    for name, _ in BAD_ARCHIVE_OBJECTS:
        assert name in out
    assert_escaped(out + err)
    document = json.loads(reconcile_cli("--repair", "--json")[1])
    assert len(document["repair"]["unreadable_archive_objects"]) == len(BAD_ARCHIVE_OBJECTS)

    code, out, err = trace_cli("k-1", "--since", "3h")
    assert code == 0, err
    assert "archive: sent" in out and out.count("unreadable archive object") == len(BAD_ARCHIVE_OBJECTS)
    assert_escaped(out + err)
    result = json.loads(trace_cli("k-1", "--since", "3h", "--json")[1])
    assert len(result["archive"]) == 1 and len(result["archive_unreadable"]) == len(BAD_ARCHIVE_OBJECTS)


def test_a_gzip_bomb_is_refused_without_inflating_it(stack) -> None:
    """An object inflating past MAX_ARCHIVE_OBJECT_BYTES is unreadable: never decompressed whole."""
    bucket = stack["AuditBucketName"]
    put_report(bucket, "after-grace", report())
    bomb = gzip_bomb(2 * MAX_ARCHIVE_OBJECT_BYTES)
    assert len(bomb) < MAX_ARCHIVE_OBJECT_BYTES // 100
    s3().put_object(Bucket=bucket, Key=archive_key(HOUR, request_id="bomb"), Body=bomb)
    s3().put_object(Bucket=bucket, Key=archive_key(HOUR, request_id="big"), Body=b"\0" * (MAX_ARCHIVE_OBJECT_BYTES + 1))
    write_archive_object(s3(), bucket, [event("k-1")], HOUR)

    code, out, err, _ = reconcile_cli("--repair")
    assert code == 0, err
    assert "would re-send 1 event(s)" in out and "bomb-00001" in out and "big-00001" in out
    assert "larger than" in out
    code, out, err = trace_cli("k-1", "--since", "3h")
    assert code == 0 and "bomb-00001" in out and "big-00001" in out


def test_a_hostile_key_asked_of_trace_is_escaped(stack) -> None:
    write_archive_object(s3(), stack["AuditBucketName"], [event(HOSTILE, event_name=HOSTILE)], HOUR)
    code, out, err = trace_cli(HOSTILE, "--since", "3h")
    assert code == 0, err
    assert "archive: sent" in out
    assert_escaped(out + err)
    result = json.loads(trace_cli(HOSTILE, "--since", "3h", "--json")[1])
    assert result["key"] == HOSTILE and result["archive"][0]["event"]["event_name"] == HOSTILE


def test_non_finite_numbers_in_an_archived_event_still_give_strict_json(stack) -> None:
    body = gzip.compress(
        b'{"header": {"format": 1, "source": "ingest", "events": 1, "sent_at": "x"}}\n'
        b'{"event": {"idempotency_key": "k-nan", "timestamp": "2026-03-10T10:00:00Z", "properties": {"amount": NaN, "big": 1e999}}}\n'
    )
    s3().put_object(Bucket=stack["AuditBucketName"], Key=archive_key(HOUR, request_id="nan"), Body=body)
    code, out, err = trace_cli("k-nan", "--since", "3h", "--json")
    assert code == 0, err
    result = json.loads(out, parse_constant=lambda text: pytest.fail(f"{text} in --json output"))
    assert result["archive"][0]["event"]["properties"] == {"amount": "NaN", "big": "Infinity"}
