"""Settings, read from environment variables (the template sets them from Parameters).

Each function loads only what it needs, lazily, at its first request: a misconfiguration
(missing required setting, invalid JSON mapping, unreadable secret) becomes a
``ConfigurationError`` with a clear message that the handler reports, not an import-time crash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from orb_bridge.errors import ConfigurationError
from orb_bridge.secrets import resolve_secret, split_secrets

DEFAULT_ORB_API_BASE_URL = "https://api.withorb.com/v1"

TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"", "0", "false", "no", "off"}


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:  # also rejects NaN
        raise ConfigurationError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def _required(env: Mapping[str, str], name: str, hint: str = "") -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"{name} is required{': ' + hint if hint else ''}")
    return value


def _path(env: Mapping[str, str], name: str, default: str | None) -> str:
    raw = env.get(name, "").strip() or default
    if not raw:
        raise ConfigurationError(f"{name} is required (a dotted path such as 'userId')")
    if any(not part for part in raw.split(".")):
        raise ConfigurationError(f"{name} must be a dotted path such as 'properties.account_id', got {raw!r}")
    return raw


@dataclass(frozen=True)
class MappingSettings:
    """Segment -> Orb mapping, the same settings Segment's own Orb destination offers."""

    event_name_field: str = "event"
    external_customer_id_field: str = "userId"
    idempotency_key_field: str = "messageId"
    properties_mapping: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MappingSettings:
        env = _env(env)
        raw_mapping = env.get("PROPERTIES_MAPPING", "").strip() or "{}"
        try:
            mapping = json.loads(raw_mapping)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"PROPERTIES_MAPPING is not valid JSON: {exc.msg} at position {exc.pos}") from None
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in mapping.items()
        ):
            raise ConfigurationError(
                'PROPERTIES_MAPPING must be a JSON object of non-empty strings, e.g. {"amount": "amount_usd"}'
            )
        return cls(
            event_name_field=_path(env, "EVENT_NAME_FIELD", "event"),
            external_customer_id_field=_path(env, "EXTERNAL_CUSTOMER_ID_FIELD", None),
            idempotency_key_field=_path(env, "IDEMPOTENCY_KEY_FIELD", "messageId"),
            properties_mapping=dict(mapping),
        )


@dataclass(frozen=True)
class IntakeSettings:
    mapping: MappingSettings
    ingest_queue_url: str
    rejected_queue_url: str
    # Several values (comma or newline separated in the secret) verify during a rotation.
    # repr=False: settings objects may end up in a log line or a traceback.
    shared_secrets: tuple[str, ...] = field(default=(), repr=False)
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)
    allow_unauthenticated: bool = False
    require_bearer_for_batches: bool = False
    # Insecure opt-out: accept batches whose X-Signature covers only their first event.
    allow_first_event_signature_for_batches: bool = False
    max_body_bytes: int = 6 * 1024 * 1024
    max_batch_events: int = 4000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IntakeSettings:
        env = _env(env)
        settings = cls(
            mapping=MappingSettings.from_env(env),
            ingest_queue_url=_required(env, "INGEST_QUEUE_URL"),
            rejected_queue_url=_required(env, "REJECTED_QUEUE_URL"),
            shared_secrets=tuple(split_secrets(resolve_secret("SEGMENT_SHARED_SECRET", env))),
            auth_tokens=tuple(split_secrets(resolve_secret("SEGMENT_AUTH_TOKEN", env))),
            allow_unauthenticated=_bool(env, "ALLOW_UNAUTHENTICATED"),
            require_bearer_for_batches=_bool(env, "REQUIRE_BEARER_FOR_BATCHES"),
            allow_first_event_signature_for_batches=_bool(env, "ALLOW_FIRST_EVENT_SIGNATURE_FOR_BATCHES"),
            max_body_bytes=int(_number(env, "MAX_BODY_BYTES", 6 * 1024 * 1024, minimum=1024)),
            max_batch_events=int(_number(env, "MAX_BATCH_EVENTS", 4000, minimum=1)),
        )
        if not (settings.shared_secrets or settings.auth_tokens or settings.allow_unauthenticated):
            raise ConfigurationError(
                "no Segment authentication configured: set SEGMENT_SHARED_SECRET(_ARN) and/or "
                "SEGMENT_AUTH_TOKEN(_ARN), or ALLOW_UNAUTHENTICATED=true for local development only"
            )
        if settings.require_bearer_for_batches and not settings.auth_tokens:
            raise ConfigurationError("REQUIRE_BEARER_FOR_BATCHES=true needs SEGMENT_AUTH_TOKEN(_ARN)")
        return settings


# The Orb API key travels in the Authorization header: only https, except to a local stand-in.
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


def orb_api_base_url(env: Mapping[str, str]) -> str:
    raw = (env.get("ORB_API_BASE_URL", "").strip() or DEFAULT_ORB_API_BASE_URL).rstrip("/")
    scheme, _, rest = raw.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host = host if host.startswith("[") else host.split(":", 1)[0]
    if scheme.lower() == "https" and host:
        return raw
    if scheme.lower() == "http" and host.lower() in _LOCAL_HOSTS:
        return raw
    raise ConfigurationError(
        f"ORB_API_BASE_URL must be an https:// URL (http:// only to 127.0.0.1 or localhost), got {raw[:64]!r}"
    )


@dataclass(frozen=True)
class IngestSettings:
    orb_api_base_url: str
    orb_api_key: str = field(repr=False)
    rejected_queue_url: str
    max_events_per_request: int = 500
    # 20 x 500 = SQS's largest batch (10,000) in one round of requests. The Orb request rate is
    # bounded by this times the event source's MaximumConcurrency (template: IngestMaxConcurrency).
    max_concurrent_requests: int = 20
    request_timeout_seconds: float = 10.0
    # Stop starting new Orb requests when less than this much of the invocation remains.
    safety_margin_seconds: float = 3.0
    # Orb's limits, shared by every concurrent invocation through the pacing table (see
    # orb_bridge.pacing). 0 = not paced; both 0 (the default when unset, e.g. locally): no table
    # and no AWS call at all. The template sets Orb's live defaults, 100/s and 10,000/min.
    requests_per_second: float = 0.0
    events_per_minute: float = 0.0
    pacing_table_name: str = ""
    # Requests one invocation may make, splits and re-sends after a 400 included.
    # 200: ten events refused by a 400 naming nobody, among 2,000, are isolated in one invocation
    # (150 requests measured, tests/unit/test_ingest_orb_400.py).
    max_requests_per_invocation: int = 200
    # Orb's grace period for the account (12 h by default): a refused event older than this is
    # routed to the rejected queue with a hint to backfill it.
    grace_period_hours: float = 12.0

    @property
    def paced(self) -> bool:
        return self.requests_per_second > 0 or self.events_per_minute > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        env = _env(env)
        api_key = resolve_secret("ORB_API_KEY", env, arn_variable="ORB_API_KEY_SECRET_ARN")
        if not api_key:
            raise ConfigurationError("ORB_API_KEY_SECRET_ARN (or ORB_API_KEY locally) is required")
        settings = cls(
            orb_api_base_url=orb_api_base_url(env),
            orb_api_key=api_key,
            rejected_queue_url=_required(env, "REJECTED_QUEUE_URL"),
            max_events_per_request=int(
                min(500, _number(env, "ORB_MAX_EVENTS_PER_REQUEST", 500, minimum=1))
            ),
            max_concurrent_requests=int(_number(env, "ORB_MAX_CONCURRENT_REQUESTS", 20, minimum=1)),
            request_timeout_seconds=_number(env, "ORB_REQUEST_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            safety_margin_seconds=_number(env, "INGEST_SAFETY_MARGIN_SECONDS", 3.0, minimum=0),
            requests_per_second=_number(env, "ORB_REQUESTS_PER_SECOND", 0.0, minimum=0),
            events_per_minute=_number(env, "ORB_EVENTS_PER_MINUTE", 0.0, minimum=0),
            pacing_table_name=env.get("ORB_PACING_TABLE_NAME", "").strip(),
            max_requests_per_invocation=int(_number(env, "ORB_MAX_REQUESTS_PER_INVOCATION", 200, minimum=1)),
            grace_period_hours=_number(env, "ORB_GRACE_PERIOD_HOURS", 12.0, minimum=0),
        )
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


# A verified webhook is handed on whole as one EventBridge entry, which must stay under 256 KiB
# (Detail plus Source, DetailType and Time): a larger body could never be forwarded, so it is
# refused up front (413, counted as body_too_large) rather than failing on every redelivery.
WEBHOOK_MAX_BODY_BYTES = 256 * 1024 - 1024


@dataclass(frozen=True)
class WebhookSettings:
    secrets: tuple[str, ...] = field(repr=False)
    event_bus_name: str
    idempotency_table_name: str
    tolerance_seconds: float = 300.0
    max_body_bytes: int = WEBHOOK_MAX_BODY_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = _env(env)
        secrets = tuple(split_secrets(resolve_secret("ORB_WEBHOOK_SECRET", env)))
        if not secrets:
            raise ConfigurationError(
                "no Orb webhook secret configured: set ORB_WEBHOOK_SECRET_ARN (or ORB_WEBHOOK_SECRET locally)"
            )
        return cls(
            secrets=secrets,
            event_bus_name=_required(env, "WEBHOOK_EVENT_BUS_NAME"),
            idempotency_table_name=_required(env, "IDEMPOTENCY_TABLE_NAME"),
            tolerance_seconds=_number(env, "ORB_WEBHOOK_TOLERANCE_SECONDS", 300.0, minimum=1),
            max_body_bytes=int(
                min(WEBHOOK_MAX_BODY_BYTES, _number(env, "ORB_WEBHOOK_MAX_BODY_BYTES", WEBHOOK_MAX_BODY_BYTES, minimum=1024))
            ),
        )
