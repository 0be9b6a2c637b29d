"""Caches for the test process of what the code under test builds per CLI run or per client.

Every ``orb-bridge`` command builds its own boto3 session and httpx client (right for a CLI: one
run, one process; the deployed functions build theirs once per container). In a test process that
runs commands hundreds of times, two costs repeated each time dominated many tests:

- a new botocore session gets a new loader that reads and JSON-decodes the service models
  (CloudFormation, S3, DynamoDB, SQS, Secrets Manager, endpoints) again: ~0.1 s per client;
- a new httpx transport with the default ``verify=True`` loads certifi's CA bundle into a new
  SSL context: ~30 ms, even for the plain-HTTP loopback sandbox it will only ever talk to.

Both are read-only once built: one loader (botocore already caches per loader) and one default
SSL context serve the whole process; what the tests exercise is unchanged.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import httpx._transports.default as httpx_transports


class _UniquePaths(list[str]):
    """boto3 appends its own data directory to the loader's paths on every new Session."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


def share_one_botocore_loader() -> None:
    """Make every botocore session in this process (boto3's too) use one caching loader."""
    if getattr(botocore.session.create_loader, "shared_by_tests", False):
        return
    make_loader = botocore.loaders.create_loader
    shared = make_loader()
    # boto3's resource models, there from the start so no cached listing misses them.
    shared._search_paths = _UniquePaths([*shared.search_paths, os.path.join(os.path.dirname(boto3.__file__), "data")])

    def create_loader(search_path_string: str | None = None) -> Any:
        # A session given its own AWS_DATA_PATH keeps a loader of its own.
        return shared if search_path_string is None else make_loader(search_path_string)

    create_loader.shared_by_tests = True  # type: ignore[attr-defined]
    botocore.session.create_loader = create_loader


def share_one_default_ssl_context() -> None:
    """httpx transports built with the default ``verify=True`` share one SSL context."""
    make_context = httpx_transports.create_ssl_context
    if getattr(make_context, "shared_by_tests", False):
        return

    @functools.cache
    def default_context(trust_env: bool, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
        # Keyed by the variables httpx reads (SSL_CERT_FILE, SSL_CERT_DIR): one context per setting.
        return make_context(verify=True, trust_env=trust_env)

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> ssl.SSLContext:
        if verify is True and cert is None:
            return default_context(trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        return make_context(verify=verify, cert=cert, trust_env=trust_env)

    create_ssl_context.shared_by_tests = True  # type: ignore[attr-defined]
    httpx_transports.create_ssl_context = create_ssl_context
