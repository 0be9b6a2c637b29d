"""The Orb sandbox in its own process, as the ingest benches use it (its work then does not compete
with the code measured for the GIL), and the events it holds."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.common import PYTHON, ROOT

API_KEY = "bench-orb-key"


@dataclass(frozen=True)
class SandboxProcess:
    base_url: str
    pid: int  # to read the CPU the sandbox spent (bench.common.process_cpu_seconds)


@contextmanager
def sandbox_process(latency_seconds: float = 0.1, extra_args: tuple[str, ...] = ()) -> Iterator[SandboxProcess]:
    """The Orb sandbox in a child process on 127.0.0.1 (a free port)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "dev"), str(ROOT)]), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "orb_bridge_dev.orb_sandbox",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--latency-seconds",
            str(latency_seconds),
            *extra_args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"Orb sandbox did not start: {line!r}")
        yield SandboxProcess(line.split("listening on", 1)[1].split()[0], process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def volume(base_url: str) -> int:
    """Events the sandbox holds (its events/volume endpoint, all time)."""
    import httpx

    response = httpx.get(
        f"{base_url}/events/volume",
        params={"timeframe_start": "2000-01-01T00:00:00Z"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    response.raise_for_status()
    return sum(int(bucket.get("count", 0)) for bucket in response.json().get("data", []))
