"""Helpers shared by the benchmarks: repository paths, timing, machine description, tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.sqs_stub import InProcessSqs  # noqa: F401  (used by the benchmarks through this module)
from orb_bridge_dev.devstack.lambda_runtime import LambdaContext, load_function

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
PYTHON = sys.executable

# Credentials that can never reach a real account; the benchmarks talk to loopback or stubs.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_METRICS_NAMESPACE": "SegmentOrbBridge",
    "POWERTOOLS_SERVICE_NAME": "bench",
    # Lambda's default log level; DEBUG/INFO lines per event would dominate the figures.
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def isolate_aws_environment() -> None:
    """Point boto3 at fake credentials and nowhere real, whatever the developer's shell has."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(FAKE_AWS_ENV)


def load_handler(function_name: str, module_name: str | None = None) -> Any:
    """Import ``functions/<name>/app.py`` under a unique module name, as Lambda imports it."""
    return load_function(function_name, module_name, fresh=False)


def FakeLambdaContext(timeout_seconds: float = 900.0, function_name: str = "bench", memory_mb: int = 256) -> Any:  # noqa: N802
    """A Lambda context with a real remaining-time clock."""
    return LambdaContext(function_name, timeout_seconds, memory_mb)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def time_per_call(function: Callable[[], Any], *, min_seconds: float = 0.2, repeats: int = 5) -> float:
    """Median seconds per call: ``repeats`` rounds, each looping long enough to be measurable."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            function()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds / 4 or loops >= 1 << 20:
            break
        loops *= 2
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            function()
        rounds.append((time.perf_counter() - start) / loops)
    return median(rounds)


def run_json_subprocess(code: str, env: dict[str, str] | None = None, timeout: float = 300) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it must print one JSON object on its last stdout line."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    full_env.update(FAKE_AWS_ENV)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if env:
        full_env.update(env)
    completed = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT
    )
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"benchmark subprocess printed no result:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
        )
    return json.loads(lines[-1])


def machine_description() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        cores = str(len(os.sched_getaffinity(0)))
    except AttributeError:
        cores = str(os.cpu_count())
    return {
        "cpu": f"{cpu} ({platform.machine()})",
        "cores": cores,
        "memory": memory,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(terse=True),
    }


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process (all its threads) has used so far, from Linux's
    ``/proc/<pid>/stat``; None where that is not readable (another OS, a process gone)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
