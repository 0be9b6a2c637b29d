"""Orb webhooks' settings (see ``orb_bridge.core.config`` for how settings are read)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from orb_bridge.aws.secrets import resolve_secret, split_secrets
from orb_bridge.core.config import environ_or_os
from orb_bridge.core.env_settings import EnvSettings, env
from orb_bridge.core.errors import ConfigurationError

# A verified webhook is handed on whole as one EventBridge entry, which must stay under 256 KiB
# (Detail plus Source, DetailType and Time): a larger body could never be forwarded, so it is
# refused up front (413, counted as body_too_large) rather than failing on every redelivery.
WEBHOOK_MAX_BODY_BYTES = 256 * 1024 - 1024


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
        environ = environ_or_os(environ)
        secrets = tuple(split_secrets(resolve_secret("ORB_WEBHOOK_SECRET", environ)))
        if not secrets:
            raise ConfigurationError(
                "no Orb webhook secret configured: set ORB_WEBHOOK_SECRET_ARN (or ORB_WEBHOOK_SECRET locally)"
            )
        settings = cls._validate_env(environ, secrets=secrets)
        if settings.max_body_bytes > WEBHOOK_MAX_BODY_BYTES:
            settings = dataclasses.replace(settings, max_body_bytes=WEBHOOK_MAX_BODY_BYTES)
        return settings
