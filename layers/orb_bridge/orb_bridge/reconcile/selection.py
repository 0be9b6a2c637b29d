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
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

# Ranks are spread over this many arrays by their low byte, so counting distinct ranks needs a set
# of one array at a time, not of the whole hour.
PARTITIONS = 256


@dataclass
class Selection:
    # The archive lines (``{"event": ...}``) of the events to look up, ordered by key: parsed a
    # search's worth at a time (a parsed event takes several times its line's memory).
    lines: list[str]
    total_keys: int
    sampled: bool
    unchecked_by_event_hour: dict[str, int] = field(default_factory=dict)  # distinct keys not looked up
    keys: list[str] = field(default_factory=list)  # the key of each line
    archived_by_event_hour: dict[str, int] = field(default_factory=dict)  # distinct keys archived


class KeySelector:
    def __init__(
        self, full_check_events_per_hour: int, sample_size: int, seed: int, event_hour_of: Callable[[str], str]
    ) -> None:
        self._full_check = full_check_events_per_hour
        self._sample_size = sample_size
        self._seed = seed.to_bytes(8, "big")
        self._event_hour_of = event_hour_of  # an archive line's event hour
        # key -> archive line while the hour may still be looked up in full; None once it is larger.
        self._every: dict[str, str] | None = {}
        # Once larger: (-rank, key, line, event hour), a max-heap of the lowest ranks seen.
        self._sample: list[tuple[int, str, str, str]] = []
        self._in_sample: set[str] = set()
        self._ranks = [array("Q") for _ in range(PARTITIONS)]
        self._hour_numbers = [array("I") for _ in range(PARTITIONS)]
        self._hours: dict[str, int] = {}
        self._every_by_hour: dict[str, int] = {}  # distinct keys per event hour while in full

    def _rank(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, key=self._seed).digest()
        return int.from_bytes(digest, "big")

    def rank(self, key: str) -> int:
        return self._rank(key)

    def could_keep(self, rank: int, key: str) -> bool:
        """Whether ``add`` may keep this key's line now (the lines a pass parses and checks); once
        sampling, only a key ranked below the sample's highest, so few lines of a large hour."""
        if self._every is not None:
            return True
        if key in self._in_sample:
            return False
        return len(self._sample) < self._sample_size or rank < -self._sample[0][0]

    def add(self, key: str, line: str, event_hour: str, rank: int | None = None) -> None:
        rank = self._rank(key) if rank is None else rank
        partition = rank % PARTITIONS
        self._ranks[partition].append(rank)
        self._hour_numbers[partition].append(self._hours.setdefault(event_hour, len(self._hours)))
        if self._every is not None:
            if key in self._every:
                return
            if len(self._every) < self._full_check:
                self._every[key] = line
                self._every_by_hour[event_hour] = self._every_by_hour.get(event_hour, 0) + 1
                return
            self._start_sampling(self._every)
        self._offer(rank, key, line, event_hour)

    def _start_sampling(self, every: dict[str, str]) -> None:
        """The hour is larger than a full check: keep the sample of what was kept so far, then only it."""
        self._every = None
        lowest = heapq.nsmallest(self._sample_size, ((self._rank(key), key) for key in every))
        self._sample = [(-rank, key, every[key], self._event_hour_of(every[key])) for rank, key in lowest]
        heapq.heapify(self._sample)
        self._in_sample = {key for _, key in lowest}

    def _offer(self, rank: int, key: str, line: str, event_hour: str) -> None:
        if key in self._in_sample:
            return
        if len(self._sample) < self._sample_size:
            heapq.heappush(self._sample, (-rank, key, line, event_hour))
            self._in_sample.add(key)
        elif rank < -self._sample[0][0]:
            dropped = heapq.heapreplace(self._sample, (-rank, key, line, event_hour))[1]
            self._in_sample.discard(dropped)
            self._in_sample.add(key)

    def selection(self) -> Selection:
        if self._every is not None:
            every, self._every = self._every, None
            keys = sorted(every)
            lines = [every.pop(key) for key in keys]
            return Selection(
                lines, len(lines), sampled=False, keys=keys, archived_by_event_hour=dict(self._every_by_hour)
            )
        chosen = sorted((key, line, event_hour) for _, key, line, event_hour in self._sample)
        names = {number: hour for hour, number in self._hours.items()}
        distinct: dict[str, int] = {}
        total = 0
        for ranks, numbers in zip(self._ranks, self._hour_numbers, strict=True):
            for number in dict(zip(ranks, numbers, strict=True)).values():
                distinct[names[number]] = distinct.get(names[number], 0) + 1
                total += 1
        archived = dict(distinct)
        for _, _, event_hour in chosen:
            distinct[event_hour] -= 1
        unchecked = {hour: count for hour, count in distinct.items() if count}
        return Selection(
            [line for _, line, _ in chosen],
            total,
            sampled=True,
            unchecked_by_event_hour=unchecked,
            keys=[key for key, _, _ in chosen],
            archived_by_event_hour=archived,
        )
