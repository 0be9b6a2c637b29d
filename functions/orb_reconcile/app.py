"""OrbReconcileFunction: on a schedule, checks the audit archive against what Orb holds and
reports what is not present (``orb_bridge.reconcile.service``; README "Reconciliation")."""

from __future__ import annotations

from typing import Any

from orb_bridge.aws.clients import client, prewarm
from orb_bridge.core.observability import emit, logger, metrics
from orb_bridge.orb.reconcile_client import OrbReadClient
from orb_bridge.reconcile.pacing import Pacer
from orb_bridge.reconcile.service import Reconciler, utc_now
from orb_bridge.reconcile.settings import ReconcileSettings

prewarm("s3", "dynamodb", "secretsmanager")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.set_correlation_id(getattr(context, "aws_request_id", None))
    settings = ReconcileSettings.from_env()
    orb = OrbReadClient(
        settings.orb_api_base_url,
        settings.orb_api_key,
        Pacer(settings.requests_per_second),
        settings.request_timeout_seconds,
    )
    reconciler = Reconciler(
        settings,
        client("s3"),
        client("dynamodb"),
        orb,
        emit,
        utc_now(),
        lambda: context.get_remaining_time_in_millis() / 1000,
    )
    summary = reconciler.run()
    return {"done": summary.done, "waiting": summary.waiting, "stopped": summary.stopped, "orb_calls": orb.calls}
