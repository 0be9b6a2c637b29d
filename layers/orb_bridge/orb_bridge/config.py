"""Settings: the only place environment variables are read (the template sets them from Parameters).

One pydantic model per function (``IntakeSettings``, ``IngestSettings``, ``WebhookSettings``) plus
the pieces they share; each field names its variable (``alias``). ``from_env`` fills a model from
the environment and turns every bad value into a ``ConfigurationError`` naming the variable.

Plain pydantic models filled from ``os.environ`` rather than ``pydantic-settings``: that package
(and python-dotenv) would be a deployed dependency adding ~110-140 ms of imports to every cold
start (python3.13, ``-X importtime``), for sources (dotenv files, CLI) a Lambda never uses.

Each function loads its settings lazily, at its first request: a misconfiguration (missing
required setting, bad number, invalid JSON mapping, unreadable secret) is reported by the
handler with a clear log line, never an import-time crash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orb_bridge.errors import ConfigurationError, quote
from orb_bridge.secrets import resolve_secret, split_secrets

DEFAULT_ORB_API_BASE_URL = "https://api.withorb.com/v1"
# A verified webhook is handed on whole as one EventBridge entry, which must stay under 256 KiB
# (Detail plus Source, DetailType and Time): a larger body could never be forwarded, so it is
# refused up front (413, counted as body_too_large) rather than failing on every redelivery.
WEBHOOK_MAX_BODY_BYTES = 256 * 1024 - 1024
# Orb takes at most 500 events per ingest request (docs/facts.md#orb-ingest-limits).
ORB_MAX_EVENTS_PER_REQUEST = 500
# The Orb API key travels in the Authorization header: only https, except to a local stand-in.
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}

_PLAIN_MESSAGES = {
    "missing": "is required",
    "bool_parsing": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
}


def _variable_error(exc: ValidationError, secret_variables: frozenset[str]) -> ConfigurationError:
    """The first error of ``exc`` as one line naming the variable (never echoing a secret)."""
    error = exc.errors(include_url=False)[0]
    variable = ".".join(str(part) for part in error["loc"]) or "settings"
    kind = error["type"]
    if kind == "value_error":  # our validators' messages read on from the variable's name
        message = str(error.get("ctx", {}).get("error", error["msg"]))
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<="}[kind]
        limit = next(iter(error.get("ctx", {}).values()), "?")
        message = f"must be {op} {limit}"
    else:
        message = _PLAIN_MESSAGES.get(kind, error["msg"])
    if kind != "missing" and variable not in secret_variables:
        message += f", got {quote(error.get('input'))}"
    return ConfigurationError(f"{variable} {message}")


class EnvSettings(BaseModel):
    """A frozen settings model whose fields are filled from the environment variables they alias.

    Built directly (``IngestSettings(orb_api_key=..., ...)``) in code and tests; ``from_env`` in
    the functions. Blank variables count as unset.
    """

    model_config = ConfigDict(
        frozen=True, validate_by_name=True, validate_by_alias=True, extra="forbid", allow_inf_nan=False
    )

    # Variables whose values never appear in an error message.
    secret_variables: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def variables(cls) -> list[str]:
        """The environment variables this model reads directly (secrets are resolved separately)."""
        return [field.alias for field in cls.model_fields.values() if field.alias]

    @classmethod
    def _validate_env(cls, env: Mapping[str, str], **resolved: Any) -> Self:
        values: dict[str, Any] = {}
        for name in cls.variables():
            raw = env.get(name)
            if raw is not None and raw.strip():
                values[name] = raw.strip()
        try:
            return cls.model_validate({**values, **resolved})
        except ValidationError as exc:
            raise _variable_error(exc, cls.secret_variables) from None


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


class MappingSettings(EnvSettings):
    """Segment -> Orb mapping, the same settings Segment's own Orb destination offers."""

    event_name_field: str = Field("event", alias="EVENT_NAME_FIELD")
    external_customer_id_field: str = Field("userId", alias="EXTERNAL_CUSTOMER_ID_FIELD")
    idempotency_key_field: str = Field("messageId", alias="IDEMPOTENCY_KEY_FIELD")
    properties_mapping: dict[str, str] = Field(default_factory=dict, alias="PROPERTIES_MAPPING")

    @field_validator("event_name_field", "external_customer_id_field", "idempotency_key_field")
    @classmethod
    def dotted_paths(cls, value: str) -> str:
        if any(not part for part in value.split(".")):
            raise ValueError(f"must be a dotted path such as 'properties.account_id', got {quote(value)}")
        return value

    @field_validator("properties_mapping", mode="before")
    @classmethod
    def json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not valid JSON: {exc.msg} at position {exc.pos}") from None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
        ):
            raise ValueError('must be a JSON object of non-empty strings, e.g. {"amount": "amount_usd"}')
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MappingSettings:
        env = _environ(env)
        # Segment's destination has no default for the customer id field: it must be chosen.
        if not env.get("EXTERNAL_CUSTOMER_ID_FIELD", "").strip():
            raise ConfigurationError("EXTERNAL_CUSTOMER_ID_FIELD is required (a dotted path such as 'userId')")
        return cls._validate_env(env)


class IntakeSettings(EnvSettings):
    mapping: MappingSettings
    ingest_queue_url: str = Field(alias="INGEST_QUEUE_URL")
    rejected_queue_url: str = Field(alias="REJECTED_QUEUE_URL")
    # Several values (comma or newline separated in the secret) verify during a rotation.
    # repr=False: settings objects may end up in a log line or a traceback.
    shared_secrets: tuple[str, ...] = Field((), repr=False)
    auth_tokens: tuple[str, ...] = Field((), repr=False)
    allow_unauthenticated: bool = Field(False, alias="ALLOW_UNAUTHENTICATED")
    require_bearer_for_batches: bool = Field(False, alias="REQUIRE_BEARER_FOR_BATCHES")
    # Insecure opt-out: accept batches whose X-Signature covers only their first event.
    allow_first_event_signature_for_batches: bool = Field(False, alias="ALLOW_FIRST_EVENT_SIGNATURE_FOR_BATCHES")
    max_body_bytes: int = Field(6 * 1024 * 1024, alias="MAX_BODY_BYTES", ge=1024)
    max_batch_events: int = Field(4000, alias="MAX_BATCH_EVENTS", ge=1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IntakeSettings:
        env = _environ(env)
        settings = cls._validate_env(
            env,
            mapping=MappingSettings.from_env(env),
            shared_secrets=tuple(split_secrets(resolve_secret("SEGMENT_SHARED_SECRET", env))),
            auth_tokens=tuple(split_secrets(resolve_secret("SEGMENT_AUTH_TOKEN", env))),
        )
        if not (settings.shared_secrets or settings.auth_tokens or settings.allow_unauthenticated):
            raise ConfigurationError(
                "no Segment authentication configured: set SEGMENT_SHARED_SECRET(_ARN) and/or "
                "SEGMENT_AUTH_TOKEN(_ARN), or ALLOW_UNAUTHENTICATED=true for local development only"
            )
        if settings.require_bearer_for_batches and not settings.auth_tokens:
            raise ConfigurationError("REQUIRE_BEARER_FOR_BATCHES=true needs SEGMENT_AUTH_TOKEN(_ARN)")
        return settings


class IngestSettings(EnvSettings):
    orb_api_base_url: str = Field(DEFAULT_ORB_API_BASE_URL, alias="ORB_API_BASE_URL")
    orb_api_key: str = Field(repr=False)
    rejected_queue_url: str = Field(alias="REJECTED_QUEUE_URL")
    # More than Orb takes is lowered to Orb's 500 by from_env (tests build larger ones directly).
    max_events_per_request: int = Field(ORB_MAX_EVENTS_PER_REQUEST, alias="ORB_MAX_EVENTS_PER_REQUEST", ge=1)
    # 20 x 500 = SQS's largest batch (10,000) in one round of requests. The Orb request rate is
    # bounded by this times the event source's MaximumConcurrency (template: IngestMaxConcurrency).
    max_concurrent_requests: int = Field(20, alias="ORB_MAX_CONCURRENT_REQUESTS", ge=1)
    request_timeout_seconds: float = Field(10.0, alias="ORB_REQUEST_TIMEOUT_SECONDS", ge=0.1)
    # Stop starting new Orb requests when less than this much of the invocation remains.
    safety_margin_seconds: float = Field(3.0, alias="INGEST_SAFETY_MARGIN_SECONDS", ge=0)
    # Orb's limits, shared by every concurrent invocation through the pacing table (see
    # orb_bridge.pacing). 0 = not paced; both 0 (the default when unset, e.g. locally): no table
    # and no AWS call at all. The template sets Orb's live defaults, 100/s and 10,000/min.
    requests_per_second: float = Field(0.0, alias="ORB_REQUESTS_PER_SECOND", ge=0)
    events_per_minute: float = Field(0.0, alias="ORB_EVENTS_PER_MINUTE", ge=0)
    pacing_table_name: str = Field("", alias="ORB_PACING_TABLE_NAME")
    # Requests one invocation may make, splits and re-sends after a 400 included.
    # 200: ten events refused by a 400 naming nobody, among 2,000, are isolated in one invocation
    # (150 requests measured, tests/unit/test_ingest_orb_400.py).
    max_requests_per_invocation: int = Field(200, alias="ORB_MAX_REQUESTS_PER_INVOCATION", ge=1)
    # Orb accepts events up to this many hours old (docs/facts.md); older ones cannot be ingested.
    grace_period_hours: float = Field(12.0, alias="ORB_GRACE_PERIOD_HOURS", gt=0)

    secret_variables: ClassVar[frozenset[str]] = frozenset({"orb_api_key"})

    @field_validator("orb_api_base_url")
    @classmethod
    def https_only(cls, value: str) -> str:
        raw = value.rstrip("/")
        scheme, _, rest = raw.partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        host = host if host.startswith("[") else host.split(":", 1)[0]
        if (scheme.lower() == "https" and host) or (scheme.lower() == "http" and host.lower() in _LOCAL_HOSTS):
            return raw
        raise ValueError(f"must be an https:// URL (http:// only to 127.0.0.1 or localhost), got {quote(raw)}")

    @property
    def paced(self) -> bool:
        return self.requests_per_second > 0 or self.events_per_minute > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        env = _environ(env)
        api_key = resolve_secret("ORB_API_KEY", env, arn_variable="ORB_API_KEY_SECRET_ARN")
        if not api_key:
            raise ConfigurationError("ORB_API_KEY_SECRET_ARN (or ORB_API_KEY locally) is required")
        # The mapping is not part of these settings: ingest reads it (MappingSettings) only when a
        # redriven intake record needs re-mapping, so a broken mapping never stops plain events.
        settings = cls._validate_env(env, orb_api_key=api_key)
        if settings.max_events_per_request > ORB_MAX_EVENTS_PER_REQUEST:
            settings = settings.model_copy(update={"max_events_per_request": ORB_MAX_EVENTS_PER_REQUEST})
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


class RedeliverySettings(EnvSettings):
    """How ingest holds failed messages back; read on its own, since it is needed precisely when
    ``IngestSettings`` cannot be read (a configuration error is held back longest)."""

    # First hold-back: 1 min for Orb's transient errors, 15 min for our own configuration errors.
    # The dev stack shrinks them to its seconds-long local redelivery.
    retry_backoff_seconds: int = Field(60, alias="RETRY_BACKOFF_SECONDS", ge=0)
    config_error_backoff_seconds: int = Field(900, alias="CONFIG_ERROR_BACKOFF_SECONDS", ge=0)
    # The ingest queue's URL, when known, saves a GetQueueUrl call (and permission).
    ingest_queue_url: str = Field("", alias="INGEST_QUEUE_URL")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RedeliverySettings:
        return cls._validate_env(_environ(env))


class WebhookSettings(EnvSettings):
    secrets: tuple[str, ...] = Field(repr=False)
    event_bus_name: str = Field(alias="WEBHOOK_EVENT_BUS_NAME")
    idempotency_table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME")
    tolerance_seconds: float = Field(300.0, alias="ORB_WEBHOOK_TOLERANCE_SECONDS", ge=1)
    # More than EventBridge can carry is lowered to WEBHOOK_MAX_BODY_BYTES by from_env.
    max_body_bytes: int = Field(WEBHOOK_MAX_BODY_BYTES, alias="ORB_WEBHOOK_MAX_BODY_BYTES", ge=1024)

    secret_variables: ClassVar[frozenset[str]] = frozenset({"secrets"})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = _environ(env)
        secrets = tuple(split_secrets(resolve_secret("ORB_WEBHOOK_SECRET", env)))
        if not secrets:
            raise ConfigurationError(
                "no Orb webhook secret configured: set ORB_WEBHOOK_SECRET_ARN (or ORB_WEBHOOK_SECRET locally)"
            )
        settings = cls._validate_env(env, secrets=secrets)
        if settings.max_body_bytes > WEBHOOK_MAX_BODY_BYTES:
            settings = settings.model_copy(update={"max_body_bytes": WEBHOOK_MAX_BODY_BYTES})
        return settings


class ObservabilitySettings(EnvSettings):
    """Names for logs and metrics (set per function by the template); read once at import."""

    service_name: str = Field("orb-bridge", alias="POWERTOOLS_SERVICE_NAME")
    metrics_namespace: str = Field("SegmentOrbBridge", alias="POWERTOOLS_METRICS_NAMESPACE")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ObservabilitySettings:
        return cls._validate_env(_environ(env))
