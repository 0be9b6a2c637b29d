"""boto3 clients, created once per container and reused across invocations.

boto3 honours ``AWS_ENDPOINT_URL`` (and per-service ``AWS_ENDPOINT_URL_SQS`` ...), which is
how the local dev stack points the real handlers at moto's server.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def client(service: str) -> Any:
    import boto3

    return boto3.session.Session().client(service)


def reset_clients() -> None:
    """Forget cached clients (tests switch between moto backends and endpoints)."""
    client.cache_clear()
