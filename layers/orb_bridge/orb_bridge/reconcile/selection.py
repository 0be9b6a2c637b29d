"""Which of a send-hour's archived keys a pass looks up, chosen while the archive streams past, so a
pass holds the bodies of at most ``full_check_events_per_hour`` events (or ``sample_size`` once the
hour is larger), never the whole hour's.

- Every distinct key is looked up while the hour holds at most ``full_check_events_per_hour`` of them
  (a key archived twice, by a request re-sent after a lost answer, counts once).
- Above that, a uniform sample of ``sample_size`` keys: the keys of lowest rank, a key's rank being
  a keyed hash of it seeded by the pass (bottom-k sampling), so the same pass draws the same sample on
  resume. Each key is remembered as its 8-byte rank and an event-hour index in arrays (about 12 bytes
  a key), enough to count distinct keys per event hour for the volume check; two keys with the same
  64-bit rank (odds about n^2 / 2^65) would count once, lowering the expected volume, never raising it.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from array import array
from dataclasses import dataclass, field
from typing import Any

# Ranks are spread over this many arrays by their low byte, so counting distinct ranks needs a set
# of one array at a time, not of the whole hour.
PARTITIONS = 256


@dataclass
class Selection:
    # The events to look up, ordered by key, as compact JSON: parsed a search's worth at a time
    # (a parsed event takes several times its text's memory).
    events: list[str]
    total_keys: int
    sampled: bool
    unchecked_by_event_hour: dict[str, int] = field(default_factory=dict)  # distinct keys not looked up


class KeySelector:
    def __init__(self, full_check_events_per_hour: int, sample_size: int, seed: int) -> None:
        self._full_check = full_check_events_per_hour
        self._sample_size = sample_size
        self._seed = seed.to_bytes(8, "big")
        # key -> event (compact JSON) while the hour may still be looked up in full; None after.
        self._every: dict[str, str] | None = {}
        # (-rank, key, event JSON, event hour): a max-heap of the lowest ranks seen.
        self._sample: list[tuple[int, str, str, str]] = []
        self._in_sample: set[str] = set()
        self._ranks = [array("Q") for _ in range(PARTITIONS)]
        self._hour_numbers = [array("I") for _ in range(PARTITIONS)]
        self._hours: dict[str, int] = {}

    def _rank(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, key=self._seed).digest()
        return int.from_bytes(digest, "big")

    def add(self, key: str, event: dict[str, Any], event_hour: str) -> None:
        rank = self._rank(key)
        partition = rank % PARTITIONS
        self._ranks[partition].append(rank)
        self._hour_numbers[partition].append(self._hours.setdefault(event_hour, len(self._hours)))
        if self._every is not None and key not in self._every:
            if len(self._every) < self._full_check:
                self._every[key] = _compact(event)
            else:
                self._every = None  # larger than a full check: only the sample is kept from here
        if key in self._in_sample:
            return
        if len(self._sample) < self._sample_size:
            heapq.heappush(self._sample, (-rank, key, _compact(event), event_hour))
            self._in_sample.add(key)
        elif rank < -self._sample[0][0]:
            dropped = heapq.heapreplace(self._sample, (-rank, key, _compact(event), event_hour))[1]
            self._in_sample.discard(dropped)
            self._in_sample.add(key)

    def selection(self) -> Selection:
        if self._every is not None:
            every, self._every = self._every, None
            events = [every.pop(key) for key in sorted(every)]
            return Selection(events, len(events), sampled=False)
        chosen = sorted((key, text, event_hour) for _, key, text, event_hour in self._sample)
        names = {number: hour for hour, number in self._hours.items()}
        distinct: dict[str, int] = {}
        total = 0
        for ranks, numbers in zip(self._ranks, self._hour_numbers, strict=True):
            for number in dict(zip(ranks, numbers, strict=True)).values():
                distinct[names[number]] = distinct.get(names[number], 0) + 1
                total += 1
        for _, _, event_hour in chosen:
            distinct[event_hour] -= 1
        events = [text for _, text, _ in chosen]
        unchecked = {hour: count for hour, count in distinct.items() if count}
        return Selection(events, total, sampled=True, unchecked_by_event_hour=unchecked)


def _compact(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
