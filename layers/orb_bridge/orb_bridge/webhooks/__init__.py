"""Orb outbound webhooks: signature verification (``signature``), the payload model (``models``)
and the receiver that verifies, deduplicates and hands webhooks on to EventBridge (``service``).

Submodules are imported explicitly so that signing (dev tooling) does not pull in boto3 or
Powertools Idempotency.
"""
