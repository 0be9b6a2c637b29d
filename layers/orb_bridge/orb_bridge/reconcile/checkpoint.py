"""Where the reconciler keeps its place, in DynamoDB: one item per (send-hour, pass), plus one
``#meta`` item (when Orb last asked us to wait).

A pass in progress records the next batch of keys to look up and what the earlier batches found, so
a run that times out is resumed by the next from that batch (the sample, if any, is drawn again from
the same seed: the same keys). A done pass is never run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

META_KEY = "#meta"
# Keys listed per class in a checkpoint (and so in a report): a DynamoDB item holds at most 400 KB.
MAX_LISTED_KEYS = 500


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {name: _plain(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@dataclass
class PassProgress:
    hour: str  # YYYY-MM-DDTHH (the archive's send-hour)
    pass_name: str  # first | final | daily-YYYY-MM-DD
    status: str = "in_progress"  # | done
    next_batch: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    listed: dict[str, list[str]] = field(default_factory=dict)  # class -> keys (not present only)
    present_by_event_hour: dict[str, int] = field(default_factory=dict)
    unchecked_by_event_hour: dict[str, int] = field(default_factory=dict)  # sampled out
    total_keys: int = 0
    checked_keys: int = 0
    sampled: bool = False

    @property
    def item_key(self) -> str:
        return f"{self.hour}#{self.pass_name}"

    def add(self, cls: str, key: str) -> None:
        self.counts[cls] = self.counts.get(cls, 0) + 1
        listed = self.listed.setdefault(cls, [])
        if len(listed) < MAX_LISTED_KEYS:
            listed.append(key)

    def to_item(self) -> dict[str, Any]:
        return {"pk": self.item_key, **{name: value for name, value in vars(self).items()}}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> PassProgress:
        plain = _plain(item)
        plain.pop("pk", None)
        names = set(cls.__dataclass_fields__)
        return cls(**{name: value for name, value in plain.items() if name in names})


class CheckpointTable:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def load(self, keys: list[str]) -> dict[str, PassProgress]:
        """The checkpoints of these (hour#pass) keys that exist (100 per BatchGetItem)."""
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        found: dict[str, PassProgress] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table: {"Keys": [{"pk": {"S": key}} for key in keys[start : start + 100]], "ConsistentRead": True}
            }
            while request:
                answer = self._dynamodb.batch_get_item(RequestItems=request)
                for raw in answer.get("Responses", {}).get(self._table, []):
                    item = {name: deserializer.deserialize(value) for name, value in raw.items()}
                    progress = PassProgress.from_item(item)
                    found[progress.item_key] = progress
                request = answer.get("UnprocessedKeys") or {}
        return found

    def save(self, progress: PassProgress) -> None:
        from boto3.dynamodb.types import TypeSerializer

        serializer = TypeSerializer()
        item = {name: serializer.serialize(value) for name, value in progress.to_item().items()}
        self._dynamodb.put_item(TableName=self._table, Item=item)

    def not_before(self) -> float:
        answer = self._dynamodb.get_item(TableName=self._table, Key={"pk": {"S": META_KEY}}, ConsistentRead=True)
        raw = answer.get("Item", {}).get("not_before", {}).get("N")
        return float(raw) if raw else 0.0

    def set_not_before(self, epoch_seconds: float) -> None:
        self._dynamodb.put_item(
            TableName=self._table, Item={"pk": {"S": META_KEY}, "not_before": {"N": f"{epoch_seconds:.3f}"}}
        )
