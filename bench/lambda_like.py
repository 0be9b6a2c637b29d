"""What Lambda runs: the `sam build` artifact in python3.13 with only the runtime's boto3.

Full cold starts (fresh process each: import, settings with their secret reads, clients, first
request), beside the floor (``import boto3`` + one client + one call), every AWS call answered by
moto's server on 127.0.0.1 and Orb by the sandbox (no added latency), so both sides get the same
answers. Then intake's per-event cost on a 1,000-event body beside the unavoidable work (parse the
body + 100 SendMessageBatch of 10 through boto3), SQS answered in-process by the same stub.
The children run ``bench/lambda_child.py``; see its docstring for the path layout.
"""

from __future__ import annotations

import json
import os
import pstats
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, median
from orb_bridge_dev.devstack.gateway import http_api_v2_event
from orb_bridge_dev.devstack.lambda_runtime import sqs_event

FUNCTION_DIRS = {
    "track_intake": "TrackIntakeFunction",
    "orb_ingest": "OrbIngestFunction",
    "orb_webhook": "OrbWebhookFunction",
}
# The clients each handler uses; the handlers build them during INIT (``aws.prewarm``, in the
# import step), so this step only finds them: it stays to show that nothing is left to build.
CLIENTS = {"track_intake": ["sqs"], "orb_ingest": [], "orb_webhook": ["dynamodb", "events"]}
COLD_TARGETS = {"track_intake": 1.3, "orb_ingest": 1.5, "orb_webhook": 1.5}
INTAKE_PER_EVENT_TARGET = 1.5
STEPS = ("import", "settings", "clients", "first request")
SEGMENT_TOKEN = "bench-segment-token"
ORB_API_KEY = "bench-orb-key"  # the sandbox's key (bench.ingest.API_KEY)
WEBHOOK_SECRET = "bench-webhook-secret"
ACCOUNT = "123456789012"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Resources:
    """moto's resources the functions use: queues, secrets, the idempotency table, the bus."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        sqs = session.client("sqs", endpoint_url=endpoint)
        secrets = session.client("secretsmanager", endpoint_url=endpoint)
        self.ingest_queue = sqs.create_queue(QueueName="bench-ingest")["QueueUrl"]
        self.rejected_queue = sqs.create_queue(QueueName="bench-rejected")["QueueUrl"]
        self.secret_arns = {
            name: secrets.create_secret(Name=f"bench/{name}", SecretString=value)["ARN"]
            for name, value in (("segment", SEGMENT_TOKEN), ("orb", ORB_API_KEY), ("webhook", WEBHOOK_SECRET))
        }
        session.client("dynamodb", endpoint_url=endpoint).create_table(
            TableName="bench-idempotency",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
        session.client("events", endpoint_url=endpoint).create_event_bus(Name="bench-bus")


def function_env(function: str, resources: Resources, orb_url: str) -> dict[str, str]:
    common = {
        "POWERTOOLS_SERVICE_NAME": function,
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "REJECTED_QUEUE_URL": resources.rejected_queue,
        "INGEST_QUEUE_URL": resources.ingest_queue,
    }
    return (
        common
        | {
            "track_intake": {
                "EXTERNAL_CUSTOMER_ID_FIELD": "userId",
                "SEGMENT_AUTH_TOKEN_ARN": resources.secret_arns["segment"],
                "PROPERTIES_MAPPING": json.dumps({"amount": "amount", "currency": "currency", "region": "region"}),
                "ALLOW_UNAUTHENTICATED": "false",
            },
            "orb_ingest": {"ORB_API_BASE_URL": orb_url, "ORB_API_KEY_SECRET_ARN": resources.secret_arns["orb"]},
            "orb_webhook": {
                "ORB_WEBHOOK_SECRET_ARN": resources.secret_arns["webhook"],
                "WEBHOOK_EVENT_BUS_NAME": "bench-bus",
                "IDEMPOTENCY_TABLE_NAME": "bench-idempotency",
            },
        }[function]
    )


def segment_event(index: int) -> dict[str, Any]:
    now = _now()
    return {
        "type": "track",
        "event": "api_call",
        "userId": f"customer_{index % 97}",
        "anonymousId": f"anon-{index}",
        "messageId": f"bench-{uuid.uuid4()}",
        "timestamp": now,
        "originalTimestamp": now,
        "sentAt": now,
        "receivedAt": now,
        "properties": {"amount": index % 100, "currency": "USD", "region": "eu-west-1", "ignored": "x" * 20},
        "context": {"library": {"name": "analytics-node", "version": "6.0.0"}, "ip": "203.0.113.7"},
    }


def http_event(body: bytes, headers: list[tuple[str, str]], path: str) -> dict[str, Any]:
    return http_api_v2_event(
        method="POST",
        raw_path=path,
        raw_query="",
        headers=headers,
        body=body,
        route_key=f"POST {path}",
        source_ip="127.0.0.1",
        host="localhost",
    )


def write_events(directory: Path, batch_events: int = 1000) -> dict[str, str]:
    """Fresh first-request events (new ids, a webhook signed now) as the event sources build them."""
    from orb_bridge.webhooks import signature

    auth = [("content-type", "application/json"), ("authorization", f"Bearer {SEGMENT_TOKEN}")]
    webhook_body = json.dumps(
        {
            "id": f"wh_{uuid.uuid4().hex}",
            "created_at": _now(),
            "type": "resource_event.test",
            "properties": {"message": "bench"},
        }
    ).encode()
    timestamp = signature.format_timestamp(datetime.now(UTC))
    webhook_headers = [
        ("content-type", "application/json"),
        ("x-orb-timestamp", timestamp),
        ("x-orb-signature", signature.sign(WEBHOOK_SECRET, timestamp, webhook_body)),
    ]
    run = uuid.uuid4().hex[:8]
    orb_events = [
        json.dumps(
            {
                "event_name": "api_request",
                "idempotency_key": f"{run}-{n}",
                "timestamp": _now(),
                "external_customer_id": "customer_1",
                "properties": {"n": n},
            }
        )
        for n in range(10)
    ]
    ingest = sqs_event(orb_events, "bench-ingest")
    for record in ingest["Records"]:
        record["eventSourceARN"] = f"arn:aws:sqs:us-east-1:{ACCOUNT}:bench-ingest"
    events = {
        "track_intake": http_event(json.dumps(segment_event(0)).encode(), auth, "/segment"),
        "intake_batch": http_event(
            json.dumps([segment_event(n) for n in range(batch_events)]).encode(), auth, "/segment"
        ),
        "orb_ingest": ingest,
        "orb_webhook": http_event(webhook_body, webhook_headers, "/orb/webhook"),
    }
    paths = {}
    for name, event in events.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(event))
        paths[name] = str(path)
    return paths


class Runner:
    def __init__(self, python: Path, build_dir: Path, moto_url: str, orb_url: str, workdir: Path) -> None:
        # Absolute: the children run in a scratch directory.
        self.python, self.build_dir = Path(os.path.abspath(python)), build_dir.resolve()
        self.moto_url, self.orb_url, self.workdir = moto_url, orb_url, workdir
        self.resources = Resources(moto_url)
        site = next((self.python.parent.parent / "lib").glob("python3.13/site-packages"))
        self.base_spec = {
            "layer_dir": str(self.build_dir / "OrbBridgeLayer" / "python"),
            "runtime_site": str(site),
            "queue_url": self.resources.ingest_queue,
            "clients": CLIENTS,
            "stub_path": str(ROOT / "bench" / "sqs_stub.py"),
            "floor_message": json.dumps(segment_event(0)),
        }

    def run(
        self, case: str, function: str = "track_intake", flags: tuple[str, ...] = (), **extra: Any
    ) -> dict[str, Any]:
        spec_path, result_path = self.workdir / "spec.json", self.workdir / "result.json"
        result_path.unlink(missing_ok=True)
        task_dir = self.build_dir / FUNCTION_DIRS[function]
        spec = (
            self.base_spec
            | {"task_dir": str(task_dir), "result_path": str(result_path), "events": write_events(self.workdir)}
            | extra
        )
        spec_path.write_text(json.dumps(spec))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "LAMBDA_TASK_ROOT": str(task_dir),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_LEVEL": "INFO",
            "POWERTOOLS_METRICS_NAMESPACE": "SegmentOrbBridge",
            "PYDANTIC_DISABLE_PLUGINS": "__all__",
        }
        env |= function_env(function, self.resources, self.orb_url)
        if case == "intake-batch":
            env["AWS_LAMBDA_LOG_LEVEL"] = "WARNING"  # per-event figures: no INFO line per request
        completed = subprocess.run(
            [str(self.python), "-P", "-s", *flags, str(ROOT / "bench" / "lambda_child.py"), case, str(spec_path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.workdir,
            timeout=300,
        )
        if completed.returncode != 0 or not result_path.exists():
            raise RuntimeError(
                f"lambda-like child {case} failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
                f"\n{completed.stdout[-1500:]}"
            )
        result = json.loads(result_path.read_text())
        result["stderr"] = completed.stderr
        return result


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
    from bench.ingest import sandbox_process
    from orb_bridge_dev.devstack.local_aws import MotoServerProcess

    moto = MotoServerProcess()
    moto.start()
    try:
        with sandbox_process(latency_seconds=0.0) as orb_url, tempfile.TemporaryDirectory() as workdir:
            started = time.perf_counter()
            runner = Runner(python, build_dir, f"http://127.0.0.1:{moto.port}", orb_url, Path(workdir))
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
