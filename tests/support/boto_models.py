"""One botocore data loader for the whole test process.

Every ``orb-bridge`` command builds its own ``boto3.session.Session`` (right for a CLI: one run, one
process), and every new session gets a new botocore loader that reads and JSON-decodes the service
models (CloudFormation, S3, DynamoDB, SQS, Secrets Manager, endpoints) again: about 0.1 s per client.
Tests that run a command ten times on one stack spent most of their 5-6 s there. The models are
read-only data shipped with botocore, so one loader (the cache botocore already keeps per session)
can serve every session in the process; what the tests exercise is unchanged.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
import botocore.loaders
import botocore.session


class _UniquePaths(list[str]):
    """boto3 appends its own data directory to the loader's paths on every new Session."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


def share_one_loader() -> None:
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
