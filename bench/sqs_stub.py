"""SQS SendMessageBatch answered in-process: standard library and botocore only.

Shared by the benchmarks under CPython 3.11 (``bench.common``) and by the Lambda-like python3.13
child (``bench/lambda_child.py`` loads this file by path), so the handler and its floor are
answered by the same stub everywhere.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from botocore.awsrequest import AWSResponse

_COUNTER_LOCK = threading.Lock()


class _RawBody:
    """Enough of urllib3's response for botocore to read a canned body."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any):
        yield self._content


class InProcessSqs:
    """Answers an SQS client's SendMessageBatch in-process (a ``before-send`` event hook).

    moto's own cost per call would swamp what the benchmarks measure; this costs next to
    nothing and still goes through botocore's serialisation, parsing and MD5 checks.
    """

    def __init__(self, client: Any) -> None:
        self.calls = 0
        self.messages = 0
        self.bytes = 0
        client.meta.events.register("before-send.sqs.SendMessageBatch", self._answer)

    def _answer(self, request: Any, **_: Any) -> Any:
        payload = json.loads(request.body)
        entries = payload["Entries"]
        with _COUNTER_LOCK:
            self.calls += 1
            self.messages += len(entries)
            self.bytes += sum(len(entry["MessageBody"].encode("utf-8")) for entry in entries)
        successful = [
            {
                "Id": entry["Id"],
                "MessageId": f"{threading.get_ident()}-{entry['Id']}",
                "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode("utf-8")).hexdigest(),
            }
            for entry in entries
        ]
        body = json.dumps({"Successful": successful, "Failed": []}).encode("utf-8")
        headers = {"Content-Type": "application/x-amz-json-1.0", "Content-Length": str(len(body))}
        return AWSResponse(request.url, 200, headers, _RawBody(body))
