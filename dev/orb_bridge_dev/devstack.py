"""The local dev stack: the real handlers behind a local HTTP API, on embedded AWS and an Orb sandbox.

    HTTP 127.0.0.1:3000  --POST /segment------>  track_intake  --SQS-->  poller --> orb_ingest --> Orb sandbox :3001
                         --POST /orb/webhook-->  orb_webhook   --EventBridge bus--> bus tap queue (to count)

Everything runs in one process: moto's server (resources from template.yaml), the Orb sandbox
(unless ``ORB_API_BASE_URL`` points at a real Orb), the gateway and the SQS poller. The
handlers read their settings from ``os.environ``, which ``start`` fills in (user settings win)
and ``stop`` restores.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from orb_bridge_dev.gateway import Gateway, Route
from orb_bridge_dev.local_aws import REGION, LocalAws, LocalResources
from orb_bridge_dev import lambda_runtime
from orb_bridge_dev.poller import SqsEventSourcePoller

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = ROOT / "template.yaml"

DEV_ORB_API_KEY = "orb-bridge-dev-api-key"
DEV_WEBHOOK_SECRET = "orb-bridge-dev-webhook-secret"
# The seed's Track example (FACTS.md) carries these properties; keep them all locally.
DEFAULT_PROPERTIES_MAPPING = {"amount": "amount", "currency": "currency", "confirmation_time": "confirmation_time"}

# Secrets from ARNs would be read from moto's (empty) Secrets Manager: locally use plain values.
_ARN_VARIABLES = (
    "ORB_API_KEY_SECRET_ARN",
    "SEGMENT_SHARED_SECRET_ARN",
    "SEGMENT_AUTH_TOKEN_ARN",
    "ORB_WEBHOOK_SECRET_ARN",
)


class DevStackError(RuntimeError):
    """The dev stack cannot start as configured (the message says what to change)."""


@dataclass
class DevStackConfig:
    port: int = 3000
    sandbox_port: int = 3001
    moto_port: int = 0
    template_path: Path = DEFAULT_TEMPLATE
    # Short, so that a failed message comes back within seconds (the template's is for AWS).
    local_visibility_timeout: int = 2
    faults: Any = None  # orb_sandbox.FaultConfig
    send_test_webhook: bool = True
    # The settings the user gave (normally os.environ); the stack's defaults fill the rest.
    user_env: Mapping[str, str] | None = None


@dataclass
class Counters:
    """What the stack has done, for the progress line and the tests."""

    segment_requests: int = 0
    received: int = 0  # Segment events in the requests answered
    enqueued: int = 0  # accepted: Orb events put on the ingest queue
    skipped: int = 0  # non-Track calls acknowledged
    intake_rejected: int = 0
    webhooks_verified: int = 0  # delivered and accepted (forwarded or duplicate)
    webhooks_duplicate: int = 0
    webhooks_refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def load_function(name: str, module_prefix: str = "orb_bridge_dev_fn") -> ModuleType:
    """Import ``functions/<name>/app.py`` afresh (a new module, hence fresh per-container caches)."""
    try:
        return lambda_runtime.load_function(name, f"{module_prefix}_{name}_app")
    except lambda_runtime.HandlerNotFound as exc:
        raise DevStackError(str(exc)) from None


def _without_metric_output(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Drop each invocation's metrics when POWERTOOLS_METRICS_DISABLED is set.

    Powertools (3.37) does not clear disabled metrics after an invocation, so they pile up and
    its 100-value overflow prints them anyway, in ever larger JSON blobs between the status lines.
    """
    from orb_bridge.observability import metrics

    def invoke(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        finally:
            if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
                metrics.clear_metrics()

    return invoke


def _reset_container_caches() -> None:
    """Forget clients and settings the layer caches per process (a new "container")."""
    from orb_bridge import aws

    aws.reset_clients()
    for module_name, function_name in (("orb_bridge.intake", "reset"), ("orb_bridge.ingest", "forget_container_service")):
        module = sys.modules.get(module_name)
        reset = getattr(module, function_name, None) if module else None
        if callable(reset):
            reset()


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class DevStack:
    def __init__(self, config: DevStackConfig | None = None) -> None:
        self.config = config or DevStackConfig()
        self.user_env: Mapping[str, str] = dict(self.config.user_env if self.config.user_env is not None else os.environ)
        self.counters = Counters()
        self.local_aws: LocalAws | None = None
        self.resources: LocalResources | None = None
        self.sandbox: Any = None  # OrbSandbox when Orb is local
        self.webhook_signer: Any = None  # an OrbSandbox used only to sign and send webhooks
        self.gateway: Gateway | None = None
        self.poller: SqsEventSourcePoller | None = None
        self.env: dict[str, str] = {}
        self.test_webhook_status: int | None = None
        self._saved_env: dict[str, str | None] = {}
        self._sqs: Any = None

    # ---- configuration -------------------------------------------------------------------
    @property
    def uses_real_orb(self) -> bool:
        return bool(self.user_env.get("ORB_API_BASE_URL", "").strip())

    @property
    def webhook_secret(self) -> str:
        value = self.user_env.get("ORB_WEBHOOK_SECRET", "").strip()
        # Several secrets (rotation) may be listed: the first signs the dev stack's webhooks.
        first = next((s.strip() for s in value.replace("\n", ",").split(",") if s.strip()), "")
        return first or DEV_WEBHOOK_SECRET

    @property
    def segment_authenticated(self) -> bool:
        return any(self.user_env.get(name, "").strip() for name in ("SEGMENT_SHARED_SECRET", "SEGMENT_AUTH_TOKEN"))

    def handler_env(self, resources: LocalResources, orb_base_url: str) -> dict[str, str]:
        """The environment the handlers run with: the stack's values, then the user's settings."""
        user = self.user_env
        env = {
            "AWS_ENDPOINT_URL": resources.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "INGEST_QUEUE_URL": resources.ingest_queue.url,
            "REJECTED_QUEUE_URL": resources.rejected_queue.url,
            "IDEMPOTENCY_TABLE_NAME": resources.idempotency_table_name,
            "WEBHOOK_EVENT_BUS_NAME": resources.event_bus_name,
            "ORB_API_BASE_URL": orb_base_url,
            "ORB_API_KEY": user.get("ORB_API_KEY", "") if self.uses_real_orb else DEV_ORB_API_KEY,
            "ORB_WEBHOOK_SECRET": user.get("ORB_WEBHOOK_SECRET", "").strip() or DEV_WEBHOOK_SECRET,
            "EXTERNAL_CUSTOMER_ID_FIELD": user.get("EXTERNAL_CUSTOMER_ID_FIELD", "").strip() or "userId",
            "PROPERTIES_MAPPING": user.get("PROPERTIES_MAPPING", "").strip() or json.dumps(DEFAULT_PROPERTIES_MAPPING),
            "ALLOW_UNAUTHENTICATED": "false" if self.segment_authenticated else "true",
            # Readable dev output: no EMF metric blobs, warnings and errors only (override freely).
            "POWERTOOLS_METRICS_DISABLED": user.get("POWERTOOLS_METRICS_DISABLED", "true"),
            "POWERTOOLS_LOG_LEVEL": user.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            "POWERTOOLS_SERVICE_NAME": "orb-bridge-dev",
            # The ingest handler holds failed messages back (1 min / 15 min doubling in AWS):
            # locally, retries come after the short local visibility timeout instead.
            "RETRY_BACKOFF_SECONDS": str(self.config.local_visibility_timeout),
            "CONFIG_ERROR_BACKOFF_SECONDS": str(self.config.local_visibility_timeout),
            # No pacing table locally (the deployed stack paces through one): a sandbox rate
            # limit is met with 429s, which ingest handles by deferring.
            "ORB_REQUESTS_PER_SECOND": "0",
            "ORB_EVENTS_PER_MINUTE": "0",
        }
        for name in (
            "EVENT_NAME_FIELD",
            "IDEMPOTENCY_KEY_FIELD",
            "SEGMENT_SHARED_SECRET",
            "SEGMENT_AUTH_TOKEN",
            "REQUIRE_BEARER_FOR_BATCHES",
            "ORB_WEBHOOK_TOLERANCE_SECONDS",
        ):
            if user.get(name, "").strip():
                env[name] = user[name]
        if self.segment_authenticated and user.get("ALLOW_UNAUTHENTICATED", "").strip():
            env["ALLOW_UNAUTHENTICATED"] = user["ALLOW_UNAUTHENTICATED"]
        return env

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> DevStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        from orb_bridge_dev.orb_sandbox import OrbSandbox
        from orb_bridge_dev.template import function_properties, load_template, resolve, sqs_event_source

        if self.uses_real_orb and not self.user_env.get("ORB_API_KEY", "").strip():
            raise DevStackError("ORB_API_BASE_URL is set (real Orb): set ORB_API_KEY too")
        template_path = Path(self.config.template_path)
        if not template_path.is_file():
            raise DevStackError(f"template not found: {template_path}")
        template = load_template(template_path)

        self.local_aws = LocalAws(
            template, port=self.config.moto_port, local_visibility_timeout=self.config.local_visibility_timeout
        )
        resources = self.resources = self.local_aws.start()

        if self.uses_real_orb:
            orb_base_url = self.user_env["ORB_API_BASE_URL"].strip().rstrip("/")
            self.webhook_signer = OrbSandbox(webhook_secret=self.webhook_secret)
        else:
            self.sandbox = OrbSandbox(
                api_key=DEV_ORB_API_KEY,
                port=self.config.sandbox_port,
                webhook_secret=self.webhook_secret,
                faults=self.config.faults,
            ).start()
            self.webhook_signer = self.sandbox
            orb_base_url = self.sandbox.base_url

        self.env = self.handler_env(resources, orb_base_url)
        self._apply_env(self.env)
        _reset_container_caches()
        intake = load_function("track_intake")
        ingest = load_function("orb_ingest")
        webhook = load_function("orb_webhook")

        self._sqs = self.local_aws.client("sqs")
        ingest_function = function_properties(template, "OrbIngestFunction")
        source = sqs_event_source(template, "OrbIngestFunction")
        resolved = {
            key: resolve(source[key], template)
            for key in ("BatchSize", "MaximumBatchingWindowInSeconds")
            if key in source
        }
        self.poller = SqsEventSourcePoller(
            sqs_client=self.local_aws.client("sqs"),
            queue_url=resources.ingest_queue.url,
            queue_arn=resources.ingest_queue.arn,
            handler=_without_metric_output(ingest.lambda_handler),
            function_name="OrbIngestFunction",
            function_timeout=float(ingest_function.get("Timeout", 3)),
            batch_size=int(resolved.get("BatchSize", 10)),
            batching_window=float(resolved.get("MaximumBatchingWindowInSeconds", 0)),
        )

        self.gateway = Gateway(
            [
                Route(
                    "POST", "/segment", _without_metric_output(intake.lambda_handler), "TrackIntakeFunction",
                    float(function_properties(template, "TrackIntakeFunction").get("Timeout", 3)),
                    on_response=self._count_segment_response,
                ),
                Route(
                    "POST", "/orb/webhook", _without_metric_output(webhook.lambda_handler), "OrbWebhookFunction",
                    float(function_properties(template, "OrbWebhookFunction").get("Timeout", 3)),
                    on_response=self._count_webhook_response,
                ),
            ],
            port=self.config.port,
        )
        self.gateway.start()
        self.poller.start()
        if self.config.send_test_webhook:
            response = self.webhook_signer.send_webhook(self.webhook_url, "resource_event.test")
            self.test_webhook_status = response.status_code

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()
        if self.gateway is not None:
            self.gateway.stop()
        if self.webhook_signer is not None and self.webhook_signer is not self.sandbox:
            self.webhook_signer.stop()  # closes its HTTP client
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.local_aws is not None:
            self.local_aws.stop()
        self._restore_env()
        _reset_container_caches()
        self.poller = self.gateway = self.sandbox = self.webhook_signer = self.local_aws = None

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _apply_env(self, env: Mapping[str, str]) -> None:
        for name in (*env, *_ARN_VARIABLES, "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            if name not in self._saved_env:
                self._saved_env[name] = os.environ.get(name)
        for name in (*_ARN_VARIABLES, "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)
        os.environ.update(env)

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    # ---- URLs ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self.gateway is not None
        return self.gateway.base_url

    @property
    def segment_url(self) -> str:
        return f"{self.base_url}/segment"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/orb/webhook"

    # ---- counters ------------------------------------------------------------------------
    def _count_segment_response(self, status: int, body: dict[str, Any] | None) -> None:
        with self.counters.lock:
            self.counters.segment_requests += 1
            if not body:
                return
            accepted = body.get("accepted") if isinstance(body.get("accepted"), int) else 0
            skipped = body.get("skipped") if isinstance(body.get("skipped"), int) else 0
            rejected = len(body["rejected"]) if isinstance(body.get("rejected"), list) else 0
            self.counters.received += accepted + skipped + rejected
            self.counters.enqueued += accepted
            self.counters.skipped += skipped
            self.counters.intake_rejected += rejected

    def _count_webhook_response(self, status: int, body: dict[str, Any] | None) -> None:
        with self.counters.lock:
            if 200 <= status < 300:
                self.counters.webhooks_verified += 1
                if body and body.get("status") == "duplicate":
                    self.counters.webhooks_duplicate += 1
            else:
                self.counters.webhooks_refused += 1

    def queue_depth(self, queue_url: str) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def snapshot(self) -> dict[str, Any]:
        assert self.resources is not None and self.poller is not None
        with self.counters.lock:
            counters = {
                "segment_requests": self.counters.segment_requests,
                "received": self.counters.received,
                "enqueued": self.counters.enqueued,
                "skipped": self.counters.skipped,
                "intake_rejected": self.counters.intake_rejected,
                "webhooks_verified": self.counters.webhooks_verified,
                "webhooks_duplicate": self.counters.webhooks_duplicate,
                "webhooks_refused": self.counters.webhooks_refused,
            }
        poller = self.poller.stats.snapshot()
        counters["retried"] = poller["failed"]
        counters["ingest_done"] = poller["succeeded"]
        counters["ingested"] = self.sandbox.ingested_count if self.sandbox is not None else poller["succeeded"]
        counters["in_queue"] = self.queue_depth(self.resources.ingest_queue.url)
        counters["rejected"] = self.queue_depth(self.resources.rejected_queue.url)
        counters["forwarded"] = self.queue_depth(self.resources.bus_tap_queue.url)
        counters["last_error"] = poller["last_error"]
        return counters

    def status_line(self, snapshot: Mapping[str, Any] | None = None) -> str:
        s = snapshot or self.snapshot()
        return (
            f"segment: received {s['received']}, enqueued {s['enqueued']}, skipped {s['skipped']} | "
            f"orb: ingested {s['ingested']}, retried {s['retried']}, in queue {s['in_queue']} | "
            f"rejected queue {s['rejected']} | "
            f"webhooks: verified {s['webhooks_verified']}, refused {s['webhooks_refused']}, "
            f"forwarded {s['forwarded']}"
        )

    def banner(self) -> str:
        assert self.resources is not None
        orb = (
            f"{self.user_env['ORB_API_BASE_URL']} (real Orb, ORB_API_KEY from your environment)"
            if self.uses_real_orb
            else f"{self.sandbox.base_url}  (Orb sandbox, API key {DEV_ORB_API_KEY})"
        )
        auth = "authenticated (your SEGMENT_* settings)" if self.segment_authenticated else "ALLOW_UNAUTHENTICATED=true"
        lines = [
            "orb-bridge dev stack is up",
            f"  POST {self.segment_url}      Segment Track calls ({auth})",
            f"  POST {self.webhook_url}  Orb webhooks (secret {'from ORB_WEBHOOK_SECRET' if self.user_env.get('ORB_WEBHOOK_SECRET') else DEV_WEBHOOK_SECRET})",
            f"  Orb    {orb}",
            f"  AWS    {self.resources.endpoint_url} (moto): ingest queue {self.resources.ingest_queue.name} "
            f"(visibility {self.config.local_visibility_timeout} s locally, maxReceiveCount "
            f"{self.resources.ingest_queue.max_receive_count}), rejected queue {self.resources.rejected_queue.name}, "
            f"table {self.resources.idempotency_table_name}, bus {self.resources.event_bus_name}",
            f"  mapping: EXTERNAL_CUSTOMER_ID_FIELD={self.env['EXTERNAL_CUSTOMER_ID_FIELD']} "
            f"PROPERTIES_MAPPING={self.env['PROPERTIES_MAPPING']}",
        ]
        if self.test_webhook_status is not None:
            lines.append(f"  sent a resource_event.test webhook: HTTP {self.test_webhook_status}")
        lines.append("Ctrl-C to stop.")
        return "\n".join(lines)


def run_forever(stack: DevStack, out: TextIO, stop: threading.Event, interval: float = 1.0) -> None:
    """Print a status line at once, then whenever the counters change, until ``stop`` is set."""
    last = None
    last_error = None
    while True:
        try:
            snapshot = stack.snapshot()
        except Exception as exc:  # moto briefly unavailable: say so, keep going
            print(f"[{time.strftime('%H:%M:%S')}] status unavailable: {type(exc).__name__}", file=out, flush=True)
        else:
            line = stack.status_line(snapshot)
            if line != last:
                print(f"[{time.strftime('%H:%M:%S')}] {line}", file=out, flush=True)
                last = line
            if snapshot["last_error"] and snapshot["last_error"] != last_error:
                last_error = snapshot["last_error"]
                print(f"[{time.strftime('%H:%M:%S')}] ingest batch failed: {last_error}", file=out, flush=True)
        if stop.wait(interval):
            return
