"""Text from outside reaches the operator's terminal escaped (issue 22, item 8).

Event names, idempotency keys, customers and reasons come from Segment callers, Orb and stack
parameters: `replay` and `backfill` print them through ``terminal.printable``. The end-to-end
tests put escape sequences (clear screen, window title, cursor moves, colours, a forged newline)
and bidi overrides in every field a record carries and check the output holds none of them raw.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge_dev.commands import map as map_command
from orb_bridge_dev.commands import replay as replay_cmd
from orb_bridge_dev.commands.backfill import command as backfill_cmd
from orb_bridge_dev.terminal import printable
from tests.support.orb_backfill_fake import FakeOrb
from tests.support.rejected_stack import STACK, create_stack, orb_event, segment_event, send

NOW = datetime.now(UTC).replace(microsecond=0)
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[1A\r\ndry run: nothing changed\x9b31m\u202eevil\u2066\x7f"
# Anything a terminal acts on: C0 (tab and newline included), DEL, C1, bidi controls, surrogates.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain", "plain"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("title\x1b]0;x\x07", "title\\x1b]0;x\\x07"),
        ("line\nforged\r\tx", "line\\x0aforged\\x0d\\x09x"),
        ("\x00\x7f\x80\x9b\x9f", "\\x00\\x7f\\x80\\x9b\\x9f"),
        ("abc\u202edcba\u202c", "abc\\u202edcba\\u202c"),
        ("\u2066\u2067\u2068\u2069\u202a\u202b\u202d", "\\u2066\\u2067\\u2068\\u2069\\u202a\\u202b\\u202d"),
        ("\u200e\u200f\u061c\u2028\u2029", "\\u200e\\u200f\\u061c\\u2028\\u2029"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("café 日本 🎉 é", "café 日本 🎉 é"),  # text is kept as is
        (None, "None"),
        (42, "42"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(text: object, shown: str) -> None:
    assert printable(text) == shown
    assert not RAW.search(printable(text))
    printable(text).encode("utf-8")  # printable on any UTF-8 terminal (no lone surrogate)


@pytest.fixture
def stack():
    with mock_aws():
        aws.reset_clients()
        yield create_stack({"amount": "amount"})
    aws.reset_clients()


def assert_escaped(output: str) -> None:
    assert not RAW.search(output.replace("\n", "")), ascii(RAW.search(output.replace("\n", "")))
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in output
    assert "\\x0d\\x0adry run: nothing changed" in output  # the forged line stays on its own line
    assert "\\u202eevil\\u2066" in output


def test_replay_prints_names_ids_reasons_and_customers_escaped(stack) -> None:
    sqs, _, rejected_url = stack
    recent = NOW - timedelta(hours=2)
    hostile_event = {
        **orb_event(1, recent, customer=f"cust{HOSTILE}"),
        "event_name": f"name{HOSTILE}",
        "idempotency_key": f"key{HOSTILE}",
    }
    send(
        sqs,
        rejected_url,
        [
            rejection_record(stage="orb", reason=f"reason{HOSTILE}\ud800", orb_event=hostile_event),
            rejection_record(stage="intake", reason="bad", segment_event={**segment_event(2, recent), "type": HOSTILE}),
            json.dumps({"stage": "orb", "reason": f"unreplayable{HOSTILE}", "replayable": False}),
        ],
    )
    out, err = io.StringIO(), io.StringIO()
    args = replay_cmd.build_parser().parse_args(["--stack", STACK, "--region", "us-east-1"])
    assert replay_cmd.run(args, {}, out, err, now=lambda: NOW, wait_seconds=0) == 0
    output = out.getvalue() + err.getvalue()
    assert_escaped(output)
    for shown in ("name\\x1b]0;pwned", "cust\\x1b]0;pwned", "reason\\x1b]0;pwned", "unreplayable\\x1b]0;pwned"):
        assert shown in output
    output.encode("utf-8")


def test_backfill_prints_customers_keys_and_orbs_reasons_escaped(stack, tmp_path) -> None:
    sqs, _, rejected_url = stack
    late = NOW - timedelta(hours=13)
    customer, key = f"cust{HOSTILE}", f"key{HOSTILE}"
    send(
        sqs,
        rejected_url,
        [
            rejection_record(stage="orb", reason=f"late{HOSTILE}", orb_event=orb_event(0, late, customer)),
            rejection_record(
                stage="orb", reason="late", orb_event={**orb_event(1, late, customer), "idempotency_key": key}
            ),
        ],
    )
    orb = FakeOrb(now=lambda: NOW)
    orb.refuse_keys.add(key)
    for mode in ((), ("--yes",)):
        out, err = io.StringIO(), io.StringIO()
        args = backfill_cmd.build_parser().parse_args(
            [
                "--stack",
                STACK,
                "--region",
                "us-east-1",
                "--state-file",
                str(tmp_path / "s.json"),
                "--per-customer",
                *mode,
            ]
        )
        http = httpx.Client(transport=orb.transport())
        code = backfill_cmd.run(
            args, {"ORB_API_KEY": "orb-key"}, out, err, now=lambda: NOW, http=http, sleep=lambda _: None, wait_seconds=0
        )
        output = out.getvalue() + err.getvalue()
        assert code == 0, output
        assert_escaped(output)
        assert "external_customer_id=cust\\x1b]0;pwned" in output
    assert "kept: Orb refused key\\x1b]0;pwned" in output


def test_map_prints_the_files_ids_types_and_errors_escaped(tmp_path) -> None:
    now = NOW.isoformat().replace("+00:00", "Z")
    elements = [
        {"type": "track", "event": "e", "messageId": f"m1{HOSTILE}", "timestamp": now},  # no userId: refused
        {"type": f"x{HOSTILE}", "messageId": "m2"},
        {"type": "track", "event": f"e{HOSTILE}", "userId": "u", "messageId": "m3", "timestamp": now},
    ]
    path = tmp_path / "body.json"
    path.write_text(json.dumps(elements))
    out, err = io.StringIO(), io.StringIO()
    assert map_command.run_map(str(path), {}, out, err) == 1
    output = out.getvalue() + err.getvalue()
    assert not RAW.search(output.replace("\n", "")), ascii(output)
    assert "messageId m1\\x1b]0;pwned" in output and "unknown Segment call type" in output
