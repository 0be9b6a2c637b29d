"""Findings 4-8: unauthenticated work, unbounded echoes, deep nesting, NaN, lone surrogates,
configuration details in 500s, and Segment's ``delete`` notices."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orb_bridge.intake import service as intake_module
from orb_bridge.intake.settings import IntakeSettings
from orb_bridge.segment.auth import FIRST_EVENT_WINDOW_BYTES
from orb_bridge.segment.body import parse_segment_body
from tests.support.segment_requests import (
    MAX_RECORD_BYTES,
    MAX_RESPONSE_BYTES,
    TOKEN,
    IntakeStack,
    http_event,
    js_stringify,
    sign,
    track,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
BEARER = {"authorization": f"Bearer {TOKEN}"}
SIX_MIB = 6 * 1024 * 1024


def six_mib_batch() -> bytes:
    events = [track(n, context={"pad": "x" * 1600}) for n in range(4000)]
    return js_stringify(events)[:SIX_MIB]  # cut: not even valid JSON, which must not matter


@pytest.mark.parametrize(
    "headers", [{}, {"x-signature": "0" * 40}, {"authorization": "Bearer wrong"}, {"x-segment-signature": "f" * 40}]
)
def test_an_unauthenticated_body_is_never_parsed(intake_stack: IntakeStack, monkeypatch, headers) -> None:
    parsed: list[int] = []

    def counting_parse(raw: bytes, **kw: Any) -> Any:
        parsed.append(len(raw))
        return parse_segment_body(raw, **kw)

    monkeypatch.setattr(intake_module, "parse_segment_body", counting_parse)
    body = six_mib_batch()
    assert len(body) == SIX_MIB
    assert intake_stack.invoke(http_event(body, headers)).status == 401
    assert parsed == []
    assert intake_stack.drain("ingest") == [] and intake_stack.drain("rejected") == []


def test_an_unauthenticated_array_is_scanned_only_within_the_first_event_window(intake_stack: IntakeStack, monkeypatch):
    from orb_bridge.segment import auth

    scanned: list[int] = []
    real_decode = auth._DECODER.raw_decode

    class CountingDecoder:
        def raw_decode(self, text: str) -> Any:
            scanned.append(len(text))
            return real_decode(text)

    monkeypatch.setattr(auth, "_DECODER", CountingDecoder())
    assert intake_stack.invoke(http_event(six_mib_batch(), {"x-signature": "0" * 40})).status == 401
    assert scanned and max(scanned) <= FIRST_EVENT_WINDOW_BYTES


def test_junk_timestamps_give_a_bounded_answer_and_bounded_records(intake_stack: IntakeStack) -> None:
    # The review found 190 such events (30 KB junk timestamps) answered with 30 MB; 60 keep it quick.
    events = [track(n, timestamp="j" * 30_000, messageId=f"m-{n}-" + "\u00e9" * 90) for n in range(60)]
    answer = intake_stack.invoke(http_event(js_stringify(events), BEARER))
    assert answer.status == 400 and len(answer.body["rejected"]) == 60
    assert answer.size < 256 * 1024
    assert all(len(item["error"]) <= 520 for item in answer.body["rejected"])
    records = intake_stack.drain("rejected")
    assert len(records) == 60 and max(len(r.encode()) for r in records) < MAX_RECORD_BYTES
    # The carried event is whole (replayable), never cut.
    assert json.loads(records[0])["segment_event"]["timestamp"] == "j" * 30_000


class CountingQueue:
    """Takes every body (moto's in-process SQS would need minutes for 4,000 messages)."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.client = None

    def send_all(self, bodies):
        self.bodies.extend(bodies)
        return []


def test_the_answer_stays_under_6_mb_whatever_the_input(intake_stack: IntakeStack) -> None:
    # 4,000 rejected events whose echoes are as expensive as JSON makes them (escaped non-BMP text).
    events = [{"type": "\U0001f600" * 70, "messageId": "\U0001f600" * 100} for _ in range(4000)]
    body = js_stringify(events)
    assert len(body) < SIX_MIB
    rejected = CountingQueue()
    queues: list[Any] = [CountingQueue(), rejected]  # duck-typed SqsQueue stand-ins
    service = intake_module.TrackIntake(IntakeSettings.from_env(), *queues)
    result = service.handle(BEARER, body)
    answer = json.dumps({"statusCode": 400, "body": json.dumps(result.body)})
    assert result.outcome is intake_module.IntakeOutcome.NOTHING_VALID and len(answer.encode()) < MAX_RESPONSE_BYTES
    assert len(result.body["rejected"]) + result.body.get("rejected_omitted", 0) == 4000
    assert len(rejected.bodies) == 4000 and max(len(b.encode()) for b in rejected.bodies) < MAX_RECORD_BYTES


def test_an_event_too_large_for_a_record_is_kept_as_an_excerpt_marked_not_replayable(intake_stack: IntakeStack):
    event = track(1, timestamp="bad", context={"blob": "\U0001f600" * 60_000})
    assert intake_stack.invoke(http_event(js_stringify(event), {**BEARER})).status == 400
    [record] = [json.loads(r) for r in intake_stack.drain("rejected")]
    assert record["replayable"] is False and "segment_event" not in record
    assert record["segment_event_bytes"] > MAX_RECORD_BYTES and record["segment_event_excerpt"]


@pytest.mark.parametrize("depth", [65, 990, 5000])
def test_deep_nesting_is_a_clean_400(intake_stack: IntakeStack, depth: int) -> None:
    deep = "[" * depth + "]" * depth
    body = (
        '{"type":"track","event":"e","userId":"u","messageId":"m","timestamp":"2026-11-02T10:00:00Z",'
        f'"properties":{{"amount":{deep}}}}}'
    ).encode()
    answer = intake_stack.invoke(http_event(body, BEARER))
    assert answer.status == 400 and "nested more than 64 levels" in answer.body["message"]
    for record in intake_stack.drain("rejected"):
        assert len(record.encode()) < MAX_RECORD_BYTES


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(intake_stack: IntakeStack, constant: str) -> None:
    body = f'{{"type":"track","event":"e","userId":"u","messageId":"m","timestamp":"2026-11-02T10:00:00Z","properties":{{"amount":{constant}}}}}'
    answer = intake_stack.invoke(http_event(body.encode(), BEARER))
    assert answer.status == 400 and f"{constant} is not a JSON value" in answer.body["message"]
    for record in intake_stack.drain("rejected"):
        json.loads(record, parse_constant=lambda name: pytest.fail(f"{name} in a rejected record"))


def test_a_lone_surrogate_message_id_does_not_break_the_logs(intake_stack: IntakeStack, caplog) -> None:
    from orb_bridge.core.observability import logger

    body = json.dumps(track(1, messageId="\ud800bad", timestamp="nope")).encode()  # the escape \\ud800
    answer = intake_stack.invoke(http_event(body, BEARER))
    assert answer.status == 400
    lines = [logger.registered_formatter.format(record) for record in caplog.records]
    assert any('"event rejected"' in line for line in lines)
    for line in lines:
        line.encode("utf-8")  # what the log stream does; a lone surrogate made it raise (a lost line)


def test_segment_delete_notices_are_acknowledged_like_identify(intake_stack: IntakeStack) -> None:
    body = js_stringify({"type": "delete", "userId": "u-gone", "messageId": "del-1"})
    answer = intake_stack.invoke(http_event(body, {"x-signature": sign(body)}))
    assert (answer.status, answer.body) == (200, {"accepted": 0, "skipped": 1, "rejected": []})
    assert intake_stack.drain("rejected") == [] and intake_stack.drain("ingest") == []


def test_a_misconfiguration_is_a_generic_500(intake_stack: IntakeStack, monkeypatch) -> None:
    monkeypatch.setenv("PROPERTIES_MAPPING", "{not json")
    answer = intake_stack.invoke(http_event(js_stringify(track(1)), {}))
    assert answer.status == 500 and "PROPERTIES_MAPPING" not in json.dumps(answer.body)
