"""Settings several functions share: the mapping, redelivery and observability.

Environment variables are read only by settings classes (the template sets them from
Parameters): these, and one per function beside its service (``intake.settings``,
``ingest.settings``, ``webhooks.settings``). Each field read from the environment names its variable, its bounds
and, where its type does not say it, its parser (``env(...)``, see ``orb_bridge.core.env_settings``,
which also says why these are not pydantic models). ``from_env`` fills a model from the
environment; every bad value, read or passed directly, is a ``ConfigurationError`` naming the
variable.

Each function loads its settings lazily, at its first request: a misconfiguration (missing
required setting, bad number, invalid JSON mapping, unreadable secret) is reported by the
handler with a clear log line, never an import-time crash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from orb_bridge.core.env_settings import EnvSettings, InvalidValueError, env
from orb_bridge.core.errors import ConfigurationError


def environ_or_os(environ: Mapping[str, str] | None) -> Mapping[str, str]:
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
        environ = environ_or_os(environ)
        # Segment's destination has no default for the customer id field: it must be chosen.
        if not environ.get("EXTERNAL_CUSTOMER_ID_FIELD", "").strip():
            raise ConfigurationError("EXTERNAL_CUSTOMER_ID_FIELD is required (a dotted path such as 'userId')")
        return cls._validate_env(environ)


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
        return cls._validate_env(environ_or_os(environ))


@dataclass(frozen=True, kw_only=True)
class ObservabilitySettings(EnvSettings):
    """Names for logs and metrics (set per function by the template); read once at import."""

    service_name: str = field(default="orb-bridge", metadata=env("POWERTOOLS_SERVICE_NAME"))
    metrics_namespace: str = field(default="SegmentOrbBridge", metadata=env("POWERTOOLS_METRICS_NAMESPACE"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ObservabilitySettings:
        return cls._validate_env(environ_or_os(environ))
