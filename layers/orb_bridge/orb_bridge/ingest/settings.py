"""Orb ingest's settings (see ``orb_bridge.core.config`` for how settings are read)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from orb_bridge.aws.secrets import resolve_secret
from orb_bridge.core.config import environ_or_os
from orb_bridge.core.env_settings import EnvSettings, InvalidValueError, env
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.orb.base_url import DEFAULT_ORB_API_BASE_URL, OrbUrlError, checked_base_url

# Orb takes at most 500 events per ingest request (docs/facts.md#orb-ingest-limits).
ORB_MAX_EVENTS_PER_REQUEST = 500
# S3's bucket naming rules (3-63 lower-case letters, digits, dots, hyphens; a letter or digit at
# each end): a mistyped name is a configuration error, not archive writes failing forever.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# The most an SQS event source's MaximumConcurrency takes.
MAX_EVENT_SOURCE_CONCURRENCY = 1000


def _https_only(value: str) -> str:
    """The Orb API key travels in the Authorization header: ``orb_bridge.orb.base_url``'s rule."""
    try:
        return checked_base_url(value)
    except OrbUrlError as exc:
        raise InvalidValueError(str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class IngestSettings(EnvSettings):
    """Orb ingest: Orb's URL and key (from its secret), request sizes, pacing, time budget."""

    orb_api_base_url: str = field(default=DEFAULT_ORB_API_BASE_URL, metadata=env("ORB_API_BASE_URL"))
    orb_api_key: str = field(repr=False)
    rejected_queue_url: str = field(metadata=env("REJECTED_QUEUE_URL"))
    # More than Orb takes is lowered to Orb's 500 by from_env (tests build larger ones directly).
    max_events_per_request: int = field(
        default=ORB_MAX_EVENTS_PER_REQUEST, metadata=env("ORB_MAX_EVENTS_PER_REQUEST", ge=1)
    )
    # 20 x 500 = SQS's largest batch (10,000) in one round of requests. The Orb request rate is
    # bounded by this times the event source's MaximumConcurrency (template: IngestMaxConcurrency).
    max_concurrent_requests: int = field(default=20, metadata=env("ORB_MAX_CONCURRENT_REQUESTS", ge=1))
    request_timeout_seconds: float = field(default=10.0, metadata=env("ORB_REQUEST_TIMEOUT_SECONDS", ge=0.1))
    # Stop starting new Orb requests when less than this much of the invocation remains.
    safety_margin_seconds: float = field(default=3.0, metadata=env("INGEST_SAFETY_MARGIN_SECONDS", ge=0))
    # Orb's limits, shared by every concurrent invocation through the pacing table (see
    # orb_bridge.ingest.pacing). 0 = not paced; both 0 (the default when unset, e.g. locally): no table
    # and no AWS call at all. The template sets Orb's live defaults, 100/s and 10,000/min.
    requests_per_second: float = field(default=0.0, metadata=env("ORB_REQUESTS_PER_SECOND", ge=0))
    events_per_minute: float = field(default=0.0, metadata=env("ORB_EVENTS_PER_MINUTE", ge=0))
    pacing_table_name: str = field(default="", metadata=env("ORB_PACING_TABLE_NAME"))
    # The event source's MaximumConcurrency (template: IngestMaxConcurrency). When the pacing
    # table fails, each container paces by 1/this of the budget, so all together stay within it.
    # At most 1,000, the largest MaximumConcurrency SQS event sources take.
    ingest_max_concurrency: int = field(default=5, metadata=env("INGEST_MAX_CONCURRENCY", ge=1))
    # Requests one invocation may make, splits and re-sends after a 400 included.
    # 200: ten events refused by a 400 naming nobody, among 2,000, are isolated in one invocation
    # (150 requests measured, tests/unit/ingest/test_ingest_orb_400.py).
    max_requests_per_invocation: int = field(default=200, metadata=env("ORB_MAX_REQUESTS_PER_INVOCATION", ge=1))
    # Orb accepts events up to this many hours old (docs/facts.md); older ones cannot be ingested.
    grace_period_hours: float = field(default=12.0, metadata=env("ORB_GRACE_PERIOD_HOURS", gt=0))

    # The audit archive's bucket (orb_bridge.ingest.archive): empty (unset) = nothing archived.
    audit_bucket_name: str = field(default="", metadata=env("AUDIT_BUCKET_NAME"))

    secret_fields: ClassVar[frozenset[str]] = frozenset({"orb_api_key"})

    def _check(self, name: str, value: Any) -> Any:
        if name == "ingest_max_concurrency" and value > MAX_EVENT_SOURCE_CONCURRENCY:
            raise InvalidValueError(f"must be <= {MAX_EVENT_SOURCE_CONCURRENCY}")
        if name == "audit_bucket_name" and value and not BUCKET_NAME.fullmatch(value):
            raise InvalidValueError("must be an S3 bucket name (or empty: nothing archived)")
        return _https_only(value) if name == "orb_api_base_url" else value

    @property
    def paced(self) -> bool:
        return self.requests_per_second > 0 or self.events_per_minute > 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestSettings:
        environ = environ_or_os(environ)
        api_key = resolve_secret("ORB_API_KEY", environ, arn_variable="ORB_API_KEY_SECRET_ARN")
        if not api_key:
            raise ConfigurationError("ORB_API_KEY_SECRET_ARN (or ORB_API_KEY locally) is required")
        # The mapping is not part of these settings: ingest reads it (MappingSettings) only when a
        # redriven intake record needs re-mapping, so a broken mapping never stops plain events.
        settings = cls._validate_env(environ, orb_api_key=api_key)
        if settings.max_events_per_request > ORB_MAX_EVENTS_PER_REQUEST:
            settings = dataclasses.replace(settings, max_events_per_request=ORB_MAX_EVENTS_PER_REQUEST)
        if settings.paced and not settings.pacing_table_name:
            raise ConfigurationError(
                "ORB_PACING_TABLE_NAME is required when ORB_REQUESTS_PER_SECOND or ORB_EVENTS_PER_MINUTE "
                "is not 0 (set both to 0 to turn pacing off)"
            )
        if settings.events_per_minute and settings.events_per_minute < settings.max_events_per_request:
            raise ConfigurationError(
                f"ORB_EVENTS_PER_MINUTE ({settings.events_per_minute:g}) is below ORB_MAX_EVENTS_PER_REQUEST "
                f"({settings.max_events_per_request}): lower the chunk size or raise the budget"
            )
        return settings
