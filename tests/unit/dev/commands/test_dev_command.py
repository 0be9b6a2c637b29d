"""What `orb-bridge dev` tells a newcomer: Try lines that work when pasted, ports named by their flag."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from orb_bridge_dev.commands import dev as dev_cmd
from orb_bridge_dev.devstack.env import cli_target
from orb_bridge_dev.devstack.stack import DevStack, DevStackConfig, DevStackError
from orb_bridge_dev.orb_sandbox import OrbSandbox
from orb_bridge_dev.orb_sandbox import cli as sandbox_cli

SEGMENT = "http://127.0.0.1:3000/segment"
WEBHOOK = "http://127.0.0.1:3000/orb/webhook"


def test_try_lines_call_the_cli_where_make_dev_put_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # `make dev` does not put .venv/bin on PATH
    lines = dev_cmd.try_lines(SEGMENT, WEBHOOK)
    assert "  .venv/bin/orb-bridge webhook send invoice.issued --url http://127.0.0.1:3000/orb/webhook" in lines
    assert "  .venv/bin/orb-bridge rejected --dev" in lines
    assert "authorization" not in lines.lower()


def test_try_lines_on_an_authenticated_stack_send_the_credential_by_name() -> None:
    bearer = dev_cmd.try_lines(SEGMENT, WEBHOOK, "bearer")
    assert '-H "authorization: Bearer $SEGMENT_AUTH_TOKEN"' in bearer
    signed = dev_cmd.try_lines(SEGMENT, WEBHOOK, "signature")
    assert '-hmac "$SEGMENT_SHARED_SECRET"' in signed and "x-signature" in signed
    assert dev_cmd._segment_auth({"SEGMENT_AUTH_TOKEN": "t"}) == "bearer"
    assert dev_cmd._segment_auth({"SEGMENT_SHARED_SECRET": "s"}) == "signature"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_the_signed_try_line_computes_segments_signature() -> None:
    """The shell line's HMAC is the one intake checks (hex HMAC-SHA1 of the body)."""
    from orb_bridge.segment.auth import hmac_sha1_hex

    body = '{"type":"track"}'
    script = 'printf %s "$BODY" | openssl dgst -sha1 -hmac "$SEGMENT_SHARED_SECRET" | sed \'s/.* //\''
    assert "| sed 's/.* //'" in dev_cmd.try_lines(SEGMENT, WEBHOOK, "signature")
    shell = subprocess.run(
        ["/bin/sh", "-c", script],
        env={"BODY": body, "SEGMENT_SHARED_SECRET": "s3cret", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.strip() == hmac_sha1_hex("s3cret", body.encode())


def test_the_dev_commands_name_this_stack() -> None:
    assert cli_target(3000) == "--dev"
    assert cli_target(3100) == "--dev --port 3100"
    assert cli_target(3100, "second") == "--dev second"
    env = DevStack(DevStackConfig(port=3100, user_env={})).cli_target
    assert env == "--dev --port 3100"


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_sandbox_port_clash_names_the_flag(taken_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    stack = DevStack(DevStackConfig(sandbox_port=taken_port, port=0, send_test_webhook=False, user_env={}))
    with pytest.raises(DevStackError, match=f"Orb sandbox cannot listen on 127.0.0.1:{taken_port}.*--sandbox-port"):
        stack.start()
    # Not Werkzeug's advice (nor its exit): ours, naming the flag.
    assert "Either identify and stop that program" not in capsys.readouterr().err
    with pytest.raises(OSError, match="is in use"):
        OrbSandbox(port=taken_port).start()


def test_the_standalone_sandbox_names_its_flag(taken_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert sandbox_cli.main(["--port", str(taken_port)]) == 2
    assert "choose another port with --port" in capsys.readouterr().err
