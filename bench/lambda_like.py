"""What Lambda runs: the `sam build` artifact in python3.13 with only the runtime's boto3.

Full cold starts (fresh process each: import, settings with their secret reads, clients, first
request), beside the floor (``import boto3`` + one client + one call), every AWS call answered by
moto's server on 127.0.0.1 and Orb by the sandbox (no added latency), so both sides get the same
answers. Then intake's per-event cost on a 1,000-event body beside the unavoidable work (parse the
body + 100 SendMessageBatch of 10 through boto3), SQS answered in-process by the same stub.
The children run ``bench/lambda_child.py``; see its docstring for the path layout. The events
they get are built in ``bench.lambda_events``, the children started by ``bench.lambda_runner``.
"""

from __future__ import annotations

import json
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import median
from bench.lambda_runner import FUNCTION_DIRS, Runner

COLD_TARGETS = {"track_intake": 1.3, "orb_ingest": 1.5, "orb_webhook": 1.5}
INTAKE_PER_EVENT_TARGET = 1.5
STEPS = ("import", "settings", "clients", "first request")


def _import_self_times(stderr: str) -> dict[str, float]:
    """``-X importtime`` lines -> module: its own import time in seconds."""
    times = {}
    for line in stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, _, module = line[len("import time:") :].split("|")
            times[module.strip()] = int(own) / 1e6
    return times


def import_profile(runner: Runner, rounds: int = 3) -> dict[str, list[list[str]]]:
    """Where each function's cold start goes beyond the floor's: own import time of the modules the
    floor does not load, by package (minimum over ``rounds`` fresh processes; ``app`` is the
    handler module itself, i.e. the clients it builds during INIT)."""

    def best(case: str, function: str) -> dict[str, float]:
        runs = [
            _import_self_times(runner.run(case, function, flags=("-X", "importtime"))["stderr"]) for _ in range(rounds)
        ]
        return {module: min(run.get(module, 0.0) for run in runs) for module in runs[0]}

    floor = best("floor", "track_intake")
    tables = {}
    for function in FUNCTION_DIRS:
        groups: dict[str, float] = {}
        for module, seconds in best(f"cold:{function}", function).items():
            if module not in floor:
                package = module.split(".")[0]
                group = {
                    "app": "app (the handler itself: its clients, built at INIT; the floor builds one too)",
                    "orb_bridge": "orb_bridge (ours)",
                }.get(package, package)
                groups[group] = groups.get(group, 0.0) + seconds
        top = sorted(groups.items(), key=lambda item: item[1], reverse=True)[:8]
        tables[function] = [[name, f"{seconds * 1000:.1f}"] for name, seconds in top]
        tables[function].append(["all modules the floor does not load", f"{sum(groups.values()) * 1000:.1f}"])
    return tables


def cold_starts(runner: Runner, rounds: int) -> dict[str, Any]:
    cases = [("floor", "track_intake")] + [(f"cold:{name}", name) for name in FUNCTION_DIRS]
    samples: dict[str, list[dict[str, float]]] = {case: [] for case, _ in cases}
    for round_index in range(rounds + 1):  # the first round warms the page cache; discarded
        for case, function in cases:
            steps = runner.run(case, function)["steps"]
            if round_index:
                samples[case].append(steps)
    # Each round runs the floor and every function back to back: the ratio is taken within a round,
    # then its median over rounds, so drift on this shared machine touches both sides alike.
    floor_totals = [sum(run.values()) for run in samples["floor"]]
    result: dict[str, Any] = {}
    for case, runs in samples.items():
        totals = [sum(run.values()) for run in runs]
        result[case] = {
            "total": median(totals),
            "ratio": median([t / f for t, f in zip(totals, floor_totals, strict=False)]),
            "steps": {step: median([run.get(step, 0.0) for run in runs]) for step in STEPS},
        }
    rows, met = [], True
    for case, figures in result.items():
        name = case.split(":", 1)[-1]
        ratio = figures["ratio"]
        target = COLD_TARGETS.get(name)
        verdict = ""
        if target:
            ok = ratio <= target
            met &= ok
            verdict = f"<= {target}x: {'met' if ok else 'MISSED'}"
        label = (
            "floor: import boto3 + sqs client + one SendMessageBatch" if case == "floor" else f"{name}: full cold start"
        )
        rows.append(
            [
                label,
                *(f"{figures['steps'][step] * 1000:.0f}" for step in STEPS),
                f"{figures['total'] * 1000:.0f}",
                f"{ratio:.2f}x",
                verdict,
            ]
        )
    return {"rows": rows, "met": met, "figures": result}


def intake_per_event(runner: Runner, repeats: int, profile: bool = True) -> dict[str, Any]:
    profile_path = runner.workdir / "intake.prof"
    result = runner.run(
        "intake-batch", "track_intake", repeats=repeats, profile_path=str(profile_path) if profile else ""
    )
    events, best = result["events"], result["seconds"]
    ratio = best["handler"] / best["floor"]
    top: list[list[str]] = []
    if profile:
        stats = pstats.Stats(str(profile_path))
        table = stats.stats  # type: ignore[attr-defined]  # pstats keeps it; typeshed does not declare it
        entries = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:12]  # tottime
        for (filename, line, function), (_, calls, tottime, cumtime, _) in entries:
            where = "/".join(Path(filename).parts[-2:]) if filename != "~" else "builtin"
            top.append(
                [
                    f"`{where}:{line} {function}`",
                    f"{tottime / 5 / events * 1e6:.1f}",
                    f"{cumtime / 5 / events * 1e6:.1f}",
                    f"{calls // 5:,}",
                ]
            )
    wall = result["wall_seconds"]
    return {
        "events": events,
        "floor_calls": result["floor_calls"],
        "ratio": ratio,
        "met": ratio <= INTAKE_PER_EVENT_TARGET,
        "us_per_event": {name: seconds / events * 1e6 for name, seconds in best.items()},
        "wall_us_per_event": {name: seconds / events * 1e6 for name, seconds in wall.items()},
        "single_ms": best["single"] * 1000,
        "single_wall_ms": wall["single"] * 1000,
        "profile_top": top,
    }


def run(python: Path, build_dir: Path, rounds: int = 5, repeats: int = 7) -> dict[str, Any]:
    from bench.sandbox_process import sandbox_process
    from orb_bridge_dev.devstack.local_aws import MotoServerProcess

    moto = MotoServerProcess()
    moto.start()
    try:
        with sandbox_process(latency_seconds=0.0) as orb, tempfile.TemporaryDirectory() as workdir:
            started = time.perf_counter()
            runner = Runner(python, build_dir, f"http://127.0.0.1:{moto.port}", orb.base_url, Path(workdir))
            cold = cold_starts(runner, rounds)
            intake = intake_per_event(runner, repeats)
            profile = import_profile(runner)
            python_version = runner.run("floor")["python"]
            return {
                "cold": cold,
                "intake": intake,
                "import_profile": profile,
                "python": python_version,
                "rounds": rounds,
                "repeats": repeats,
                "seconds": time.perf_counter() - started,
            }
    finally:
        moto.stop()


if __name__ == "__main__":
    import sys

    from bench.common import markdown_table

    figures = run(Path(sys.argv[1]), Path(sys.argv[2]), rounds=2, repeats=3)
    print(markdown_table(["case", *STEPS, "total ms", "vs floor", "target"], figures["cold"]["rows"]))
    print(json.dumps({k: v for k, v in figures["intake"].items() if k != "profile_top"}, indent=1))
    print(
        markdown_table(["function", "own us/event", "cumulative us/event", "calls"], figures["intake"]["profile_top"])
    )
