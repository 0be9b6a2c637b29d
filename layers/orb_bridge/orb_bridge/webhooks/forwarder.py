"""Hand a verified webhook on to EventBridge: one ``PutEvents`` entry, its body as the Detail."""

from __future__ import annotations

from typing import Any

from orb_bridge.aws import clients as aws
from orb_bridge.webhooks.models import OrbWebhook

EVENT_SOURCE = "orb"


class ForwardError(RuntimeError):
    """EventBridge did not accept the event; raised inside the idempotent function on purpose."""


class EventBridgeForwarder:
    def __init__(self, event_bus_name: str, client: Any | None = None) -> None:
        self.event_bus_name = event_bus_name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws.client("events")

    def forward(self, webhook: OrbWebhook, detail: str) -> str:
        """Put one event (Detail = the verified body, byte for byte as text); return its EventId."""
        try:
            response = self.client.put_events(
                Entries=[
                    {
                        "EventBusName": self.event_bus_name,
                        "Source": EVENT_SOURCE,
                        "DetailType": webhook.type,
                        "Detail": detail,
                        "Time": webhook.created_at_utc,
                    }
                ]
            )
        except Exception as exc:  # network, throttling, missing bus, permissions ...
            raise ForwardError(f"PutEvents failed: {type(exc).__name__}: {exc}") from exc
        entries = response.get("Entries") or [{}]
        if response.get("FailedEntryCount", 0) or not entries[0].get("EventId"):
            entry = entries[0]
            raise ForwardError(
                f"PutEvents rejected the entry: {entry.get('ErrorCode', 'Unknown')}: {entry.get('ErrorMessage', '')}"
            )
        return str(entries[0]["EventId"])
