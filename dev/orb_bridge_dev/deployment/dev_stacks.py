"""Which dev stacks run on this machine: one file per stack, keyed by its gateway port.

``orb-bridge dev`` writes ``.orb-bridge-dev/<port>.json`` at the repository's root while it runs
(its addresses, name and pid) and removes that file, and only that one, when it stops. So two
stacks side by side (``make dev ARGS="--port 3100 --sandbox-port 3101"``) never overwrite or
delete each other's entry, and a killed stack's file is ignored: its pid is gone. ``--dev``
picks the only one running, or the one ``--port N`` / ``--dev NAME`` names, and otherwise says
which there are. Files are input (anyone can write them): each one is read alone and a bad one
is skipped, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from orb_bridge_dev.deployment.rejected_records import TargetError
from orb_bridge_dev.terminal import printable

DEV_STACKS_DIR = Path(__file__).resolve().parents[3] / ".orb-bridge-dev"


@dataclass(frozen=True)
class RunningDevStack:
    port: int  # the gateway's: /segment and /orb/webhook
    name: str
    aws_endpoint_url: str
    orb_api_base_url: str
    pid: int

    def describe(self) -> str:
        return printable(f"{self.name} (--port {self.port}, AWS {self.aws_endpoint_url}, pid {self.pid})")


def default_name(port: int) -> str:
    return f"dev-{port}"


def register(
    port: int,
    aws_endpoint_url: str,
    orb_api_base_url: str,
    name: str = "",
    directory: Path | None = None,
) -> Path:
    """Record this process's stack; the file is replaced atomically, so a reader never sees half."""
    directory = directory or DEV_STACKS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{port}.json"
    entry = {
        "port": port,
        "name": name or default_name(port),
        "aws_endpoint_url": aws_endpoint_url,
        "orb_api_base_url": orb_api_base_url,
        "pid": os.getpid(),
    }
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(entry) + "\n")
    os.replace(partial, path)
    return path


def unregister(port: int, directory: Path | None = None) -> None:
    """Remove this process's file for ``port``; never another process's (a newer stack's)."""
    path = (directory or DEV_STACKS_DIR) / f"{port}.json"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def running(directory: Path | None = None) -> list[RunningDevStack]:
    """The stacks whose process is alive, by port."""
    stacks = []
    for path in sorted((directory or DEV_STACKS_DIR).glob("*.json")):
        stack = _read(path)
        if stack is not None:
            stacks.append(stack)
    return sorted(stacks, key=lambda stack: stack.port)


def _read(path: Path) -> RunningDevStack | None:
    try:
        raw = json.loads(path.read_text())
        stack = RunningDevStack(
            port=int(raw["port"]),
            name=str(raw.get("name") or default_name(int(raw["port"]))),
            aws_endpoint_url=str(raw["aws_endpoint_url"]),
            orb_api_base_url=str(raw.get("orb_api_base_url") or ""),
            pid=int(raw["pid"]),
        )
        if stack.pid <= 0:
            return None
        os.kill(stack.pid, 0)  # signal 0: only checks the process exists
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
        return None  # unreadable, or its stack has stopped (killed before it could clean up)
    return stack


def choose(stacks: list[RunningDevStack], port: int | None = None, name: str = "") -> RunningDevStack | None:
    """The stack ``--port``/``--dev NAME`` names, the only one running, or None if none runs."""
    if port is not None or name:
        for stack in stacks:
            if (port is None or stack.port == port) and (not name or stack.name == name):
                return stack
        asked = " ".join(part for part in (f"--port {port}" if port is not None else "", name) if part)
        raise TargetError(
            f"--dev: no running dev stack matches {printable(asked)}; running: {_listing(stacks) or 'none'}"
        )
    if len(stacks) > 1:
        raise TargetError(
            f"--dev: {len(stacks)} dev stacks are running; choose one with --port N or --dev NAME: {_listing(stacks)}"
        )
    return stacks[0] if stacks else None


def _listing(stacks: list[RunningDevStack]) -> str:
    return "; ".join(stack.describe() for stack in stacks)
