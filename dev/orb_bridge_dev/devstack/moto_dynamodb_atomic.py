"""moto's DynamoDB made atomic per write, as DynamoDB is: a patch of moto's server process only.

DynamoDB evaluates a write's condition and applies the write as one step, so of two concurrent
``attribute_not_exists`` puts on one key exactly one succeeds. moto's server serves requests on
threads and its backend checks the condition and then writes without a lock: both can succeed.
The dev stack relies on conditional writes being atomic (the ingest pacing table's GCRA slots,
the webhook deduplication, the reconciler's checkpoints): without this, two ingest workers could
both take the idle-bucket branch and send two requests in one slot (seen in ``make bench``'s
paced row: two requests of 500 events 0.2 s apart where the budget allows one per 3 s).

One lock around every writing call of the backend (moto serves a few requests at a time; a write
takes well under a millisecond). ``PATCHED`` names the moto methods wrapped; a test checks each
still exists, so a moto upgrade that moves them fails loudly.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

PATCHED = (
    ("moto.dynamodb.models", "DynamoDBBackend.put_item"),
    ("moto.dynamodb.models", "DynamoDBBackend.update_item"),
    ("moto.dynamodb.models", "DynamoDBBackend.delete_item"),
    ("moto.dynamodb.models", "DynamoDBBackend.batch_write_item"),
    ("moto.dynamodb.models", "DynamoDBBackend.transact_write_items"),
    ("moto.dynamodb.models", "DynamoDBBackend.execute_transaction"),
)

_lock = threading.RLock()  # re-entrant: a transaction's writes may call the other writers
_patched = False


def make_moto_dynamodb_writes_atomic() -> None:
    """Serialise moto's DynamoDB writes (condition check and write as one step). Idempotent."""
    global _patched
    if _patched:
        return
    from moto.dynamodb import models

    for _module, path in PATCHED:
        name = path.split(".", 1)[1]
        setattr(models.DynamoDBBackend, name, _locked(getattr(models.DynamoDBBackend, name)))
    _patched = True


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def write(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    return write
