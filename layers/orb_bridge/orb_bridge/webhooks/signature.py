"""Orb webhook signatures, verified exactly as Orb signs them (docs/facts.md#orb-webhook-signatures).

Signed bytes: ``b"v1:" + <X-Orb-Timestamp as received> + b":" + <raw body>``, HMAC-SHA256 keyed
with the secret's UTF-8 bytes. ``X-Orb-Signature`` holds one or more space-separated
``v1=<hex>`` entries; any entry matching any configured secret passes. Modelled on the
verifiers in Orb's and Stripe's SDKs, with their known pitfalls closed:

- the body is the raw bytes as delivered, never parsed and re-serialised;
- the timestamp is checked in both directions, an offset-less timestamp is UTC, and anything
  unparseable (empty, ``NaN``, garbage) is rejected;
- malformed entries (no ``=``, other versions, bare or non-hex or wrong-length values) are
  skipped, never crash;
- hex case: Orb emits lowercase; we compare case-insensitively, which cannot weaken anything
  (the same 256-bit value either way).

Failures raise ``WebhookVerificationError`` whose ``reason`` is a short, fixed code (a metric
dimension and log field) and whose ``detail`` explains it for the log only; callers answer the
sender with a generic message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum

SIGNATURE_VERSION = "v1"
TIMESTAMP_HEADER = "X-Orb-Timestamp"
SIGNATURE_HEADER = "X-Orb-Signature"
DEFAULT_TOLERANCE_SECONDS = 300.0
# Orb's timestamps are ~23 characters; anything much longer is not a timestamp.
MAX_TIMESTAMP_LENGTH = 64
_HEX_DIGEST_LENGTH = hashlib.sha256().digest_size * 2
_HEX = re.compile(rf"[0-9a-fA-F]{{{_HEX_DIGEST_LENGTH}}}")
# Entries are space-separated; commas also split because HTTP joins repeated headers with ",".
_ENTRY_SEPARATORS = re.compile(r"[\s,]+")


class RejectionReason(StrEnum):
    """Why a delivery was refused. Bounded set: used as a CloudWatch metric dimension."""

    BODY_TOO_LARGE = "body_too_large"
    MALFORMED_BODY = "malformed_body"
    MISSING_TIMESTAMP = "missing_timestamp"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_TOO_NEW = "timestamp_too_new"
    MISSING_SIGNATURE = "missing_signature"
    NO_V1_SIGNATURE = "no_v1_signature"
    SIGNATURE_MISMATCH = "signature_mismatch"
    NO_SECRET = "no_secret"  # noqa: S105 (a rejection reason, not a secret)


class WebhookVerificationError(Exception):
    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def _as_bytes(raw_body: bytes | str) -> bytes:
    if isinstance(raw_body, bytes):
        return raw_body
    if isinstance(raw_body, str):
        return raw_body.encode("utf-8")
    # A parsed body would have to be re-serialised, which never reproduces Orb's bytes reliably.
    raise TypeError(f"raw_body must be the raw bytes (or text) as delivered, not {type(raw_body).__name__}")


def signed_message(timestamp_header: str, raw_body: bytes | str) -> bytes:
    """The exact bytes Orb signs."""
    return b"v1:" + timestamp_header.encode("utf-8") + b":" + _as_bytes(raw_body)


def _digest(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp_header: str, raw_body: bytes | str) -> str:
    """The ``X-Orb-Signature`` value Orb would send: ``v1=<lowercase hex>``."""
    return f"{SIGNATURE_VERSION}={_digest(secret, signed_message(timestamp_header, raw_body))}"


def format_timestamp(moment: datetime) -> str:
    """A timestamp in Orb's style: UTC, milliseconds, no offset (``2024-03-27T15:42:29.551``)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds")


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO 8601 timestamp; no offset means UTC. Raises ValueError for anything else."""
    if not value or len(value) > MAX_TIMESTAMP_LENGTH or not value.isascii():
        raise ValueError("empty, overlong or non-ASCII timestamp")
    moment = datetime.fromisoformat(value)  # rejects "NaN", "", "inf", epoch numbers
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def check_timestamp(timestamp_header: str, *, tolerance_seconds: float, now: datetime | None = None) -> None:
    try:
        moment = parse_timestamp(timestamp_header)
        age_seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    except (ValueError, OverflowError, TypeError) as exc:
        raise WebhookVerificationError(RejectionReason.INVALID_TIMESTAMP, f"unparseable timestamp: {exc}") from None
    if age_seconds > tolerance_seconds:
        raise WebhookVerificationError(
            RejectionReason.TIMESTAMP_TOO_OLD, f"timestamp is {age_seconds:.3f} s old (tolerance {tolerance_seconds} s)"
        )
    if -age_seconds > tolerance_seconds:
        raise WebhookVerificationError(
            RejectionReason.TIMESTAMP_TOO_NEW,
            f"timestamp is {-age_seconds:.3f} s in the future (tolerance {tolerance_seconds} s)",
        )


def v1_signatures(signature_header: str) -> list[bytes]:
    """The well-formed ``v1`` signatures in a header (lowercased hex, ASCII bytes); the rest is skipped."""
    found: list[bytes] = []
    for entry in _ENTRY_SEPARATORS.split(signature_header):
        parts = entry.split("=")
        if len(parts) != 2:  # bare hex, or more than one "="
            continue
        version, value = parts
        if version != SIGNATURE_VERSION or not _HEX.fullmatch(value):
            continue
        found.append(value.lower().encode("ascii"))
    return found


def verify(
    raw_body: bytes | str,
    timestamp_header: str | None,
    signature_header: str | None,
    *,
    secrets: Sequence[str] | Iterable[str],
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: datetime | None = None,
) -> None:
    """Raise ``WebhookVerificationError`` unless the delivery is authentic and fresh."""
    secrets = [s for s in secrets if s]
    if not secrets:
        raise WebhookVerificationError(RejectionReason.NO_SECRET, "no webhook secret to verify with")
    body = _as_bytes(raw_body)
    if not timestamp_header:
        raise WebhookVerificationError(RejectionReason.MISSING_TIMESTAMP, f"{TIMESTAMP_HEADER} header missing or empty")
    if not signature_header:
        raise WebhookVerificationError(RejectionReason.MISSING_SIGNATURE, f"{SIGNATURE_HEADER} header missing or empty")
    check_timestamp(timestamp_header, tolerance_seconds=tolerance_seconds, now=now)
    candidates = v1_signatures(signature_header)
    if not candidates:
        raise WebhookVerificationError(
            RejectionReason.NO_V1_SIGNATURE, f"{SIGNATURE_HEADER} holds no well-formed v1=<64 hex> entry"
        )
    message = signed_message(timestamp_header, body)
    matched = False
    for secret in secrets:
        expected = _digest(secret, message).encode("ascii")
        for candidate in candidates:
            # No early exit: every comparison runs, each in constant time.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookVerificationError(
            RejectionReason.SIGNATURE_MISMATCH,
            f"none of {len(candidates)} v1 signature(s) matches any of {len(secrets)} secret(s)",
        )
