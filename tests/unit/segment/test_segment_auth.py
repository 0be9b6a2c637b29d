"""Segment authentication before parsing: Bearer token, whole-body signatures (X-Signature,
X-Segment-Signature), and X-Signature over the first event, which authenticates one event only."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from orb_bridge.core.http_request import header
from orb_bridge.segment.auth import FIRST_EVENT_WINDOW_BYTES, authenticate, first_array_element

SECRET = "s3cr\u00e9t-shared"
TOKEN = "tok_0123456789"


def sign(data: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha1).hexdigest()


def js_stringify(value) -> bytes:
    """What ``JSON.stringify`` produces: compact, non-ASCII left as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


EVENT = {"type": "track", "event": "Caf\u00e9 \u2603", "userId": "u-1", "messageId": "m-1"}
SINGLE = js_stringify(EVENT)
SECOND = js_stringify({**EVENT, "messageId": "m-2", "userId": "victim"})


def auth(headers, body, *, secret=SECRET, token=None, **kwargs):
    return authenticate(
        headers, body, shared_secrets=(secret,) if secret else (), auth_tokens=(token,) if token else (), **kwargs
    )


def test_single_event_signature_over_raw_body():
    result = auth({"x-signature": sign(SINGLE)}, SINGLE)
    assert result.ok and result.detail == "signature"


def test_header_names_are_case_insensitive_and_hex_case_is_ignored():
    assert auth({"X-SIGNATURE": sign(SINGLE).upper()}, SINGLE).ok
    assert header({"AuThOrIzAtIoN": "Bearer x"}, "authorization") == "Bearer x"


def test_first_event_signature_authenticates_a_one_element_array():
    assert auth({"x-signature": sign(SINGLE)}, b" [\n " + SINGLE + b" \n] ").ok


def test_batch_smuggling_first_event_signature_does_not_authenticate_a_longer_array():
    # One captured signature of a real event, then forged events for any customer.
    body = b"[" + SINGLE + b"," + SECOND + b"]"
    result = auth({"x-signature": sign(SINGLE)}, body)
    assert not result.ok and result.first_event_only
    # The same with a Bearer token configured but not sent.
    assert auth({"x-signature": sign(SINGLE)}, body, token=TOKEN).first_event_only
    # The explicit, insecure opt-out restores the old behaviour.
    assert auth({"x-signature": sign(SINGLE)}, body, allow_first_event_signature_for_batches=True).ok


def test_a_batch_authenticates_with_the_bearer_token_or_a_whole_body_signature():
    body = b"[" + SINGLE + b"," + SECOND + b"]"
    assert auth({"authorization": f"Bearer {TOKEN}", "x-signature": sign(SINGLE)}, body, token=TOKEN).detail == "bearer"
    assert auth({"x-segment-signature": sign(body)}, body).ok
    assert auth({"X-Segment-Signature": sign(body)}, body).ok
    assert not auth({"x-segment-signature": sign(SINGLE)}, body).ok  # X-Segment-Signature is never first-event


def test_batch_first_element_is_not_re_serialised():
    # Signed as Segment sent it; a re-serialisation (key order, spacing, escapes) would differ.
    first = b'{"userId":"u-1", "type":"track","event":"Caf\\u00e9"}'
    body = b"[" + first + b"]"
    assert auth({"x-signature": sign(first)}, body).ok
    reserialised = json.dumps(json.loads(first), separators=(",", ":"), ensure_ascii=False).encode()
    assert not auth({"x-signature": sign(reserialised)}, body).ok


def test_first_element_signature_only_counts_for_arrays():
    body = b'{"batch":[' + SINGLE + b"]}"
    assert not auth({"x-signature": sign(SINGLE)}, body).ok


def test_first_array_element_is_the_exact_slice():
    first = '{ "type" : "track",\n "event": "Caf\u00e9 \u2603", "s": "] , [\\" }" }'
    raw = f' \n[ \t{first} ,\n  {{"type":"page"}} ]'.encode()
    assert first_array_element(raw) == (first.encode(), False)
    assert first_array_element(f"[{first}]".encode()) == (first.encode(), True)


@pytest.mark.parametrize("raw", [b'{"a":1}', b"[", b"[ ", b"[{", b"\xff[", b""])
def test_first_array_element_is_none_when_there_is_none(raw):
    assert first_array_element(raw) is None


def test_first_array_element_work_is_bounded():
    # An unauthenticated caller's array is parsed only as far as the window, whatever its size.
    huge_first = b'[{"a":"' + b"x" * (FIRST_EVENT_WINDOW_BYTES + 10) + b'"}]'
    assert first_array_element(huge_first) is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-signature": ""},
        {"x-signature": sign(SINGLE, "wrong secret")},
        {"x-signature": sign(SINGLE + b" ")},
        {"x-signature": "\u00e9" * 40},
        {"x-signature": "\udc80" * 40},
        {"x-signature": None},
    ],
)
def test_bad_or_missing_signature_is_refused(headers):
    result = auth(headers, SINGLE)
    assert not result.ok and not result.first_event_only and "ignature" in result.detail


def test_bearer_token():
    assert auth({"authorization": f"Bearer {TOKEN}"}, SINGLE, secret=None, token=TOKEN).detail == "bearer"
    assert auth({"Authorization": f"bearer  {TOKEN} "}, SINGLE, secret=None, token=TOKEN).ok
    for value in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer", ""):
        result = auth({"authorization": value}, SINGLE, secret=None, token=TOKEN)
        assert not result.ok and result.detail == "Bearer token does not match"


def test_several_values_verify_during_a_rotation():
    both: dict[str, Any] = {"shared_secrets": ("new-secret", SECRET), "auth_tokens": ("new-token", TOKEN)}
    assert authenticate({"authorization": f"Bearer {TOKEN}"}, SINGLE, **both).ok
    assert authenticate({"authorization": "Bearer new-token"}, SINGLE, **both).ok
    assert authenticate({"x-signature": sign(SINGLE, "new-secret")}, SINGLE, **both).ok
    assert authenticate({"x-signature": sign(SINGLE)}, SINGLE, **both).ok
    assert not authenticate({"authorization": "Bearer older-token"}, SINGLE, **both).ok


def test_either_configured_credential_suffices():
    assert auth({"authorization": f"Bearer {TOKEN}"}, SINGLE, token=TOKEN).ok
    assert auth({"x-signature": sign(SINGLE)}, SINGLE, token=TOKEN).ok
    assert auth({"x-signature": sign(SINGLE), "authorization": "Bearer nope"}, SINGLE, token=TOKEN).ok
    result = auth({}, SINGLE, token=TOKEN)
    assert not result.ok and result.detail == "no Authorization header; no X-Signature or X-Segment-Signature header"


def test_configured_credentials_are_enforced_even_when_unauthenticated_is_allowed():
    assert not auth({}, SINGLE, allow_unauthenticated=True).ok
    assert auth({}, SINGLE, secret=None, allow_unauthenticated=True).detail == "unauthenticated"
    assert not auth({}, SINGLE, secret=None).ok
