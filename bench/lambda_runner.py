"""Runs one case of the lambda-like bench in a fresh python3.13 child (``bench/lambda_child.py``)
with the function's environment as Lambda sets it, against moto's resources on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.lambda_events import ORB_API_KEY, SEGMENT_TOKEN, WEBHOOK_SECRET, segment_event, write_events

FUNCTION_DIRS = {
    "track_intake": "TrackIntakeFunction",
    "orb_ingest": "OrbIngestFunction",
    "orb_webhook": "OrbWebhookFunction",
}
# The clients each handler uses; the handlers build them during INIT (``aws.prewarm``, in the
# import step), so this step only finds them: it stays to show that nothing is left to build.
CLIENTS = {"track_intake": ["sqs"], "orb_ingest": [], "orb_webhook": ["dynamodb", "events"]}


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
