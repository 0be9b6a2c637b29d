"""Orb webhook signature verification. Signatures are computed here with ``hmac`` directly,
exactly as docs/facts.md#orb-webhook-signatures describes Orb's scheme, so a bug shared by
``sign`` and ``verify`` shows."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from orb_bridge.core.http_request import header
from orb_bridge.webhooks.signature import (
    RejectionReason,
    WebhookVerificationError,
    format_timestamp,
    parse_timestamp,
    sign,
    verify,
)

SECRET = "dev-secret-test_7f3a9c"
OTHER_SECRET = "dev-secret-rotated_b21e"
NOW = datetime(2024, 3, 27, 15, 42, 29, 551000, tzinfo=UTC)
TIMESTAMP = "2024-03-27T15:42:29.551"  # Orb's style: no offset, read as UTC
BODY = b'{"id": "whk_1", "created_at": "2024-03-27T15:42:29+00:00", "type": "resource_event.test", "properties": {}}'


def orb_signature(secret: str, timestamp: str, body: bytes) -> str:
    message = b"v1:" + timestamp.encode("utf-8") + b":" + body
    return "v1=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def check(body=BODY, timestamp=TIMESTAMP, signature=None, secrets=(SECRET,), now=NOW, tolerance=300.0):
    if signature is None:
        signature = orb_signature(SECRET, timestamp, body)
    verify(body, timestamp, signature, secrets=secrets, tolerance_seconds=tolerance, now=now)


def rejected(**kwargs) -> RejectionReason:
    with pytest.raises(WebhookVerificationError) as info:
        check(**kwargs)
    return info.value.reason


def test_valid_signature_passes():
    check()


def test_sign_matches_independent_hmac():
    assert sign(SECRET, TIMESTAMP, BODY) == orb_signature(SECRET, TIMESTAMP, BODY)
    assert sign(SECRET, TIMESTAMP, BODY.decode()) == orb_signature(SECRET, TIMESTAMP, BODY)


def test_secret_is_used_as_utf8_bytes_not_base64_decoded():
    secret = "c2VjcmV0"  # valid base64 (of "secret"); Orb keys HMAC with the literal UTF-8 bytes
    check(signature=orb_signature(secret, TIMESTAMP, BODY), secrets=(secret,))


def test_several_entries_one_valid():
    good = orb_signature(SECRET, TIMESTAMP, BODY)
    bad = orb_signature("nope", TIMESTAMP, BODY)
    check(signature=f"{bad} v0=abc {good} v1=zz")
    check(signature=f"{good}  {bad}")


def test_rotation_second_secret_verifies():
    signature = orb_signature(OTHER_SECRET, TIMESTAMP, BODY)
    check(signature=signature, secrets=(SECRET, OTHER_SECRET))
    assert rejected(signature=signature, secrets=(SECRET,)) is RejectionReason.SIGNATURE_MISMATCH


def test_wrong_secret_rejected():
    assert rejected(signature=orb_signature("dev-secret-wrong", TIMESTAMP, BODY)) is RejectionReason.SIGNATURE_MISMATCH


def test_tampered_body_rejected():
    signature = orb_signature(SECRET, TIMESTAMP, BODY)
    assert rejected(body=BODY.replace(b"whk_1", b"whk_2"), signature=signature) is RejectionReason.SIGNATURE_MISMATCH


def test_reserialised_body_rejected():
    signature = orb_signature(SECRET, TIMESTAMP, BODY)
    reserialised = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert reserialised != BODY
    assert rejected(body=reserialised, signature=signature) is RejectionReason.SIGNATURE_MISMATCH


def test_parsed_body_refused_outright():
    with pytest.raises(TypeError):
        verify(json.loads(BODY), TIMESTAMP, orb_signature(SECRET, TIMESTAMP, BODY), secrets=(SECRET,), now=NOW)


def test_timestamp_header_signed_as_received():
    # Same instant, other spelling: the signature covers the header text, not the instant.
    signature = orb_signature(SECRET, TIMESTAMP, BODY)
    assert rejected(timestamp=TIMESTAMP + "Z", signature=signature) is RejectionReason.SIGNATURE_MISMATCH


@pytest.mark.parametrize("missing", ["timestamp", "signature"])
@pytest.mark.parametrize("value", [None, ""])
def test_each_header_missing(missing, value):
    signature = orb_signature(SECRET, TIMESTAMP, BODY)
    timestamp, sig = (value, signature) if missing == "timestamp" else (TIMESTAMP, value)
    with pytest.raises(WebhookVerificationError) as info:
        verify(BODY, timestamp, sig, secrets=(SECRET,), now=NOW)
    expected = RejectionReason.MISSING_TIMESTAMP if missing == "timestamp" else RejectionReason.MISSING_SIGNATURE
    assert info.value.reason is expected


def _hex() -> str:
    return orb_signature(SECRET, TIMESTAMP, BODY).removeprefix("v1=")


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(lambda h: f"v2={h}", id="v2-only"),
        pytest.param(lambda h: f"v0={h}", id="v0-only"),
        pytest.param(lambda h: f"V1={h}", id="uppercase-version"),
        pytest.param(lambda h: h, id="bare-hex"),
        pytest.param(lambda h: f"v1{h}", id="entry-without-equals"),
        pytest.param(lambda h: f"v1={h}=", id="two-equals"),
        pytest.param(lambda h: f"v1={h[:-2]}", id="too-short"),
        pytest.param(lambda h: f"v1={h}00", id="too-long"),
        pytest.param(lambda h: f"v1={h[:-1]}g", id="non-hex"),
        pytest.param(lambda h: "v1=", id="empty-value"),
        pytest.param(lambda h: "=", id="lone-equals"),
        pytest.param(lambda h: "   ", id="only-spaces"),
        pytest.param(lambda h: "v1=" + "é" * 64, id="non-ascii"),
    ],
)
def test_malformed_entries_rejected_without_crashing(signature):
    assert rejected(signature=signature(_hex())) in {RejectionReason.NO_V1_SIGNATURE}


def test_malformed_entries_are_skipped_next_to_a_valid_one():
    good = orb_signature(SECRET, TIMESTAMP, BODY)
    check(signature=f"garbage v2={_hex()} {_hex()} v1= == {good}")


def test_uppercase_hex_accepted():
    # Orb emits lowercase; comparing case-insensitively is harmless (same 256-bit value).
    check(signature="v1=" + _hex().upper())


def test_repeated_header_joined_with_comma_still_verifies():
    bad = orb_signature("nope", TIMESTAMP, BODY)
    check(signature=f"{bad},{orb_signature(SECRET, TIMESTAMP, BODY)}")


@pytest.mark.parametrize("direction", [-1, 1])
def test_tolerance_boundary_both_directions(direction):
    tolerance = 300
    # direction -1: the timestamp is in the past (old); +1: in the future (clock skew).
    inside = NOW + direction * timedelta(seconds=tolerance - 1)
    outside = NOW + direction * timedelta(seconds=tolerance + 1)
    for moment, ok in ((inside, True), (outside, False)):
        timestamp = format_timestamp(moment)
        signature = orb_signature(SECRET, timestamp, BODY)
        if ok:
            check(timestamp=timestamp, signature=signature, tolerance=tolerance)
        else:
            reason = rejected(timestamp=timestamp, signature=signature, tolerance=tolerance)
            assert reason is (RejectionReason.TIMESTAMP_TOO_OLD if direction < 0 else RejectionReason.TIMESTAMP_TOO_NEW)


def test_configured_tolerance_is_used():
    timestamp = format_timestamp(NOW - timedelta(seconds=61))
    signature = orb_signature(SECRET, timestamp, BODY)
    check(timestamp=timestamp, signature=signature, tolerance=62)
    assert rejected(timestamp=timestamp, signature=signature, tolerance=60) is RejectionReason.TIMESTAMP_TOO_OLD


@pytest.mark.parametrize(
    "timestamp",
    [
        "NaN",
        "nan",
        "inf",
        "-inf",
        "1711554149",
        "not a time",
        "2024-13-45T99:99:99",
        " ",
        "2024-03-27T15:42:29.551 ",
        "２０２４-03-27T15:42:29",
        "x" * 500,
    ],
)
def test_unparseable_timestamps_rejected(timestamp):
    # Correctly signed, so only the timestamp can be the reason.
    signature = orb_signature(SECRET, timestamp, BODY)
    assert rejected(timestamp=timestamp, signature=signature) is RejectionReason.INVALID_TIMESTAMP


def test_timestamp_without_offset_is_utc_not_local(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    if hasattr(time, "tzset"):
        time.tzset()
    try:
        assert parse_timestamp(TIMESTAMP) == NOW
        check()
    finally:
        monkeypatch.delenv("TZ")
        if hasattr(time, "tzset"):
            time.tzset()


@pytest.mark.parametrize("offset_hours", [0, 2, -7, 5.5])
def test_timestamp_with_offset(offset_hours):
    zone = timezone(timedelta(hours=offset_hours))
    timestamp = NOW.astimezone(zone).isoformat(timespec="milliseconds")
    check(timestamp=timestamp, signature=orb_signature(SECRET, timestamp, BODY))
    # The offset is honoured: the same wall-clock time read as UTC would be hours away.
    if offset_hours:
        naive = NOW.astimezone(zone).replace(tzinfo=None).isoformat(timespec="milliseconds")
        reason = rejected(timestamp=naive, signature=orb_signature(SECRET, naive, BODY))
        assert reason in {RejectionReason.TIMESTAMP_TOO_OLD, RejectionReason.TIMESTAMP_TOO_NEW}


def test_z_suffix_accepted():
    timestamp = TIMESTAMP + "Z"
    check(timestamp=timestamp, signature=orb_signature(SECRET, timestamp, BODY))


def test_no_secrets_fails_closed():
    assert rejected(secrets=()) is RejectionReason.NO_SECRET
    assert rejected(secrets=("",)) is RejectionReason.NO_SECRET


def test_binary_body_verified_as_bytes():
    body = bytes(range(256))
    check(body=body, signature=orb_signature(SECRET, TIMESTAMP, body))


def test_header_lookup_is_case_insensitive():
    assert header({"x-orb-signature": "a"}, "X-Orb-Signature") == "a"
    assert header({"X-ORB-SIGNATURE": "b"}, "X-Orb-Signature") == "b"
    assert header({}, "X-Orb-Signature") is None
    assert header(None, "X-Orb-Signature") is None
    assert header({"x-orb-signature": 5}, "X-Orb-Signature") is None


def test_format_timestamp_matches_orb_style():
    assert format_timestamp(NOW) == TIMESTAMP
    assert format_timestamp(NOW.astimezone(timezone(timedelta(hours=3)))) == TIMESTAMP
