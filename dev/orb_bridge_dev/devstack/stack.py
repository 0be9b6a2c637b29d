"""The local dev stack: the real handlers behind a local HTTP API, on embedded AWS and an Orb sandbox.

    HTTP 127.0.0.1:3000  --POST /segment------>  track_intake  --SQS-->  poller --> orb_ingest --> Orb sandbox :3001
                         --POST /orb/webhook-->  orb_webhook   --EventBridge bus--> bus tap queue (to count)

Everything runs in one process but moto's server (a child process; resources from template.yaml):
the Orb sandbox (unless ``ORB_API_BASE_URL`` points at a real Orb, which needs a Segment
credential), the gateway and the SQS poller. Every listener answers loopback clients only
(``loopback_guard``). The
handlers read their settings from ``os.environ``, which ``start`` fills in (user settings win)
and ``stop`` restores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orb_bridge_dev.devstack import alarms
from orb_bridge_dev.devstack.alarms import alarm_refs
from orb_bridge_dev.devstack.env import (  # noqa: F401 (re-exported: the CLI and tests import them from here)
    DEFAULT_PROPERTIES_MAPPING,
    DEV_ORB_API_KEY,
    DEV_WEBHOOK_SECRET,
    DevStackEnvironment,
    DevStackError,
)
from orb_bridge_dev.devstack.gateway import Gateway, Route
from orb_bridge_dev.devstack.local_aws import LocalAws, LocalResources
from orb_bridge_dev.devstack.local_functions import (
    _reset_container_caches,
    _without_metric_output,
    load_function,
)
from orb_bridge_dev.devstack.metrics_sink import CloudWatchSink
from orb_bridge_dev.devstack.poller import SqsEventSourcePoller
from orb_bridge_dev.devstack.status import Counters, DevStackStatus, run_forever  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TEMPLATE = ROOT / "template.yaml"


@dataclass
class DevStackConfig:
    port: int = 3000
    sandbox_port: int = 3001
    moto_port: int = 0
    template_path: Path = DEFAULT_TEMPLATE
    # Short, so that a failed message comes back within seconds (the template's is for AWS).
    local_visibility_timeout: int = 2
    faults: Any = None  # orb_sandbox.FaultConfig
    sandbox_options: Mapping[str, Any] = field(default_factory=dict)  # more OrbSandbox keyword arguments
    send_test_webhook: bool = True
    name: str = ""  # `orb-bridge dev --name`: how the `--dev` commands choose this stack
    # Seconds between the reconciler's rounds (0: off); `orb-bridge dev --reconcile-every`.
    reconcile_every: float = 0.0
    # The settings the user gave (normally os.environ); the stack's defaults fill the rest.
    user_env: Mapping[str, str] | None = None


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


_Part = TypeVar("_Part")


def _listening(start: Callable[[], _Part], what: str, port: int, flag: str) -> _Part:
    """``start()``, or a port clash said with the flag that chooses another port."""
    try:
        return start()
    except OSError as exc:
        raise DevStackError(
            f"{what} cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}): another dev stack or program "
            f"uses it; choose another port with {flag}"
        ) from None


def _started(part: _Part | None) -> _Part:
    if part is None:
        raise DevStackError("the dev stack is not started (DevStack.start() first)")
    return part


class DevStack(DevStackEnvironment, DevStackStatus):
    """The whole product on loopback; settings in ``devstack_env``, reporting in ``devstack_status``."""

    def __init__(self, config: DevStackConfig | None = None) -> None:
        self.config = config or DevStackConfig()
        self.user_env: Mapping[str, str] = dict(
            self.config.user_env if self.config.user_env is not None else os.environ
        )
        self.counters = Counters()
        self._local_aws: LocalAws | None = None
        self._resources: LocalResources | None = None
        self.sandbox: Any = None  # OrbSandbox when Orb is local
        self.webhook_signer: Any = None  # an OrbSandbox used only to sign and send webhooks
        self.gateway: Gateway | None = None
        self._poller: SqsEventSourcePoller | None = None
        self.env: dict[str, str] = {}
        self.test_webhook_status: int | None = None
        self._saved_env: dict[str, str | None] = {}
        self._sqs: Any = None
        self.reconcile_loop: Any = None  # DevReconcileLoop when --reconcile-every is set
        self.metrics_sink: CloudWatchSink | None = None
        self.alarms: list[alarms.Alarm] = []

    # ---- the parts of a started stack --------------------------------------------------------
    @property
    def local_aws(self) -> LocalAws:
        return _started(self._local_aws)

    @property
    def resources(self) -> LocalResources:
        return _started(self._resources)

    @property
    def poller(self) -> SqsEventSourcePoller:
        return _started(self._poller)

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> DevStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        from orb_bridge_dev.devstack.template import function_properties, load_template, resolve, sqs_event_source
        from orb_bridge_dev.orb_sandbox import OrbSandbox

        self.check_settings()
        template_path = Path(self.config.template_path)
        if not template_path.is_file():
            raise DevStackError(f"template not found: {template_path}")
        template = load_template(template_path)

        local_aws = self._local_aws = LocalAws(
            template, port=self.config.moto_port, local_visibility_timeout=self.config.local_visibility_timeout
        )
        resources = self._resources = local_aws.start()

        if self.uses_real_orb:
            orb_base_url = self.user_env["ORB_API_BASE_URL"].strip().rstrip("/")
            self.webhook_signer = OrbSandbox(webhook_secret=self.webhook_secret)
        else:
            sandbox = self.sandbox = OrbSandbox(
                api_key=DEV_ORB_API_KEY,
                port=self.config.sandbox_port,
                webhook_secret=self.webhook_secret,
                faults=self.config.faults,
                **self.config.sandbox_options,
            )
            _listening(sandbox.start, "the Orb sandbox", self.config.sandbox_port, "--sandbox-port")
            self.webhook_signer = self.sandbox
            orb_base_url = self.sandbox.base_url

        self.env = self.handler_env(resources, orb_base_url)
        self._apply_env(self.env)
        _reset_container_caches()
        # The functions' metrics land in moto's CloudWatch, and the template's alarms watch them.
        self.metrics_sink = CloudWatchSink(local_aws.client("cloudwatch")).install()
        self.alarms = alarms.template_alarms(template, alarm_refs(resources), local_aws.stack_name)
        alarms.create(local_aws.client("cloudwatch"), self.alarms)

        def observed(handler: Callable[[Any, Any], Any], logical_id: str) -> Callable[[Any, Any], Any]:
            variables = function_properties(template, logical_id).get("Environment", {}).get("Variables", {})
            service = str(variables.get("POWERTOOLS_SERVICE_NAME", logical_id))
            return _without_metric_output(_started(self.metrics_sink).wrap(handler, service))

        intake = load_function("track_intake")
        ingest = load_function("orb_ingest")
        webhook = load_function("orb_webhook")

        self._sqs = local_aws.client("sqs")
        ingest_function = function_properties(template, "OrbIngestFunction")
        source = sqs_event_source(template, "OrbIngestFunction")
        resolved = {
            key: resolve(source[key], template)
            for key in ("BatchSize", "MaximumBatchingWindowInSeconds")
            if key in source
        }
        poller = self._poller = SqsEventSourcePoller(
            sqs_client=local_aws.client("sqs"),
            queue_url=resources.ingest_queue.url,
            queue_arn=resources.ingest_queue.arn,
            handler=observed(ingest.lambda_handler, "OrbIngestFunction"),
            function_name="OrbIngestFunction",
            function_timeout=float(ingest_function.get("Timeout", 3)),
            batch_size=int(resolved.get("BatchSize", 10)),
            batching_window=float(resolved.get("MaximumBatchingWindowInSeconds", 0)),
        )

        routes = [
            Route(
                "POST",
                "/segment",
                observed(intake.lambda_handler, "TrackIntakeFunction"),
                "TrackIntakeFunction",
                float(function_properties(template, "TrackIntakeFunction").get("Timeout", 3)),
                on_response=self._count_segment_response,
            ),
            Route(
                "POST",
                "/orb/webhook",
                observed(webhook.lambda_handler, "OrbWebhookFunction"),
                "OrbWebhookFunction",
                float(function_properties(template, "OrbWebhookFunction").get("Timeout", 3)),
                on_response=self._count_webhook_response,
            ),
        ]
        self.gateway = _listening(
            lambda: Gateway(routes, port=self.config.port), "the HTTP API", self.config.port, "--port"
        )
        self.gateway.start()
        poller.start()
        if self.config.reconcile_every > 0 and "AUDIT_BUCKET_NAME" in self.env:
            self.reconcile_loop = self._reconcile_loop(self.config.reconcile_every).start()
        if self.config.send_test_webhook:
            response = self.webhook_signer.send_webhook(self.webhook_url, "resource_event.test")
            self.test_webhook_status = response.status_code

    def _reconcile_loop(self, every_seconds: float, **options: Any) -> Any:
        """The reconciler on the stack's moto and Orb (its settings from the handlers' environment)."""
        from orb_bridge.reconcile.settings import ReconcileSettings
        from orb_bridge_dev.devstack.reconcile_loop import DevReconcileLoop

        grace = self.config.sandbox_options.get("grace_period")
        env = dict(self.env)
        if grace is not None and not self.uses_real_orb:
            env.setdefault("ORB_GRACE_PERIOD_HOURS", str(grace.total_seconds() / 3600))
        settings = ReconcileSettings.from_env(
            {**env, **{k: v for k, v in self.user_env.items() if k.startswith("RECONCILE_")}}
        )
        local_aws = self.local_aws
        return DevReconcileLoop(
            settings, local_aws.client("s3"), local_aws.client("dynamodb"), every_seconds, **options
        )

    def stop(self) -> None:
        if self.reconcile_loop is not None:
            self.reconcile_loop.stop()
            self.reconcile_loop = None
        if self._poller is not None:
            self._poller.stop()
        if self.gateway is not None:
            self.gateway.stop()
        if self.webhook_signer is not None and self.webhook_signer is not self.sandbox:
            self.webhook_signer.stop()  # closes its HTTP client
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.metrics_sink is not None:
            self.metrics_sink.uninstall()
            self.metrics_sink = None
        if self._local_aws is not None:
            self._local_aws.stop()
        self._restore_env()
        _reset_container_caches()
        self._poller = self.gateway = self.sandbox = self.webhook_signer = self._local_aws = None

    def evaluate_alarms(self) -> dict[str, str]:
        """Evaluate the template's alarms now (moto never does): their states by name."""
        queue_urls = {queue.name: queue.url for queue in (self.resources.ingest_queue, self.resources.rejected_queue)}
        return alarms.evaluate(self.local_aws.client("cloudwatch"), self._sqs, queue_urls, self.alarms)

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

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
