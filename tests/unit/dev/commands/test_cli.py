"""``orb-bridge``: the mapping dry run and the delegating subcommands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orb_bridge_dev import cli
from orb_bridge_dev.commands import map as map_command
from tests.support.lambdas import EVENTS


def write(tmp_path: Path, document: object) -> str:
    path = tmp_path / "body.json"
    path.write_text(json.dumps(document))
    return str(path)


def printed_json(out: str) -> dict:
    """The first pretty-printed JSON object in the output (its braces stand alone on their lines)."""
    lines = out.splitlines()
    start = lines.index("{")
    return json.loads("\n".join(lines[start : lines.index("}", start) + 1]))


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def test_map_prints_the_orb_event_of_the_seed_example(capsys: pytest.CaptureFixture[str]) -> None:
    code = map_command.run_map(str(EVENTS / "segment_track.json"), {})
    out = capsys.readouterr().out

    assert code == 0
    assert "EXTERNAL_CUSTOMER_ID_FIELD=userId" in out
    orb_event = printed_json(out)
    assert orb_event["event_name"] == "payment_confirmed"
    assert orb_event["external_customer_id"] == "external_customer_id"
    assert orb_event["timestamp"] == "2022-05-11T21:33:13.165230Z"
    assert orb_event["properties"] == {
        "amount": 100.0,
        "currency": "USD",
        "confirmation_time": "2022-05-11T21:33:13.1652304793Z",
    }
    # The seed's 2022 timestamp is long past Orb's grace period: say so before Orb does.
    assert "grace period" in out
    assert "1 accepted, 0 skipped, 0 rejected" in out


def test_map_explains_each_rejection_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = {"type": "track", "event": "e", "userId": "u", "messageId": "m1", "timestamp": now()}
    no_user = {"type": "track", "event": "e", "messageId": "m2", "timestamp": now()}
    identify = {"type": "identify", "userId": "u", "messageId": "m3"}
    code = map_command.run_map(write(tmp_path, [good, no_user, identify]), {})
    out = capsys.readouterr().out

    assert code == 1
    assert "[1] messageId m2: rejected: external_customer_id: no value at 'userId'" in out
    assert "[2] messageId m3: skipped: an identify call is acknowledged, not billed" in out
    assert "grace period" not in out
    assert "1 accepted, 1 skipped, 1 rejected" in out


def test_map_uses_the_settings_from_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = {
        "type": "track",
        "event": "e",
        "userId": "u",
        "messageId": "m1",
        "timestamp": now(),
        "context": {"groupId": "acct_9"},
        "properties": {"seats": 3, "secret": "x"},
    }
    env = {"EXTERNAL_CUSTOMER_ID_FIELD": "context.groupId", "PROPERTIES_MAPPING": '{"seats": "seat_count"}'}
    assert map_command.run_map(write(tmp_path, event), env) == 0
    out = capsys.readouterr().out
    assert '"external_customer_id": "acct_9"' in out
    assert '"seat_count": 3' in out and "secret" not in out.split("settings:", 1)[1].split("\n", 1)[1]


def test_map_reports_an_unusable_body_and_a_bad_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"type": "track",')
    assert map_command.run_map(str(path), {}) == 1
    assert "rejected: the whole body (malformed): request body is not valid JSON" in capsys.readouterr().out

    assert map_command.run_map(str(path), {"PROPERTIES_MAPPING": "{not json"}) == 2
    assert "PROPERTIES_MAPPING is not valid JSON" in capsys.readouterr().err

    assert map_command.run_map(str(tmp_path / "missing.json"), {}) == 2
    assert "cannot read" in capsys.readouterr().err


def test_main_dispatches_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EXTERNAL_CUSTOMER_ID_FIELD", raising=False)
    monkeypatch.delenv("PROPERTIES_MAPPING", raising=False)
    event = {"type": "track", "event": "e", "userId": "u", "messageId": "m1", "timestamp": now()}
    assert cli.main(["map", write(tmp_path, event)]) == 0
    assert "1 accepted" in capsys.readouterr().out


def test_webhook_sign_delegates_to_the_signing_tool(tmp_path: Path) -> None:
    output = tmp_path / "event.json"
    assert cli.main(["webhook", "sign", "--secret", "s3cret", "-o", str(output)]) == 0
    event = json.loads(output.read_text())
    assert event["routeKey"] == "POST /orb/webhook"
    assert event["headers"]["x-orb-signature"].startswith("v1=")


def test_webhook_send_says_when_the_dev_stack_is_not_running(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 (discard) on loopback: nothing listens there in a test environment.
    assert cli.main(["webhook", "send", "invoice.issued", "--url", "http://127.0.0.1:9/orb/webhook"]) == 2
    assert "is `orb-bridge dev` running?" in capsys.readouterr().err
