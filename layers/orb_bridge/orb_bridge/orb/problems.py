"""Which events a whole-request 400 names, read from every form Orb's body may carry them in.

Orb answers a request holding any invalid event with a 400 ``RequestValidationError``
(``validation_errors: [...]``, item shape not published; see docs/facts.md and
https://docs.withorb.com/reference/error-responses). We read, in this order:

- a ``validation_failed`` list like the 200's (``{"idempotency_key", "validation_errors"}``);
- ``validation_errors`` items that are objects carrying ``idempotency_key`` (messages in
  ``validation_errors`` / ``errors`` / ``message`` / ``detail``), or a ``loc`` naming
  ``events``, ``<index>`` (FastAPI's shape);
- ``validation_errors`` strings quoting a key we sent, matched as a whole key (``msg-1`` never
  matches ``msg-10``), or naming ``events[<index>]`` / ``events.<index>``.

Strings that name nothing we sent are kept as the request's general errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Bounds on what a rejected-queue record keeps of Orb's words.
MAX_MESSAGES_PER_EVENT = 20
MAX_MESSAGE_CHARS = 1000

# Characters that end a key candidate in free text: whitespace, quotes, brackets, separators.
_DELIMITERS = re.compile(r"[\s'\"`,;()\[\]{}<>=]+")
# Trailing punctuation of a sentence that is not part of a key ("... 'msg-1'." or "msg-1:").
_TRAILING = ".:!?"
_INDEX = re.compile(r"\bevents(?:\[(\d+)\]|\.(\d+)\b)")
_MESSAGE_FIELDS = ("validation_errors", "errors", "message", "detail", "msg")


@dataclass
class Attribution:
    """Orb's messages by idempotency key, and the messages that named no event we sent."""

    by_key: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, key: str, messages: Sequence[str]) -> None:
        kept = self.by_key.setdefault(key, [])
        for message in messages:
            text = bounded(message)
            if len(kept) < MAX_MESSAGES_PER_EVENT and text not in kept:
                kept.append(text)


def bounded(message: Any) -> str:
    text = message if isinstance(message, str) else str(message)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


class KeyMatcher:
    """Finds the keys of one request in free text, whole keys only, in time linear in the text."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        self._plain = {key for key in keys if not _DELIMITERS.search(key)}
        # Keys containing a delimiter (rare: spaces, quotes) cannot be found by splitting.
        self._odd = [key for key in keys if key not in self._plain]

    def find(self, text: str) -> list[str]:
        found: list[str] = []
        for token in _DELIMITERS.split(text):
            while token:
                if token in self._plain:
                    found.append(token)
                    break
                if token[-1] not in _TRAILING:
                    break
                token = token[:-1]
        for key in self._odd:
            start = text.find(key)
            while start >= 0:
                end = start + len(key)
                if _boundary(text, start - 1) and _boundary(text, end):
                    found.append(key)
                    break
                start = text.find(key, start + 1)
        for match in _INDEX.finditer(text):
            index = int(match.group(1) or match.group(2))
            if index < len(self.keys):
                found.append(self.keys[index])
        return list(dict.fromkeys(found))


def _boundary(text: str, position: int) -> bool:
    return position < 0 or position >= len(text) or not (text[position].isalnum() or text[position] in "-_")


def attribute(body: Any, sent_keys: Sequence[str]) -> Attribution:
    """Read which of ``sent_keys`` a 400 body names, with Orb's messages for each."""
    result = Attribution()
    if not isinstance(body, Mapping):
        return result
    sent = set(sent_keys)
    matcher = KeyMatcher(sent_keys)

    failed = body.get("validation_failed")
    if isinstance(failed, list):
        for item in failed:
            if isinstance(item, Mapping) and item.get("idempotency_key") in sent:
                result.add(item["idempotency_key"], _messages(item) or ["refused by Orb (no message given)"])

    errors = body.get("validation_errors")
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, Mapping):
            key = item.get("idempotency_key")
            messages = _messages(item) or [bounded(item)]
            if isinstance(key, str) and key in sent:
                result.add(key, messages)
                continue
            index = _loc_index(item.get("loc"))
            if index is not None and index < len(sent_keys):
                result.add(sent_keys[index], messages)
                continue
            named = [found for message in messages for found in matcher.find(message)]
            if named:
                for found in dict.fromkeys(named):
                    result.add(found, messages)
            else:
                result.general.extend(bounded(message) for message in messages)
        elif isinstance(item, str):
            named = matcher.find(item)
            for found in named:
                result.add(found, [item])
            if not named:
                result.general.append(bounded(item))
        elif item is not None:
            result.general.append(bounded(item))
    return result


def _messages(item: Mapping[str, Any]) -> list[str]:
    messages: list[str] = []
    for name in _MESSAGE_FIELDS:
        value = item.get(name)
        if isinstance(value, str) and value:
            messages.append(value)
        elif isinstance(value, list):
            messages.extend(entry if isinstance(entry, str) else str(entry) for entry in value if entry)
    return messages


def _loc_index(loc: Any) -> int | None:
    """``["body", "events", 3, "timestamp"]`` -> 3."""
    if not isinstance(loc, list):
        return None
    for position, part in enumerate(loc[:-1]):
        if part == "events" and isinstance(loc[position + 1], int) and loc[position + 1] >= 0:
            return int(loc[position + 1])
    return None
