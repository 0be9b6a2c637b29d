"""The reconciler's resources in the dev stack's moto: ``ReconcileCheckpointTable``, created from
its declaration in template.yaml so the local stack mirrors what ``sam deploy`` creates, beside
``AuditBucket`` (ingest's archive, the reconciler's reports), which ``local_aws`` creates.

A template without them (an older one) gets neither, and the dev stack's reconciler stays off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

AUDIT_BUCKET = "AuditBucket"
CHECKPOINT_TABLE = "ReconcileCheckpointTable"
# Names in LocalResources.extra.
AUDIT_BUCKET_NAME = "audit_bucket_name"
CHECKPOINT_TABLE_NAME = "reconcile_checkpoint_table_name"


def _declared(template: Mapping[str, Any], logical_id: str, resource_type: str) -> Mapping[str, Any] | None:
    resource = (template.get("Resources") or {}).get(logical_id)
    if not isinstance(resource, Mapping) or resource.get("Type") != resource_type:
        return None
    properties = resource.get("Properties") or {}
    return properties if isinstance(properties, Mapping) else {}


def create_audit_resources(
    template: Mapping[str, Any], bucket_name: str, dynamodb: Any, resolve: Any, stack_name: str
) -> dict[str, str]:
    """Create the checkpoint table the template declares; the bucket's and the table's names, by role."""
    created: dict[str, str] = {}
    table = _declared(template, CHECKPOINT_TABLE, "AWS::DynamoDB::Table")
    if not bucket_name or table is None:
        return created
    created[AUDIT_BUCKET_NAME] = bucket_name

    table_properties = resolve(table)
    table_name = str(table_properties.get("TableName") or f"{stack_name}-{CHECKPOINT_TABLE}")
    dynamodb.create_table(
        TableName=table_name,
        KeySchema=table_properties["KeySchema"],
        AttributeDefinitions=table_properties["AttributeDefinitions"],
        BillingMode=table_properties.get("BillingMode") or "PAY_PER_REQUEST",
    )
    created[CHECKPOINT_TABLE_NAME] = table_name
    return created
