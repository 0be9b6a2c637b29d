"""An archive line's idempotency key and event hour read from its text, without parsing it: what a
pass needs of the lines it does not look up (the keyed hash of the key, the event hour's count).

It reads only lines whose reading cannot differ from json's, and declines (None: parse it) any other:
a backslash anywhere (escapes could spell a name or a quote), a member name occurring twice, a
timestamp not in UTC (``Z`` or ``+00:00``) with a valid hour. The key and the timestamp must be among
the event's leading string members (ingest writes ``event_name``, ``idempotency_key``, ``timestamp``
first). The rest of the line is not checked: a line looked up is always parsed and checked.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

# Two patterns (key first, or timestamp first), each one C-speed match; with no backslash in the line,
# a string member is exactly ``"name": "value"`` (ingest writes compact JSON, the tests ", " and ": ").
_S = r'"[^"\\\x00-\x1f]*"'
_OTHER = r'(?:"[A-Za-z_]+": ?' + _S + r" ?, ?)*?"
_TS = r'"(\d{4}-\d\d-\d\dT\d\d):[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:Z|\+00:00)"'
_KEY = r'"([^"\\\x00-\x1f]*)"'
_START = r'\{ ?"event": ?\{ ?' + _OTHER
_KEY_FIRST = re.compile(_START + r'"idempotency_key": ?' + _KEY + r" ?, ?" + _OTHER + r'"timestamp": ?' + _TS)
_TIME_FIRST = re.compile(_START + r'"timestamp": ?' + _TS + r" ?, ?" + _OTHER + r'"idempotency_key": ?' + _KEY)


@lru_cache(maxsize=64)
def _real_hour(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%dT%H")  # a calendar check only
    except ValueError:
        return False
    return True


def scan_line(line: str) -> tuple[str, str] | None:
    """``(idempotency key, event hour)`` as json would read them, or None when not sure."""
    if "\\" in line or line.count('"idempotency_key"') != 1 or line.count('"timestamp"') != 1:
        return None
    found = _KEY_FIRST.match(line)
    if found is not None:
        key, hour = found.groups()
    else:
        found = _TIME_FIRST.match(line)
        if found is None:
            return None
        hour, key = found.groups()
    return (key, hour) if _real_hour(hour) else None
