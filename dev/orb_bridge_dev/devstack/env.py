"""The dev stack's settings: what the handlers' environment holds locally, and applying it.

Local defaults (a dev Orb API key and webhook secret, the Orb destination example's property mapping) fill
in what the user's settings (normally ``os.environ``) leave out; the user's settings win.
Secrets from ARNs would be read from moto's empty Secrets Manager, so plain values are used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from orb_bridge_dev.devstack.local_aws import REGION, LocalResources

DEV_ORB_API_KEY = "orb-bridge-dev-api-key"
DEV_WEBHOOK_SECRET = "orb-bridge-dev-webhook-secret"
# Segment's Orb destination example (docs/facts.md#segment-track-calls) carries these properties; keep them all locally.
DEFAULT_PROPERTIES_MAPPING = {"amount": "amount", "currency": "currency", "confirmation_time": "confirmation_time"}

# Secrets from ARNs would be read from moto's (empty) Secrets Manager: locally use plain values.
_ARN_VARIABLES = (
    "ORB_API_KEY_SECRET_ARN",
    "SEGMENT_SHARED_SECRET_ARN",
    "SEGMENT_AUTH_TOKEN_ARN",
    "ORB_WEBHOOK_SECRET_ARN",
)


def cli_target(port: int, name: str = "") -> str:
    """What names a dev stack to the `--dev` commands: `--dev` for the usual one, else its name or port."""
    if name:
        return f"--dev {name}"
    return "--dev" if port == 3000 else f"--dev --port {port}"


class DevStackError(RuntimeError):
    """The dev stack cannot start as configured (the message says what to change)."""


class DevStackEnvironment:
    """The settings half of ``DevStack``: which Orb, which secrets, the handlers' environment."""

    config: Any  # DevStackConfig
    user_env: Mapping[str, str]
    _saved_env: dict[str, str | None]

    @property
    def cli_target(self) -> str:
        return cli_target(self.config.port, self.config.name)

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

    def check_settings(self) -> None:
        """Refuse, before anything starts, settings that would let anyone bill a real Orb account."""
        if not self.uses_real_orb:
            return
        if not self.user_env.get("ORB_API_KEY", "").strip():
            raise DevStackError("ORB_API_BASE_URL is set (real Orb): set ORB_API_KEY too")
        if not self.segment_authenticated:
            # Loopback is no boundary: every program on this machine, and any web page that gets
            # past the loopback guard, could bill the account's customers through /segment.
            raise DevStackError(
                "ORB_API_BASE_URL points at an Orb other than the dev stack's sandbox, and /segment "
                "would accept Track calls from anyone on this machine and bill them there: set "
                "SEGMENT_AUTH_TOKEN (or SEGMENT_SHARED_SECRET) to the credential your Segment "
                "destination sends, or unset ORB_API_BASE_URL to use the local Orb sandbox"
            )

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
            # As deployed: the hourly budget of stored unauthenticated bytes is counted there.
            "UNAUTHENTICATED_STORE_TABLE_NAME": resources.idempotency_table_name,
            "WEBHOOK_EVENT_BUS_NAME": resources.event_bus_name,
            # Ingest archives every Orb 200 there, as deployed (``orb-bridge backfill --dev`` too).
            "AUDIT_BUCKET_NAME": resources.audit_bucket_name,
            "ORB_API_BASE_URL": orb_base_url,
            "ORB_API_KEY": user.get("ORB_API_KEY", "") if self.uses_real_orb else DEV_ORB_API_KEY,
            "ORB_WEBHOOK_SECRET": user.get("ORB_WEBHOOK_SECRET", "").strip() or DEV_WEBHOOK_SECRET,
            "EXTERNAL_CUSTOMER_ID_FIELD": user.get("EXTERNAL_CUSTOMER_ID_FIELD", "").strip() or "userId",
            "PROPERTIES_MAPPING": user.get("PROPERTIES_MAPPING", "").strip() or json.dumps(DEFAULT_PROPERTIES_MAPPING),
            "ALLOW_UNAUTHENTICATED": "false" if self.segment_authenticated else "true",
            # Metrics go to moto's CloudWatch (devstack/metrics_sink.py), not the terminal; warnings
            # and errors only in the output (override freely).
            "POWERTOOLS_METRICS_DISABLED": user.get("POWERTOOLS_METRICS_DISABLED", "false"),
            "POWERTOOLS_LOG_LEVEL": user.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            "POWERTOOLS_SERVICE_NAME": "orb-bridge-dev",
            # The ingest handler holds failed messages back (1 min / 15 min doubling in AWS):
            # locally, retries come after the short local visibility timeout instead.
            "RETRY_BACKOFF_SECONDS": str(self.config.local_visibility_timeout),
            "CONFIG_ERROR_BACKOFF_SECONDS": str(self.config.local_visibility_timeout),
            # No pacing table locally (the deployed stack paces through one): a sandbox rate
            # limit is met with 429s, which ingest handles by deferring.
            # The stale-event hint in rejected records: `orb-bridge backfill --dev` here.
            "ORB_BRIDGE_BACKFILL_TARGET": self.cli_target,
            "ORB_REQUESTS_PER_SECOND": "0",
            "ORB_EVENTS_PER_MINUTE": "0",
        }
        # The audit archive and the reconciler's checkpoints (when the template declares them).
        for name, role in (
            ("AUDIT_BUCKET_NAME", "audit_bucket_name"),
            ("RECONCILE_CHECKPOINT_TABLE_NAME", "reconcile_checkpoint_table_name"),
        ):
            if resources.extra.get(role):
                env[name] = resources.extra[role]
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


def map_settings_env(env: Mapping[str, str]) -> dict[str, str]:
    """The settings a dry run uses: the environment, with the dev stack's defaults."""
    merged = dict(env)
    if not merged.get("EXTERNAL_CUSTOMER_ID_FIELD", "").strip():
        merged["EXTERNAL_CUSTOMER_ID_FIELD"] = "userId"
    if not merged.get("PROPERTIES_MAPPING", "").strip():
        merged["PROPERTIES_MAPPING"] = json.dumps(DEFAULT_PROPERTIES_MAPPING)
    return merged
