"""Two dev stacks side by side: each stays findable, `--dev` asks which when several run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orb_bridge_dev.commands import replay as replay_cmd
from orb_bridge_dev.deployment import dev_stacks
from orb_bridge_dev.deployment import target as stack_target
from orb_bridge_dev.deployment.rejected_records import TargetError
from tests.unit.dev.deployment.test_cli_stack_trust import FakeSession

GONE_PID = 2**22 + 7  # above Linux's pid_max: no such process


@pytest.fixture
def stacks_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(dev_stacks, "DEV_STACKS_DIR", tmp_path)
    return tmp_path


def resolve(*argv: str) -> str:
    args = replay_cmd.build_parser().parse_args(list(argv))
    return stack_target.resolve(args, {}, FakeSession).label


def other_process(path: Path, pid: int) -> None:
    """Make a registered file look like another process's (the second `make dev`)."""
    path.write_text(json.dumps(json.loads(path.read_text()) | {"pid": pid}))


def test_two_stacks_stay_findable_and_the_cli_asks_which(stacks_dir: Path) -> None:
    first = dev_stacks.register(3000, "http://127.0.0.1:5000", "http://127.0.0.1:3001/v1")
    second = dev_stacks.register(3100, "http://127.0.0.1:5100", "http://127.0.0.1:3101/v1", name="second")
    assert first != second and first.exists() and second.exists()  # side by side, neither overwritten
    assert [stack.port for stack in dev_stacks.running()] == [3000, 3100]

    with pytest.raises(TargetError) as asked:
        resolve("--dev")
    message = str(asked.value)
    assert "2 dev stacks are running" in message and "--port N or --dev NAME" in message
    assert "dev-3000 (--port 3000" in message and "second (--port 3100" in message

    assert resolve("--dev", "--port", "3000") == "dev stack dev-3000 at http://127.0.0.1:5000"
    assert resolve("--dev", "second") == "dev stack second at http://127.0.0.1:5100"
    with pytest.raises(TargetError, match="no running dev stack matches --port 3200; running: dev-3000"):
        resolve("--dev", "--port", "3200")

    # Stopping the first removes its file only; the second is then the one `--dev` finds.
    dev_stacks.unregister(3000)
    assert not first.exists() and second.exists()
    assert resolve("--dev") == "dev stack second at http://127.0.0.1:5100"


def test_each_file_is_removed_only_by_its_own_process_and_stale_ones_are_ignored(stacks_dir: Path) -> None:
    path = dev_stacks.register(3000, "http://127.0.0.1:5000", "")
    other_process(path, os.getppid())  # alive, not us: a newer stack on the same port
    dev_stacks.unregister(3000)
    assert path.exists()
    assert [stack.pid for stack in dev_stacks.running()] == [os.getppid()]

    stale = dev_stacks.register(3100, "http://127.0.0.1:5100", "")
    other_process(stale, GONE_PID)  # killed without cleaning up
    (stacks_dir / "3200.json").write_text("{not json")  # anyone can write here: skipped, never fatal
    (stacks_dir / "3300.json").write_text(json.dumps({"port": "x", "pid": os.getpid()}))
    assert [stack.port for stack in dev_stacks.running()] == [3000]


def test_port_without_dev_is_refused(stacks_dir: Path) -> None:
    with pytest.raises(TargetError, match="--port chooses a dev stack"):
        resolve("--stack", "s", "--port", "3000")


def test_an_escaped_listing(stacks_dir: Path) -> None:
    dev_stacks.register(3000, "http://127.0.0.1:5000", "", name="a\x1b[31mred")
    dev_stacks.register(3100, "http://127.0.0.1:5100", "")
    with pytest.raises(TargetError) as asked:
        resolve("--dev")
    assert "\x1b" not in str(asked.value)
