"""Secret resolution: Secrets Manager in AWS, env vars locally.

A secret named NAME is read from ``NAME_ARN`` (a Secrets Manager ARN) when set, otherwise from
``NAME`` itself. Values are never logged.

All three functions re-resolve their settings at every request; a secret read from Secrets
Manager is reused for ``SECRET_CACHE_SECONDS`` and then read again, so a rotated Segment token,
Orb key or webhook secret takes effect in every warm container within that time. The cache's
clock is injectable (``secret_cache.clock``) so tests rotate without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from orb_bridge.core.errors import ConfigurationError

SECRET_CACHE_SECONDS = 300


class SecretCache:
    """ARN -> (value, read at) for ``max_age`` seconds of ``clock`` (monotonic by default)."""

    def __init__(self, max_age: float = SECRET_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._values: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, arn: str, read: Callable[[str], str]) -> str:
        now = self.clock()
        with self._lock:
            cached = self._values.get(arn)
        if cached is not None and now - cached[1] < self.max_age:
            return cached[0]
        value = read(arn)
        with self._lock:
            self._values[arn] = (value, now)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


secret_cache = SecretCache()


def _read_secret(arn: str) -> str:
    # The container's shared client (orb_bridge.aws.clients), called directly: Powertools Parameters
    # would add its import (about 19 ms of a cold start) for one call; our cache decides the age.
    from orb_bridge.aws import clients as aws

    response = aws.client("secretsmanager").get_secret_value(SecretId=arn)
    value = response["SecretString"] if "SecretString" in response else response["SecretBinary"]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return str(value).strip()


def resolve_secret(name: str, env: Mapping[str, str], arn_variable: str | None = None) -> str | None:
    """Return the secret's value, or None when neither NAME_ARN (or ``arn_variable``) nor NAME is set
    in ``env`` (``orb_bridge.core.config`` passes the environment)."""
    arn_variable = arn_variable or f"{name}_ARN"
    arn = env.get(arn_variable, "").strip()
    if arn:
        try:
            value = secret_cache.get(arn, _read_secret)
        except Exception as exc:  # any failure to read the secret is a deployment problem
            raise ConfigurationError(
                f"could not read secret {arn_variable} from Secrets Manager: {type(exc).__name__}"
            ) from None
        if not value:
            raise ConfigurationError(f"secret {arn_variable} is empty")
        return value
    value = env.get(name, "")
    return value if value.strip() else None


def split_secrets(value: str | None) -> list[str]:
    """Split a value holding several secrets (comma or newline separated) for rotation."""
    if not value:
        return []
    parts = value.replace("\r", "\n").replace(",", "\n").split("\n")
    return [part.strip() for part in parts if part.strip()]
