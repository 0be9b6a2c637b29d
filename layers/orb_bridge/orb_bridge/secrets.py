"""Secret resolution: Secrets Manager in AWS (Powertools Parameters, cached), env vars locally.

A secret named NAME is read from ``NAME_ARN`` (a Secrets Manager ARN) when set, otherwise from
``NAME`` itself. Values are never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from orb_bridge.errors import ConfigurationError

SECRET_CACHE_SECONDS = 300


def resolve_secret(name: str, env: Mapping[str, str] | None = None, arn_variable: str | None = None) -> str | None:
    """Return the secret's value, or None when neither NAME_ARN (or ``arn_variable``) nor NAME is set."""
    env = os.environ if env is None else env
    arn_variable = arn_variable or f"{name}_ARN"
    arn = env.get(arn_variable, "").strip()
    if arn:
        # Imported lazily: only deployed functions read Secrets Manager.
        from aws_lambda_powertools.utilities import parameters

        try:
            value = parameters.get_secret(arn, max_age=SECRET_CACHE_SECONDS)
        except Exception as exc:  # any failure to read the secret is a deployment problem
            raise ConfigurationError(
                f"could not read secret {arn_variable} from Secrets Manager: {type(exc).__name__}"
            ) from exc
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        value = str(value).strip()
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
