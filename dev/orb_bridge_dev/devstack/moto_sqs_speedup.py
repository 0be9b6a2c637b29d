"""The one patch of moto's internals: its SQS made fast at depth, same behaviour.

Isolated here so that a moto upgrade that moves what it patches fails one test loudly
(``tests/unit/dev/devstack/test_moto_sqs_speedup.py``) instead of slowing the dev stack down silently.
``PATCHED`` lists every moto name this module reads or replaces.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

# (module, attribute path) pairs this patch relies on; the test checks each still exists.
PATCHED = (
    ("moto.sqs.models", "unix_time"),
    ("moto.sqs.models", "unix_time_millis"),
    ("moto.sqs.models", "Queue.attributes"),
    ("moto.sqs.models", "Queue.BASE_ATTRIBUTES"),
    ("moto.sqs.models", "Queue.FIFO_ATTRIBUTES"),
    ("moto.sqs.models", "Queue.KMS_ATTRIBUTES"),
    ("moto.sqs.models", "SQSBackend.is_message_valid_based_on_retention_period"),
    ("moto.sqs.models", "SQSBackend.get_queue"),
    ("moto.core.utils", "camelcase_to_underscores"),
)

_moto_sqs_patched = False


def speed_up_moto_sqs() -> None:
    """Make moto's SQS calls cost about the same whatever the queue's depth (same behaviour).

    moto (5.x) computes every queue attribute, each a scan of all messages, for every message it
    sends and receives, and reads the clock through naive datetimes on each check: at 1,000
    queued messages a SendMessageBatch took ~150 ms and a ReceiveMessage ~500 ms, ~25x slower
    than with this patch (~7 ms each). The clock now reads ``time.time()``; the retention check
    reads the queue's retention period directly instead of computing all its attributes.
    """
    global _moto_sqs_patched
    if _moto_sqs_patched:
        return
    from moto.sqs import models

    slow_unix_time, slow_unix_time_millis = models.unix_time, models.unix_time_millis

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else slow_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else slow_unix_time_millis(dt)

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return retention_period + message.sent_timestamp / 1000 > time.time()

    class LazyQueueAttributes(Mapping):
        """``Queue.attributes`` computed key by key: SendMessage only reads one of them."""

        def __init__(self, queue: Any) -> None:
            self._queue = queue
            names = list(queue.BASE_ATTRIBUTES)
            if queue.fifo_queue:
                names += queue.FIFO_ATTRIBUTES
            if queue.kms_master_key_id:
                names += queue.KMS_ATTRIBUTES
            self._names = dict.fromkeys(names)
            if queue.policy:
                self._names["Policy"] = None
            if queue.redrive_policy:
                self._names["RedrivePolicy"] = None

        def __getitem__(self, name: str) -> Any:
            if name not in self._names:
                raise KeyError(name)
            if name == "Policy":
                value = self._queue.policy
            elif name == "RedrivePolicy":
                value = json.dumps(self._queue.redrive_policy)
            else:
                value = getattr(self._queue, camelcase_to_underscores(name))
            return str(value).lower() if isinstance(value, bool) else value

        def __iter__(self) -> Any:
            return iter(self._names)

        def __len__(self) -> int:
            return len(self._names)

    from moto.core.utils import camelcase_to_underscores

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    # The patch itself: mypy rightly objects to assigning methods, which is the point here.
    models.Queue.attributes = property(LazyQueueAttributes)  # type: ignore[method-assign,assignment]
    models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
    _moto_sqs_patched = True
