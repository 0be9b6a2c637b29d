"""Authenticating Segment's requests, before their body is parsed.

Credentials, any of which authenticates a request:

- ``Authorization: Bearer <token>`` (a custom header of the Webhooks destination);
- a signature of the whole body: ``X-Segment-Signature`` (hex HMAC-SHA1 of the entire body, the
  Webhooks (Actions) destination's "Use X-Segment-Signature Header" setting), or an
  ``X-Signature`` that happens to cover the whole body (any non-batched request);
- ``X-Signature`` over the first event of an array (what Segment signs in batch mode): this
  authenticates only that event, so it is accepted for a one-element array only. A longer array
  signed this way could carry any number of forged events after one captured signature (Segment's
  signatures hold no timestamp): it is refused (``first_event_only``), unless the deployment
  explicitly opts out of this protection.

Fails closed: a request passes only when a configured credential matches. Every comparison is
constant-time and runs against every configured value (several during a rotation). The work
done for a caller that has not authenticated is bounded: one HMAC over the body per secret and,
for an array, a parse of at most ``FIRST_EVENT_WINDOW_BYTES`` to find its first event.
The precise reason for a refusal goes to the log, never to the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orb_bridge.core.http_request import header

SIGNATURE_HEADER = "x-signature"
WHOLE_BODY_SIGNATURE_HEADER = "x-segment-signature"
# Segment's events are at most 32 KB: a first event longer than this is not Segment's.
FIRST_EVENT_WINDOW_BYTES = 64 * 1024
_DECODER = json.JSONDecoder()
_ARRAY_OPENING = re.compile(rb"[ \t\n\r]*\[[ \t\n\r]*")
_ARRAY_CLOSING = re.compile(rb"[ \t\n\r]*\][ \t\n\r]*\Z")


@dataclass(frozen=True, slots=True)
class AuthResult:
    ok: bool
    # How the request authenticated ("bearer", "signature", "unauthenticated"...), or why it did not.
    detail: str
    # Refused: an array of several events whose X-Signature verified its first event only.
    first_event_only: bool = False


def _equal(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def _any_equal(presented: str, expected: Sequence[str]) -> bool:
    matched = False
    for value in expected:  # no early exit: the timing does not tell which value matched
        matched |= _equal(presented, value)
    return matched


def hmac_sha1_hex(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha1).hexdigest()


def signature_matches(signature: str, secrets: Sequence[str], signed: bytes) -> bool:
    presented = signature.strip().lower()
    return _any_equal(presented, [hmac_sha1_hex(secret, signed) for secret in secrets])


def bearer_matches(authorization: str, tokens: Sequence[str]) -> bool:
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return _any_equal(presented.strip(), tokens)


def first_array_element(raw_body: bytes, window: int = FIRST_EVENT_WINDOW_BYTES) -> tuple[bytes, bool] | None:
    """``body[0]`` exactly as sent, and whether it is the array's only element; None when the
    body is not an array or its first element does not end within ``window`` bytes.

    Segment signs ``JSON.stringify(body[0])``, which is the first element exactly as it appears
    in the body, so its span is located, never re-serialised.
    """
    opening = _ARRAY_OPENING.match(raw_body)  # regular expressions: no copy of a 6 MiB body
    if opening is None:
        return None
    offset = opening.end()
    # Bytes that are not UTF-8 are dropped: the element then no longer matches any signature.
    text = raw_body[offset : offset + window].decode("utf-8", "ignore")
    try:
        _, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        return None
    element = text[:end].encode("utf-8")
    return element, _ARRAY_CLOSING.match(raw_body, offset + len(element)) is not None


def authenticate(
    headers: Mapping[str, Any] | None,
    raw_body: bytes,
    *,
    shared_secrets: Sequence[str] = (),
    auth_tokens: Sequence[str] = (),
    allow_unauthenticated: bool = False,
    allow_first_event_signature_for_batches: bool = False,
) -> AuthResult:
    """Decide whether the request comes from our Segment workspace, from its headers and bytes.

    ``allow_unauthenticated`` only applies when no credential is configured: a configured
    secret or token is always enforced.
    """
    if not shared_secrets and not auth_tokens:
        if allow_unauthenticated:
            return AuthResult(True, "unauthenticated")
        return AuthResult(False, "no Segment credential configured")

    authorization = header(headers, "authorization")
    if auth_tokens and authorization is not None and bearer_matches(authorization, auth_tokens):
        return AuthResult(True, "bearer")

    signature = header(headers, SIGNATURE_HEADER)
    whole_body_signature = header(headers, WHOLE_BODY_SIGNATURE_HEADER)
    if shared_secrets:
        for presented in (whole_body_signature, signature):
            if presented is not None and signature_matches(presented, shared_secrets, raw_body):
                return AuthResult(True, "signature")
        if signature is not None:
            first = first_array_element(raw_body)
            if first is not None and signature_matches(signature, shared_secrets, first[0]):
                _, only_one = first
                if only_one:
                    return AuthResult(True, "signature")
                if allow_first_event_signature_for_batches:
                    return AuthResult(True, "first-event signature (insecure opt-out)")
                return AuthResult(False, "batch whose X-Signature covers only its first event", first_event_only=True)

    reasons = []
    if auth_tokens:
        reasons.append("no Authorization header" if authorization is None else "Bearer token does not match")
    if shared_secrets:
        if signature is None and whole_body_signature is None:
            reasons.append("no X-Signature or X-Segment-Signature header")
        else:
            reasons.append("signature does not match")
    return AuthResult(False, "; ".join(reasons))
