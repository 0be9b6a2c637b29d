"""Track intake's settings (see ``orb_bridge.core.config`` for how settings are read)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from orb_bridge.aws.secrets import resolve_secret, split_secrets
from orb_bridge.core.config import MappingSettings, environ_or_os
from orb_bridge.core.env_settings import EnvSettings, env
from orb_bridge.core.errors import ConfigurationError


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
    # containers together, counted in this table (orb_bridge.intake.unauthenticated_store); beyond it,
    # or without the table, a refused batch is kept as a one-record summary.
    unauthenticated_store_bytes_per_hour: int = field(
        default=10 * 1024 * 1024, metadata=env("UNAUTHENTICATED_STORE_BYTES_PER_HOUR", ge=0)
    )
    unauthenticated_store_table_name: str = field(default="", metadata=env("UNAUTHENTICATED_STORE_TABLE_NAME"))

    secret_fields: ClassVar[frozenset[str]] = frozenset({"shared_secrets", "auth_tokens"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IntakeSettings:
        environ = environ_or_os(environ)
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
