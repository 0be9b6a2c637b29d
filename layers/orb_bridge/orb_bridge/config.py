"""Settings: the only place environment variables are read (the template sets them from Parameters).

One frozen dataclass per function (``IntakeSettings``, ``IngestSettings``, ``WebhookSettings``)
plus the pieces they share. Each field read from the environment names its variable, its bounds
and, where its type does not say it, its parser (``env(...)``, see ``orb_bridge.env_settings``,
which also says why these are not pydantic models). ``from_env`` fills a model from the
environment; every bad value, read or passed directly, is a ``ConfigurationError`` naming the
variable.

Each function loads its settings lazily, at its first request: a misconfiguration (missing
required setting, bad number, invalid JSON mapping, unreadable secret) is reported by the
handler with a clear log line, never an import-time crash.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from orb_bridge.env_settings import EnvSettings, InvalidValueError, env
from orb_bridge.errors import ConfigurationError
from orb_bridge.orb_url import OrbUrlError, checked_base_url
from orb_bridge.secrets import resolve_secret, split_secrets

DEFAULT_ORB_API_BASE_URL = "https://api.withorb.com/v1"
# A verified webhook is handed on whole as one EventBridge entry, which must stay under 256 KiB
# (Detail plus Source, DetailType and Time): a larger body could never be forwarded, so it is
# refused up front (413, counted as body_too_large) rather than failing on every redelivery.
WEBHOOK_MAX_BODY_BYTES = 256 * 1024 - 1024
# Orb takes at most 500 events per ingest request (docs/facts.md#orb-ingest-limits).
ORB_MAX_EVENTS_PER_REQUEST = 500
# The most an SQS event source's MaximumConcurrency takes.
MAX_EVENT_SOURCE_CONCURRENCY = 1000


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _json_object_of_names(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidValueError(f"is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
    ):
        raise InvalidValueError('must be a JSON object of non-empty strings, e.g. {"amount": "amount_usd"}')
    return value


@dataclass(frozen=True, kw_only=True)
class MappingSettings(EnvSettings):
    """Segment -> Orb mapping, the same settings Segment's own Orb destination offers."""

    event_name_field: str = field(default="event", metadata=env("EVENT_NAME_FIELD"))
    external_customer_id_field: str = field(default="userId", metadata=env("EXTERNAL_CUSTOMER_ID_FIELD"))
    idempotency_key_field: str = field(default="messageId", metadata=env("IDEMPOTENCY_KEY_FIELD"))
    properties_mapping: dict[str, str] = field(
        default_factory=dict, metadata=env("PROPERTIES_MAPPING", parse=_json_object_of_names)
    )

    _DOTTED: ClassVar[frozenset[str]] = frozenset(
        {"event_name_field", "external_customer_id_field", "idempotency_key_field"}
    )

    def _check(self, name: str, value: Any) -> Any:
        if name in self._DOTTED and any(not part for part in value.split(".")):
            raise InvalidValueError("must be a dotted path such as 'properties.account_id'")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MappingSettings:
        environ = _environ(environ)
        # Segment's destination has no default for the customer id field: it must be chosen.
        if not environ.get("EXTERNAL_CUSTOMER_ID_FIELD", "").strip():
            raise ConfigurationError("EXTERNAL_CUSTOMER_ID_FIELD is required (a dotted path such as 'userId')")
        return cls._validate_env(environ)


@dataclass(frozen=True, kw_only=True)
class IntakeSettings(EnvSettings):
    """Track intake: queues, Segment credentials (from their secrets), limits, the mapping."""

    mapping: MappingSettings
    ingest_queue_url: str = field(metadata=env("INGEST_QUEUE_URL"))
    rejected_queue_url: str = field(metadata=env("REJECTED_QUEUE_URL"))
    # Several values (comma or newline separated in the secret) verify during a rotation.
    # repr=False: settings objects may end up in a log line or a traceback.
    shared_secrets: tuple[str, ...] = field(default=(), repr=False)
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)
    allow_unauthenticated: bool = field(default=False, metadata=env("ALLOW_UNAUTHENTICATED"))
    require_bearer_for_batches: bool = field(default=False, metadata=env("REQUIRE_BEARER_FOR_BATCHES"))
    # Insecure opt-out: accept batches whose X-Signature covers only their first event.
    allow_first_event_signature_for_batches: bool = field(
        default=False, metadata=env("ALLOW_FIRST_EVENT_SIGNATURE_FOR_BATCHES")
    )
    max_body_bytes: int = field(default=6 * 1024 * 1024, metadata=env("MAX_BODY_BYTES", ge=1024))
    max_batch_events: int = field(default=4000, metadata=env("MAX_BATCH_EVENTS", ge=1))
    # Bytes that refused, unauthenticated batches may store on the rejected queue per hour, for all
    # containers together, counted in this table (orb_bridge.unauthenticated_budget); beyond it,
    # or without the table, a refused batch is kept as a one-record summary.
    unauthenticated_store_bytes_per_hour: int = field(
        default=10 * 1024 * 1024, metadata=env("UNAUTHENTICATED_STORE_BYTES_PER_HOUR", ge=0)
    )
    unauthenticated_store_table_name: str = field(default="", metadata=env("UNAUTHENTICATED_STORE_TABLE_NAME"))

    secret_fields: ClassVar[frozenset[str]] = frozenset({"shared_secrets", "auth_tokens"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IntakeSettings:
        environ = _environ(environ)
        settings = cls._validate_env(
            environ,
            mapping=MappingSettings.from_env(environ),
            shared_secrets=tuple(split_secrets(resolve_secret("SEGMENT_SHARED_SECRET", environ))),
            auth_tokens=tuple(split_secrets(resolve_secret("SEGMENT_AUTH_TOKEN", environ))),
        )
        if not (settings.shared_secrets or settings.auth_tokens or settings.allow_unauthenticated):
            raise ConfigurationError(
                "no Segment authentication configured: set SEGMENT_SHARED_SECRET(_ARN) and/or "
                "SEGMENT_AUTH_TOKEN(_ARN), or ALLOW_UNAUTHENTICATED=true for local development only"
            )
        if settings.require_bearer_for_batches and not settings.auth_tokens:
            raise ConfigurationError("REQUIRE_BEARER_FOR_BATCHES=true needs SEGMENT_AUTH_TOKEN(_ARN)")
        return settings


def _https_only(value: str) -> str:
    """The Orb API key travels in the Authorization header: ``orb_bridge.orb_url``'s rule."""
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
    # orb_bridge.pacing). 0 = not paced; both 0 (the default when unset, e.g. locally): no table
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
    # (150 requests measured, tests/unit/test_ingest_orb_400.py).
    max_requests_per_invocation: int = field(default=200, metadata=env("ORB_MAX_REQUESTS_PER_INVOCATION", ge=1))
    # Orb accepts events up to this many hours old (docs/facts.md); older ones cannot be ingested.
    grace_period_hours: float = field(default=12.0, metadata=env("ORB_GRACE_PERIOD_HOURS", gt=0))

    secret_fields: ClassVar[frozenset[str]] = frozenset({"orb_api_key"})

    def _check(self, name: str, value: Any) -> Any:
        if name == "ingest_max_concurrency" and value > MAX_EVENT_SOURCE_CONCURRENCY:
            raise InvalidValueError(f"must be <= {MAX_EVENT_SOURCE_CONCURRENCY}")
        return _https_only(value) if name == "orb_api_base_url" else value

    @property
    def paced(self) -> bool:
        return self.requests_per_second > 0 or self.events_per_minute > 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestSettings:
        environ = _environ(environ)
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


@dataclass(frozen=True, kw_only=True)
class RedeliverySettings(EnvSettings):
    """How ingest holds failed messages back; read on its own, since it is needed precisely when
    ``IngestSettings`` cannot be read (a configuration error is held back longest)."""

    # First hold-back: 1 min for Orb's transient errors, 15 min for our own configuration errors.
    # The dev stack shrinks them to its seconds-long local redelivery.
    retry_backoff_seconds: int = field(default=60, metadata=env("RETRY_BACKOFF_SECONDS", ge=0))
    config_error_backoff_seconds: int = field(default=900, metadata=env("CONFIG_ERROR_BACKOFF_SECONDS", ge=0))
    # The ingest queue's URL, when known, saves a GetQueueUrl call (and permission).
    ingest_queue_url: str = field(default="", metadata=env("INGEST_QUEUE_URL"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RedeliverySettings:
        return cls._validate_env(_environ(environ))


@dataclass(frozen=True, kw_only=True)
class WebhookSettings(EnvSettings):
    """Orb webhooks: signing secrets (from their secret), the bus, the dedupe table, limits."""

    secrets: tuple[str, ...] = field(repr=False)
    event_bus_name: str = field(metadata=env("WEBHOOK_EVENT_BUS_NAME"))
    idempotency_table_name: str = field(metadata=env("IDEMPOTENCY_TABLE_NAME"))
    tolerance_seconds: float = field(default=300.0, metadata=env("ORB_WEBHOOK_TOLERANCE_SECONDS", ge=1))
    # More than EventBridge can carry is lowered to WEBHOOK_MAX_BODY_BYTES by from_env.
    max_body_bytes: int = field(default=WEBHOOK_MAX_BODY_BYTES, metadata=env("ORB_WEBHOOK_MAX_BODY_BYTES", ge=1024))

    secret_fields: ClassVar[frozenset[str]] = frozenset({"secrets"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        environ = _environ(environ)
        secrets = tuple(split_secrets(resolve_secret("ORB_WEBHOOK_SECRET", environ)))
        if not secrets:
            raise ConfigurationError(
                "no Orb webhook secret configured: set ORB_WEBHOOK_SECRET_ARN (or ORB_WEBHOOK_SECRET locally)"
            )
        settings = cls._validate_env(environ, secrets=secrets)
        if settings.max_body_bytes > WEBHOOK_MAX_BODY_BYTES:
            settings = dataclasses.replace(settings, max_body_bytes=WEBHOOK_MAX_BODY_BYTES)
        return settings


@dataclass(frozen=True, kw_only=True)
class ObservabilitySettings(EnvSettings):
    """Names for logs and metrics (set per function by the template); read once at import."""

    service_name: str = field(default="orb-bridge", metadata=env("POWERTOOLS_SERVICE_NAME"))
    metrics_namespace: str = field(default="SegmentOrbBridge", metadata=env("POWERTOOLS_METRICS_NAMESPACE"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ObservabilitySettings:
        return cls._validate_env(_environ(environ))
