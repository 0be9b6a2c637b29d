"""X-Signature (HMAC-SHA1, first element for batches) and Bearer token authentication."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from orb_bridge.segment.auth import authenticate, header

SECRET = "s3cr\u00e9t-shared"
TOKEN = "tok_0123456789"


def sign(data: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha1).hexdigest()


def js_stringify(value) -> bytes:
    """What ``JSON.stringify`` produces: compact, non-ASCII left as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


EVENT = {"type": "track", "event": "Caf\u00e9 \u2603", "userId": "u-1", "messageId": "m-1"}
SINGLE = js_stringify(EVENT)


def auth(headers, body, *, secret=SECRET, token=None, is_array=False, is_batch=None, **kwargs):
    return authenticate(
        headers,
        body,
        shared_secret=secret,
        auth_token=token,
        is_array=is_array,
        is_batch=is_array if is_batch is None else is_batch,
        **kwargs,
    )


def test_single_event_signature_over_raw_body():
    result = auth({"x-signature": sign(SINGLE)}, SINGLE)
    assert result.ok and result.detail == "signature"


def test_header_names_are_case_insensitive_and_hex_case_is_ignored():
    assert auth({"X-SIGNATURE": sign(SINGLE).upper()}, SINGLE).ok
    assert header({"AuThOrIzAtIoN": "Bearer x"}, "authorization") == "Bearer x"


def test_batch_signature_covers_first_element_as_sent():
    first = js_stringify(EVENT)
    second = js_stringify({**EVENT, "messageId": "m-2"})
    body = b"[" + first + b"," + second + b"]"
    assert auth({"x-signature": sign(first)}, body, is_array=True).ok


def test_batch_signature_with_whitespace_between_elements():
    first = js_stringify(EVENT)
    body = b" [\n  " + first + b" ,\n  " + js_stringify({"type": "page"}) + b"\n]\n"
    assert auth({"x-signature": sign(first)}, body, is_array=True).ok


def test_batch_first_element_is_not_re_serialised():
    # Signed as Segment sent it; a re-serialisation (key order, spacing, escapes) would differ.
    first = '{"userId":"u-1", "type":"track","event":"Caf\\u00e9"}'.encode()
    body = b"[" + first + b"]"
    assert auth({"x-signature": sign(first)}, body, is_array=True).ok
    reserialised = json.dumps(json.loads(first), separators=(",", ":"), ensure_ascii=False).encode()
    assert not auth({"x-signature": sign(reserialised)}, body, is_array=True).ok


def test_batch_signature_over_the_whole_body_is_accepted_too():
    body = b"[" + SINGLE + b"]"
    assert auth({"x-signature": sign(body)}, body, is_array=True).ok


def test_first_element_signature_only_counts_for_arrays():
    body = b'{"batch":[' + SINGLE + b"]}"
    assert not auth({"x-signature": sign(SINGLE)}, body, is_array=False, is_batch=True).ok


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-signature": ""},
        {"x-signature": sign(SINGLE, "wrong secret")},
        {"x-signature": sign(SINGLE + b" ")},
        {"x-signature": "\u00e9" * 40},
        {"x-signature": None},
    ],
)
def test_bad_or_missing_signature_is_refused(headers):
    result = auth(headers, SINGLE)
    assert not result.ok and "X-Signature" in result.detail


def test_bearer_token():
    assert auth({"authorization": f"Bearer {TOKEN}"}, SINGLE, secret=None, token=TOKEN).detail == "bearer"
    assert auth({"Authorization": f"bearer  {TOKEN} "}, SINGLE, secret=None, token=TOKEN).ok
    for value in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer", ""):
        result = auth({"authorization": value}, SINGLE, secret=None, token=TOKEN)
        assert not result.ok and result.detail == "Bearer token does not match"


def test_either_configured_credential_suffices():
    assert auth({"authorization": f"Bearer {TOKEN}"}, SINGLE, token=TOKEN).ok
    assert auth({"x-signature": sign(SINGLE)}, SINGLE, token=TOKEN).ok
    assert auth({"x-signature": sign(SINGLE), "authorization": "Bearer nope"}, SINGLE, token=TOKEN).ok
    result = auth({}, SINGLE, token=TOKEN)
    assert not result.ok and result.detail == "no Authorization header; no X-Signature header"


def test_require_bearer_for_batches():
    body = b"[" + SINGLE + b"]"
    signed = {"x-signature": sign(SINGLE)}
    strict = dict(token=TOKEN, require_bearer_for_batches=True)
    assert not auth(signed, body, is_array=True, **strict).ok
    assert auth({**signed, "authorization": f"Bearer {TOKEN}"}, body, is_array=True, **strict).ok
    assert not auth(signed, b'{"batch":[]}', is_batch=True, **strict).ok
    # A single event may still authenticate with its signature.
    assert auth({"x-signature": sign(SINGLE)}, SINGLE, **strict).ok


def test_configured_credentials_are_enforced_even_when_unauthenticated_is_allowed():
    assert not auth({}, SINGLE, allow_unauthenticated=True).ok
    assert auth({}, SINGLE, secret=None, allow_unauthenticated=True).detail == "unauthenticated"
    assert not auth({}, SINGLE, secret=None).ok
