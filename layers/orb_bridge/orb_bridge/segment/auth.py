"""Authenticating Segment's requests: ``X-Signature`` (HMAC-SHA1) and/or a Bearer token.

Fails closed: a request passes only when a configured credential matches. Every comparison
is constant-time. The precise reason for a refusal goes to the log, never to the caller.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orb_bridge.http_request import header  # noqa: F401 (part of this module's interface)
from orb_bridge.segment.body import first_array_element


@dataclass(frozen=True, slots=True)
class AuthResult:
    ok: bool
    # How the request authenticated ("signature", "bearer", "unauthenticated"), or why it did not.
    detail: str


def _equal(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def signature_matches(signature: str, secret: str, raw_body: bytes, is_array: bool) -> bool:
    """True when ``signature`` is the HMAC-SHA1 of the body, or for an array of its first element."""
    presented = signature.strip().lower()
    key = secret.encode("utf-8")
    candidates = [raw_body]
    if is_array:
        first = first_array_element(raw_body)
        if first is not None:
            candidates.append(first)
    matched = False
    for signed in candidates:  # no early exit: the timing does not tell which candidate matched
        matched |= _equal(presented, hmac.new(key, signed, hashlib.sha1).hexdigest())
    return matched


def bearer_matches(authorization: str, token: str) -> bool:
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return _equal(presented.strip(), token)


def authenticate(
    headers: Mapping[str, Any] | None,
    raw_body: bytes,
    *,
    shared_secret: str | None,
    auth_token: str | None,
    allow_unauthenticated: bool = False,
    require_bearer_for_batches: bool = False,
    is_batch: bool = False,
    is_array: bool = False,
) -> AuthResult:
    """Decide whether the request comes from our Segment workspace.

    ``allow_unauthenticated`` only applies when no credential is configured: a configured
    secret or token is always enforced.
    """
    if not shared_secret and not auth_token:
        if allow_unauthenticated:
            return AuthResult(True, "unauthenticated")
        return AuthResult(False, "no Segment credential configured")

    bearer_ok = False
    authorization = header(headers, "authorization")
    if auth_token and authorization is not None:
        bearer_ok = bearer_matches(authorization, auth_token)

    signature_ok = False
    signature = header(headers, "x-signature")
    if shared_secret and signature is not None:
        signature_ok = signature_matches(signature, shared_secret, raw_body, is_array)

    if require_bearer_for_batches and is_batch:
        if bearer_ok:
            return AuthResult(True, "bearer")
        if authorization is None:
            return AuthResult(False, "batch request without the required Bearer token")
        return AuthResult(False, "batch request with a wrong Bearer token")
    if bearer_ok:
        return AuthResult(True, "bearer")
    if signature_ok:
        return AuthResult(True, "signature")

    reasons = []
    if auth_token:
        reasons.append("no Authorization header" if authorization is None else "Bearer token does not match")
    if shared_secret:
        reasons.append("no X-Signature header" if signature is None else "X-Signature does not match")
    return AuthResult(False, "; ".join(reasons))
