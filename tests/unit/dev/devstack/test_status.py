"""The dev output shows intake's rejections (what and why, escaped) and refused requests (401s too)."""

from __future__ import annotations

import io
import threading
from typing import Any

from orb_bridge_dev.devstack import status
from orb_bridge_dev.devstack.status import Counters, DevStackStatus, run_forever


class Stack(DevStackStatus):
    """The reporting half alone: queue depths and the poller's figures fixed."""

    def __init__(self) -> None:
        self.counters = Counters()

    def snapshot(self) -> dict[str, Any]:
        with self.counters.lock:
            figures = {
                "received": self.counters.received,
                "enqueued": self.counters.enqueued,
                "skipped": self.counters.skipped,
                "intake_rejected": self.counters.intake_rejected,
                "segment_refused": self.counters.segment_refused,
            }
        return figures | {
            "ingested": 0,
            "retried": 0,
            "in_queue": 0,
            "rejected": figures["intake_rejected"],
            "webhooks_verified": 0,
            "webhooks_refused": 0,
            "forwarded": 0,
            "last_error": None,
        }


def output_of(stack: Stack) -> str:
    out, stop = io.StringIO(), threading.Event()
    stop.set()  # one round: notices, then the status line
    run_forever(stack, out, stop)
    return out.getvalue()


def test_rejections_and_refusals_are_counted_and_said() -> None:
    stack = Stack()
    stack._count_segment_response(
        200,
        {
            "accepted": 1,
            "skipped": 0,
            "rejected": [{"index": 1, "messageId": "m-\x1b[2J2", "error": "properties.amount: not a number"}],
        },
    )
    stack._count_segment_response(400, {"accepted": 0, "skipped": 0, "rejected": [], "rejected_omitted": 2})
    stack._count_segment_response(401, {"message": "unauthorized"})
    stack._count_segment_response(413, None)

    output = output_of(stack)
    assert "intake rejected event #1 (messageId m-\\x1b[2J2): properties.amount: not a number" in output
    assert "\x1b" not in output  # a messageId cannot rewrite the operator's screen
    assert "intake rejected 2 more event(s) of that request" in output
    assert "segment request refused: HTTP 401: unauthorized" in output
    assert "segment request refused: HTTP 413: no reason given" in output
    assert "segment: received 4, enqueued 1, skipped 0, rejected 3, refused requests 3 |" in output
    # Said once: the next round prints only the status line, which has not changed.
    assert output_of(stack).count("refused:") == 0


def test_a_flood_of_rejections_keeps_the_output_bounded() -> None:
    stack = Stack()
    for index in range(status.MAX_PENDING_NOTICES + 5):
        stack._count_segment_response(
            200, {"accepted": 0, "skipped": 0, "rejected": [{"index": index, "error": "x" * 5000}]}
        )
    lines = output_of(stack).splitlines()
    assert "(5 earlier rejection line(s) not shown)" in lines[0]
    assert len(lines) == status.MAX_PENDING_NOTICES + 2
    assert max(len(line) for line in lines) < status.MAX_NOTICE_CHARS + 20
