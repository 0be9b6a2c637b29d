"""Request body decoding, shapes and limits."""

from __future__ import annotations

import base64

import pytest

from orb_bridge.core.http_request import BodyError, BodyProblem, decode_http_body
from orb_bridge.segment.body import parse_segment_body

MALFORMED, TOO_LARGE = BodyProblem.MALFORMED, BodyProblem.TOO_LARGE


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
        assert excinfo.value.problem is MALFORMED


def test_shapes():
    assert parse(b'{"type":"track"}').shape == "object"
    assert parse(b'[{"type":"track"},{"type":"page"}]').elements == [{"type": "track"}, {"type": "page"}]
    batch = parse(b'{"batch":[{"type":"track"}]}')
    assert (batch.shape, batch.is_batch, batch.elements) == ("batch", True, [{"type": "track"}])
    # A single event that happens to carry a "batch" key stays a single event.
    assert parse(b'{"type":"track","batch":1}').shape == "object"


@pytest.mark.parametrize(
    ("raw", "problem", "message"),
    [
        (b"", MALFORMED, "empty"),
        (b"  \n", MALFORMED, "empty"),
        (b'{"type": "track"', MALFORMED, "not valid JSON"),
        (b"\xff\xfe{}", MALFORMED, "not valid UTF-8"),
        (b'"track"', MALFORMED, "must be a JSON object or array, got string"),
        (b"null", MALFORMED, "got null"),
        (b"[]", MALFORMED, "no events"),
        (b'{"batch": {}}', MALFORMED, '"batch" must be a JSON array'),
        (b'{"batch": []}', MALFORMED, "no events"),
        (b"[" * 100_000 + b"]" * 100_000, TOO_LARGE, "bytes, more than the limit"),
        (b"[" * 5000 + b"]" * 5000, MALFORMED, "nested more than 64 levels deep"),
        (b"[" * 65 + b"]" * 65, MALFORMED, "nested more than 64 levels deep"),
        (b"[NaN]", MALFORMED, "NaN is not a JSON value"),
        (b'{"a": -Infinity}', MALFORMED, "-Infinity is not a JSON value"),
        (b"[" + b"1," * 5 + b"1]", TOO_LARGE, "6 events, more than the limit of 5"),
        (b'{"batch":[' + b"{}," * 5 + b"{}]}", TOO_LARGE, "6 events"),
    ],
)
def test_unusable_bodies_get_specific_errors(raw, problem, message):
    error = refused(raw, max_body_bytes=20_000)
    assert error.problem is problem
    assert message in error.message


def test_json_error_says_where():
    assert "line 2 column" in refused(b'{"type":\n  tr}').message
