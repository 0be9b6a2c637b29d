"""The reconciler's settings (see ``orb_bridge.core.config`` for how settings are read)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from orb_bridge.aws.secrets import resolve_secret
from orb_bridge.core.config import environ_or_os
from orb_bridge.core.env_settings import EnvSettings, InvalidValueError, env
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.orb.base_url import DEFAULT_ORB_API_BASE_URL, OrbUrlError, checked_base_url


@dataclass(frozen=True, kw_only=True)
class ReconcileSettings(EnvSettings):
    """What the reconciler reads (the archive), where it keeps its place, and how hard it may ask Orb."""

    orb_api_base_url: str = field(default=DEFAULT_ORB_API_BASE_URL, metadata=env("ORB_API_BASE_URL"))
    orb_api_key: str = field(repr=False)
    audit_bucket_name: str = field(metadata=env("AUDIT_BUCKET_NAME"))
    checkpoint_table_name: str = field(metadata=env("RECONCILE_CHECKPOINT_TABLE_NAME"))
    # Search is a POST: it counts against Orb's write limit for non-ingest calls (live 50/s,
    # test mode 5/s, trial 1/s: docs/facts.md#orb-reconciliation-limits).
    requests_per_second: float = field(default=2.0, metadata=env("RECONCILE_REQUESTS_PER_SECOND", gt=0))
    full_check_events_per_hour: int = field(default=100_000, metadata=env("RECONCILE_FULL_CHECK_EVENTS_PER_HOUR", ge=1))
    # 10,000 keys catch a 0.05% loss with 99% probability: 1 - (1 - 0.0005)^10000 = 0.9933.
    sample_size: int = field(default=10_000, metadata=env("RECONCILE_SAMPLE_SIZE", ge=1))
    # Events a daily pass re-checks, of those its hour's final pass found present (basis.py): 1,000
    # is 2 searches a daily pass.
    daily_sample_size: int = field(default=1_000, metadata=env("RECONCILE_DAILY_SAMPLE_SIZE", ge=1))
    lookback_days: int = field(default=35, metadata=env("RECONCILE_LOOKBACK_DAYS", ge=1))
    grace_period_hours: float = field(default=12.0, metadata=env("ORB_GRACE_PERIOD_HOURS", gt=0))
    exclusive_source: bool = field(default=False, metadata=env("RECONCILE_EXCLUSIVE_SOURCE"))
    request_timeout_seconds: float = field(default=10.0, metadata=env("ORB_REQUEST_TIMEOUT_SECONDS", ge=0.1))
    # Stop starting Orb calls when less than this much of the invocation remains (checkpoint first).
    safety_margin_seconds: float = field(default=20.0, metadata=env("RECONCILE_SAFETY_MARGIN_SECONDS", ge=0))

    secret_fields: ClassVar[frozenset[str]] = frozenset({"orb_api_key"})

    def _check(self, name: str, value: Any) -> Any:
        if name == "orb_api_base_url":
            try:
                return checked_base_url(value)
            except OrbUrlError as exc:
                raise InvalidValueError(str(exc)) from None
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReconcileSettings:
        environ = environ_or_os(environ)
        api_key = resolve_secret("ORB_API_KEY", environ, arn_variable="ORB_API_KEY_SECRET_ARN")
        if not api_key:
            raise ConfigurationError("ORB_API_KEY_SECRET_ARN (or ORB_API_KEY locally) is required")
        return cls._validate_env(environ, orb_api_key=api_key)
