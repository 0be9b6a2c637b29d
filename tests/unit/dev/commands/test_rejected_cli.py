"""`orb-bridge rejected` lists the rejected records (filters as replay's, --full) and changes nothing."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge_dev.commands import rejected as rejected_cmd
from orb_bridge_dev.commands import replay as replay_cmd
from tests.support.rejected_stack import HOUR, STACK, all_bodies, create_stack, orb_event, segment_event, send
from tests.unit.dev.commands.test_replay_cli import NOW, mixed_records


@pytest.fixture
def stack():
    with mock_aws():
        aws.reset_clients()
        yield create_stack({"amount": "amount"})
    aws.reset_clients()


def run(*argv: str, command: Any = rejected_cmd) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = command.build_parser().parse_args(["--stack", STACK, "--region", "us-east-1", *argv])
    code = command.run(args, {}, out, err, now=lambda: NOW, wait_seconds=0)
    return code, out.getvalue(), err.getvalue()


def still_refused_intake_records() -> list[str]:
    """Intake records the current mapping still refuses (no timestamp it can read): no Orb event."""
    return [
        rejection_record(
            stage="intake",
            reason="timestamp: not an ISO 8601 date-time",
            segment_event=segment_event(20 + i, NOW - HOUR, customer) | {"timestamp": "yesterday"},
        )
        for i, customer in enumerate(("cust_9", "cust_9", "cust_8"))
    ]


def test_it_lists_every_record_one_line_each_and_leaves_them_all_visible(stack):
    sqs, ingest_url, rejected_url = stack
    records = mixed_records()
    send(sqs, rejected_url, records)
    code, out, _ = run()
    assert code == 0
    assert f"stack {STACK}: 7 record(s) on the rejected queue, 7 selected" in out
    lines = [line for line in out.splitlines() if "reason:" in line]
    assert len(lines) == 7
    assert any("orb" in line and "customer cust_2" in line and "would replay" in line for line in lines)
    assert any("would keep" in line and "reason: event too large" in line for line in lines)
    # Released at once: visible to `replay` now, not after the hold; nothing moved anywhere.
    assert Counter(all_bodies(sqs, rejected_url)) == Counter(records)
    assert all_bodies(sqs, ingest_url) == []
    code, out, _ = run(command=replay_cmd)
    assert "7 record(s) on the rejected queue" in out


def test_filters_and_full(stack):
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, mixed_records())
    code, out, _ = run("--stage", "orb", "--customer", "cust_2", "--full")
    assert code == 0 and "1 selected" in out
    # In full: the record as it is on the queue, the Orb event it keeps included.
    assert '"reason": "Orb refused the event"' in out and '"idempotency_key": "msg-10"' in out
    code, out, _ = run("--reason-contains", "ACCOUNTID", "--since", "3h")
    assert "3 selected" in out
    code, out, _ = run("--since", "2099-01-01T00:00:00Z")
    assert "0 selected" in out


def test_a_record_cannot_rewrite_the_terminal(stack):
    sqs, _, rejected_url = stack
    hostile = orb_event(1, NOW - HOUR, "cust_\x1b]0;owned\x07") | {"event_name": "x\u202etxt.exe"}
    send(sqs, rejected_url, [rejection_record(stage="orb", reason="bad\x1b[2J", orb_event=hostile)])
    code, out, _ = run("--full")
    assert code == 0
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\x1b[2J" in out


def test_intake_records_show_the_segment_events_name_and_customer(stack):
    """Before, an intake record the mapping still refused showed '-' for both, so --customer missed it."""
    sqs, _, rejected_url = stack
    send(
        sqs,
        rejected_url,
        [
            *still_refused_intake_records(),
            rejection_record(stage="orb", reason="r", orb_event=orb_event(30, NOW - HOUR, "cust_9")),
        ],
    )
    _, out, _ = run("--customer", "cust_9")
    assert "3 selected" in out
    assert sum("payment_confirmed  customer cust_9" in line for line in out.splitlines()) == 3
    _, out, _ = run("--customer", "cust_9", command=replay_cmd)
    assert "3 selected" in out
    summary = out.split("customer", 1)[1]
    assert "cust_9" in summary and "  -  " not in summary.split("event age")[0]


def test_an_unknown_stack_is_a_clear_error(stack):
    out, err = io.StringIO(), io.StringIO()
    args = rejected_cmd.build_parser().parse_args(["--stack", "nope", "--region", "us-east-1"])
    assert rejected_cmd.run(args, {}, out, err, wait_seconds=0) == 2
    assert "orb-bridge rejected: cannot read stack 'nope'" in err.getvalue()


def test_the_orb_bridge_command_dispatches_to_it(capsys):
    from orb_bridge_dev import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["rejected", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "usage: orb-bridge rejected" in help_text and "--full" in help_text and "--reason-contains" in help_text
