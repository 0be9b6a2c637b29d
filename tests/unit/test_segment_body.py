"""Request body decoding, shapes and limits."""

from __future__ import annotations

import base64
import json

import pytest

from orb_bridge.segment.body import BodyError, decode_http_body, parse_segment_body


def parse(raw: bytes, max_body_bytes: int = 10_000, max_batch_events: int = 5):
    return parse_segment_body(raw, max_body_bytes=max_body_bytes, max_batch_events=max_batch_events)


def refused(raw: bytes, **limits) -> BodyError:
    with pytest.raises(BodyError) as excinfo:
        parse(raw, **limits)
    return excinfo.value


def test_base64_bodies_are_decoded_to_the_exact_bytes():
    raw = '{"type":"track","event":"caf\u00e9"}'.encode()
    assert decode_http_body(base64.b64encode(raw).decode(), True) == raw
    assert decode_http_body(raw.decode(), False) == raw
    assert decode_http_body(None) == b""


def test_invalid_base64_and_non_string_bodies_are_400():
    for body, flag in (("not base64!", True), (123, False)):
        with pytest.raises(BodyError) as excinfo:
            decode_http_body(body, flag)
        assert excinfo.value.status_code == 400


def test_shapes():
    assert parse(b'{"type":"track"}').shape == "object"
    assert parse(b'[{"type":"track"},{"type":"page"}]').elements == [{"type": "track"}, {"type": "page"}]
    batch = parse(b'{"batch":[{"type":"track"}]}')
    assert (batch.shape, batch.is_batch, batch.elements) == ("batch", True, [{"type": "track"}])
    # A single event that happens to carry a "batch" key stays a single event.
    assert parse(b'{"type":"track","batch":1}').shape == "object"


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"  \n", 400, "empty"),
        (b'{"type": "track"', 400, "not valid JSON"),
        (b"\xff\xfe{}", 400, "not valid UTF-8"),
        (b'"track"', 400, "must be a JSON object or array, got string"),
        (b"null", 400, "got null"),
        (b"[]", 400, "no events"),
        (b'{"batch": {}}', 400, '"batch" must be a JSON array'),
        (b'{"batch": []}', 400, "no events"),
        (b"[" * 100_000 + b"]" * 100_000, 413, "bytes, more than the limit"),
        (b"[" * 5000 + b"]" * 5000, 400, "nested more than 64 levels deep"),
        (b"[" * 65 + b"]" * 65, 400, "nested more than 64 levels deep"),
        (b"[NaN]", 400, "NaN is not a JSON value"),
        (b"{\"a\": -Infinity}", 400, "-Infinity is not a JSON value"),
        (b"[" + b"1," * 5 + b"1]", 413, "6 events, more than the limit of 5"),
        (b'{"batch":[' + b"{}," * 5 + b"{}]}", 413, "6 events"),
    ],
)
def test_unusable_bodies_get_specific_errors(raw, status, message):
    error = refused(raw, max_body_bytes=20_000)
    assert error.status_code == status
    assert message in error.message


def test_json_error_says_where():
    assert "line 2 column" in refused(b'{"type":\n  tr}').message
