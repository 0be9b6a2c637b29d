"""One ingest service per Lambda container, rebuilt only when its settings change."""

from __future__ import annotations

import threading
from typing import Any

from orb_bridge.aws.archive import ArchiveWriter
from orb_bridge.aws.queues import SqsQueue
from orb_bridge.core.config import MappingSettings
from orb_bridge.ingest.archive import Archiver
from orb_bridge.ingest.pacing import pacer_from_settings
from orb_bridge.ingest.service import IngestService
from orb_bridge.ingest.settings import IngestSettings
from orb_bridge.orb.client import OrbClient, shared_http_client

_service: IngestService | None = None
_archiver = Archiver()  # off until a service is built with AUDIT_BUCKET_NAME set
_http: Any = None
_service_lock = threading.Lock()


def container_service() -> IngestService:
    """The service for this invocation (raises ConfigurationError).

    Settings, with the API key through its 300 s secret cache, are re-resolved at every
    invocation, so a rotated key takes effect in warm containers; the service is rebuilt only
    when they changed, around the container's one HTTP client.
    """
    global _service, _http, _archiver
    settings = IngestSettings.from_env()
    with _service_lock:
        if _service is None or _service.settings != settings:
            if _http is None:
                _http = shared_http_client(max(32, settings.max_concurrent_requests))
            _service = IngestService(
                settings,
                OrbClient(settings.orb_api_base_url, settings.orb_api_key, _http),
                SqsQueue(settings.rejected_queue_url),
                pacer_from_settings(
                    settings.requests_per_second, settings.events_per_minute, settings.pacing_table_name
                ),
                # Read per batch, lazily: a mapping mistake fails only the records that need it.
                mapping_settings=MappingSettings.from_env,
            )
            bucket = settings.audit_bucket_name
            writer = ArchiveWriter(bucket, concurrent_writes=settings.max_concurrent_requests) if bucket else None
            _archiver = Archiver(writer)
        return _service


def container_archiver() -> Archiver:
    """The audit archive for the current service's settings (off when AUDIT_BUCKET_NAME is empty)."""
    return _archiver


def forget_container_service() -> None:
    """Re-read settings and the API key secret (bypassing its cache) at the next request, e.g. after a 401."""
    global _service, _archiver
    from orb_bridge.aws.secrets import secret_cache

    with _service_lock:
        _service = None
        _archiver = Archiver()  # off until the next service is built with its settings
    secret_cache.clear()
