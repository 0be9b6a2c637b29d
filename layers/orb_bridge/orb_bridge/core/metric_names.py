"""Every metric the functions emit: namespace, name, unit and dimension keys, in one place.

The code emits only through these (``orb_bridge.core.observability.emit``/``emit_by``); the
template's dashboard and alarms name them, and tests/unit/packaging/test_dashboard.py checks
both ways. Names are persisted in CloudWatch (alarms, dashboards, history): never rename one.
Adding a metric is one line below, then its widget on the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The template's POWERTOOLS_METRICS_NAMESPACE (tests check they agree).
NAMESPACE: Final = "SegmentOrbBridge"

# Each function's POWERTOOLS_SERVICE_NAME: Powertools adds it to every metric as ``service``.
TRACK_INTAKE: Final = "track_intake"
ORB_INGEST: Final = "orb_ingest"
ORB_WEBHOOK: Final = "orb_webhook"
ORB_RECONCILE: Final = "orb_reconcile"
SERVICE: Final = "service"

COUNT: Final = "Count"
SECONDS: Final = "Seconds"
MILLISECONDS: Final = "Milliseconds"


@dataclass(frozen=True)
class Metric:
    name: str
    service: str
    unit: str = COUNT
    # Dimensions besides ``service`` whose values are open-ended (a reason, a stage): emitted in
    # their own EMF blob so they split this metric only.
    by: tuple[str, ...] = ()
    # With ``by``: also emitted with ``service`` alone, the total beside the breakdown.
    with_total: bool = False

    def dimension_sets(self) -> list[frozenset[str]]:
        """The dimension key sets this metric is published under."""
        sets = [frozenset((SERVICE, *self.by))]
        if self.by and self.with_total:
            sets.append(frozenset((SERVICE,)))
        return sets


REGISTRY: list[Metric] = []


def _metric(name: str, service: str, unit: str = COUNT, by: tuple[str, ...] = (), with_total: bool = False) -> Metric:
    metric = Metric(name, service, unit, by, with_total)
    REGISTRY.append(metric)
    return metric


# TrackIntake
TRACK_ACCEPTED = _metric("TrackAccepted", TRACK_INTAKE)
TRACK_SKIPPED = _metric("TrackSkipped", TRACK_INTAKE)
TRACK_REJECTED = _metric("TrackRejected", TRACK_INTAKE)
TRACK_REQUESTS_REFUSED = _metric("TrackRequestsRefused", TRACK_INTAKE)
TRACK_REQUESTS_FAILED = _metric("TrackRequestsFailed", TRACK_INTAKE)
SIGNATURE_ONLY_BATCHES_REFUSED = _metric("SignatureOnlyBatchesRefused", TRACK_INTAKE)
UNAUTHENTICATED_EVENTS_NOT_STORED = _metric("UnauthenticatedEventsNotStored", TRACK_INTAKE)
INTAKE_REJECTED_RECORDS_WRITTEN = _metric("RejectedRecordsWritten", TRACK_INTAKE, by=("stage",))

# OrbIngest
EVENTS_INGESTED = _metric("EventsIngested", ORB_INGEST)
EVENTS_REJECTED_BY_ORB = _metric("EventsRejectedByOrb", ORB_INGEST)
EVENTS_RETRIED = _metric("EventsRetried", ORB_INGEST)
EVENTS_DEFERRED = _metric("EventsDeferred", ORB_INGEST)
ORB_REQUESTS = _metric("OrbRequests", ORB_INGEST)
ORB_RATE_LIMITED = _metric("OrbRateLimited", ORB_INGEST)
ORB_REQUEST_LATENCY = _metric("OrbRequestLatency", ORB_INGEST, MILLISECONDS)
ORB_REQUEST_ERRORS = _metric("OrbRequestErrors", ORB_INGEST, by=("kind",))
MESSAGES_REJECTED_AT_INGEST = _metric("MessagesRejectedAtIngest", ORB_INGEST)
EVENTS_REPLAYED = _metric("EventsReplayed", ORB_INGEST)
REPLAYS_REFUSED = _metric("ReplaysRefused", ORB_INGEST)
PACING_TABLE_ERRORS = _metric("PacingTableErrors", ORB_INGEST)
LATE_EVENTS_REJECTED = _metric("LateEventsRejected", ORB_INGEST)
OLDEST_PENDING_EVENT_AGE = _metric("OldestPendingEventAgeSeconds", ORB_INGEST, SECONDS)
INGEST_REJECTED_RECORDS_WRITTEN = _metric("RejectedRecordsWritten", ORB_INGEST, by=("stage",))
ARCHIVE_WRITE_FAILURES = _metric("ArchiveWriteFailures", ORB_INGEST)

# OrbWebhook
WEBHOOKS_VERIFIED = _metric("WebhooksVerified", ORB_WEBHOOK)
WEBHOOKS_REJECTED = _metric("WebhooksRejected", ORB_WEBHOOK, by=("reason",), with_total=True)
WEBHOOKS_DUPLICATE = _metric("WebhooksDuplicate", ORB_WEBHOOK)
WEBHOOKS_FORWARDED = _metric("WebhooksForwarded", ORB_WEBHOOK)

# OrbReconcile
EVENTS_RECONCILED = _metric("EventsReconciled", ORB_RECONCILE)
EVENTS_NOT_FOUND_IN_ORB = _metric("EventsNotFoundInOrb", ORB_RECONCILE)
EVENTS_DEPRECATED_IN_ORB = _metric("EventsDeprecatedInOrb", ORB_RECONCILE)
EVENTS_DIFFERENT_IN_ORB = _metric("EventsDifferentInOrb", ORB_RECONCILE)
EVENTS_UNATTRIBUTED_IN_ORB = _metric("EventsUnattributedInOrb", ORB_RECONCILE)
VOLUME_SHORTFALL = _metric("VolumeShortfall", ORB_RECONCILE)
