"""The basis of a send-hour's daily passes, written once by its final pass (README "Reconciliation").

A daily pass re-checks what can still change after the final pass (deprecations, backfills, repairs)
without re-reading the hour's archive: it reads this one object, looks up its keys and compares
volume with what the final pass found present. The basis holds:

- ``sample``: a seeded sample of up to ``daily_sample_size`` events the final pass found present,
  as archived (their bodies: classification compares them);
- ``not_present``: the events the final pass did not find present (the keys its report lists, at
  most ``MAX_LISTED_KEYS`` per class; ``not_present_unlisted`` counts the rest), so a daily pass
  sees whether they were repaired;
- per event hour, the archived keys, those found present and those a sampled final pass did not
  look up (what the volume check needs).

It is outside input when read back (a bucket anyone with write access can change): a basis that is
not exactly this shape, or larger than ``MAX_BASIS_BYTES`` stored or inflated, is refused with a
reason and the daily pass reads the archive instead.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import json
import zlib
from dataclasses import dataclass
from typing import Any

from orb_bridge.aws.archive import ArchiveFormatError, gunzip_bounded, is_archived_event
from orb_bridge.reconcile.checkpoint import PassProgress
from orb_bridge.reconcile.classify import PRESENT
from orb_bridge.reconcile.report import put_new_object
from orb_bridge.reconcile.selection import Selection

FORMAT = 1
# Inflated: a sample of 1,000 events and 2,000 listed keys of typical size is well under 2 MB; the
# writer leaves sample events out rather than pass this (an event may be up to 32 KiB).
MAX_BASIS_BYTES = 16 * 1024 * 1024


class BasisError(ValueError):
    """A basis that is not one a final pass wrote."""


def basis_key(hour: str) -> str:
    # Beside the hour's reports (the function may write only there), not named *.json: report
    # readers list only those.
    return f"reports/sent_hour={hour}/final.basis.json.gz"


@dataclass(frozen=True)
class Basis:
    hour: str
    archived_keys: int
    present_keys: int
    sample: list[dict[str, Any]]  # archived events, present at the final pass
    not_present: list[dict[str, Any]]  # archived events, not present at the final pass
    not_present_unlisted: int
    present_by_event_hour: dict[str, int]
    unchecked_by_event_hour: dict[str, int]
    archived_by_event_hour: dict[str, int]
    reverted_backfill_events: int

    def events(self) -> list[dict[str, Any]]:
        """Every event to look up, ordered by key (a resumed pass takes up the same batches)."""
        return sorted(self.sample + self.not_present, key=lambda event: str(event["idempotency_key"]))


def _rank(seed: bytes, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8, key=seed).digest(), "big")


def build_basis(progress: PassProgress, selection: Selection, reverted: int, daily_sample_size: int) -> dict[str, Any]:
    """The basis document of a completed final pass (the same on resume: the sample is seeded by the
    hour and drawn from the same selection and checkpoint)."""
    listed = {key for cls, keys in progress.listed.items() if cls != PRESENT for key in keys}
    not_present_count = sum(count for cls, count in progress.counts.items() if cls != PRESENT)
    line_of = dict(zip(selection.keys, selection.lines, strict=True))
    not_present = [json.loads(line_of[key])["event"] for key in sorted(listed) if key in line_of]
    seed = hashlib.sha256(f"{progress.hour}#basis".encode()).digest()[:16]
    ranked = heapq.nsmallest(
        daily_sample_size, ((_rank(seed, key), key) for key in selection.keys if key not in listed)
    )
    budget = MAX_BASIS_BYTES // 2 - sum(len(line_of[key]) for key in listed if key in line_of)
    sample: list[dict[str, Any]] = []
    for _, key in ranked:
        budget -= len(line_of[key])
        if budget < 0:
            break  # bodies too large to keep them all: a smaller sample, never a refused basis
        sample.append(json.loads(line_of[key])["event"])
    return {
        "format": FORMAT,
        "hour": progress.hour,
        "archived_keys": progress.total_keys,
        "present_keys": progress.counts.get(PRESENT, 0),
        "sample": sample,
        "not_present": not_present,
        "not_present_unlisted": max(0, not_present_count - len(not_present)),
        "present_by_event_hour": dict(progress.present_by_event_hour),
        "unchecked_by_event_hour": dict(selection.unchecked_by_event_hour),
        "archived_by_event_hour": dict(selection.archived_by_event_hour),
        "reverted_backfill_events": reverted,
    }


def write_basis(s3: Any, bucket: str, document: dict[str, Any]) -> bool:
    """Write the basis unless one exists for that hour (True if this call wrote it)."""
    body = gzip.compress(json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8"), mtime=0)
    key = basis_key(document["hour"])
    return put_new_object(s3, bucket, key, body, ContentType="application/json", ContentEncoding="gzip")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _counts(document: dict[str, Any], name: str) -> dict[str, int]:
    value = document.get(name)
    if not isinstance(value, dict) or not all(isinstance(k, str) and _count(v) for k, v in value.items()):
        raise BasisError(f"{name} is not a map of event hours to counts")
    return value


def _events(document: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = document.get(name)
    if not isinstance(value, list):
        raise BasisError(f"{name} is not a list of events")
    if not all(is_archived_event(event) for event in value):
        raise BasisError(f"{name} holds an entry that is not an archived event")
    return value


def parse_basis(body: bytes, hour: str) -> Basis:
    try:
        document = json.loads(gunzip_bounded(body, basis_key(hour), MAX_BASIS_BYTES).decode("utf-8"))
    except ArchiveFormatError as exc:
        raise BasisError(str(exc).removeprefix(f"{basis_key(hour)}: ")) from None
    except (zlib.error, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BasisError(f"not gzip JSON ({type(exc).__name__})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BasisError(f"not a format {FORMAT} basis")
    if document.get("hour") != hour:
        raise BasisError(f"the basis of another hour ({str(document.get('hour'))[:40]!r})")
    numbers = ("archived_keys", "present_keys", "not_present_unlisted", "reverted_backfill_events")
    for name in numbers:
        if not _count(document.get(name)):
            raise BasisError(f"{name} is not a count")
    return Basis(
        hour=hour,
        archived_keys=document["archived_keys"],
        present_keys=document["present_keys"],
        sample=_events(document, "sample"),
        not_present=_events(document, "not_present"),
        not_present_unlisted=document["not_present_unlisted"],
        present_by_event_hour=_counts(document, "present_by_event_hour"),
        unchecked_by_event_hour=_counts(document, "unchecked_by_event_hour"),
        archived_by_event_hour=_counts(document, "archived_by_event_hour"),
        reverted_backfill_events=document["reverted_backfill_events"],
    )


def read_basis(s3: Any, bucket: str, hour: str) -> tuple[Basis | None, str]:
    """The hour's basis, or None and why not (no basis: a final pass before this version; or one
    refused). Never raises for what is in the bucket; S3 failures other than a missing key do."""
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=basis_key(hour))["Body"].read(MAX_BASIS_BYTES + 1)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None, "no basis (the final pass ran before daily passes used one)"
        raise
    if len(body) > MAX_BASIS_BYTES:
        return None, f"basis refused: larger than {MAX_BASIS_BYTES} bytes"
    try:
        return parse_basis(body, hour), ""
    except BasisError as exc:
        return None, f"basis refused: {exc}"
