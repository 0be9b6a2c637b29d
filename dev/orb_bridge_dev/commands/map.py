"""``orb-bridge map FILE``: dry-run the Segment -> Orb mapping of an event, array or batch."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orb_bridge_dev.devstack.env import map_settings_env

# Orb's default grace period: older events need a backfill (docs/facts.md#orb-timestamps-and-grace-period).
GRACE_PERIOD = timedelta(hours=12)


def register(commands: Any) -> None:
    mapping = commands.add_parser(
        "map",
        help="dry-run the mapping of a Segment event or batch file (exit 1 if any event is rejected)",
        description='Print the Orb event(s) a Segment event, array or {"batch": [...]} becomes under the current settings.',
    )
    mapping.add_argument("file", help="JSON file ('-' for stdin)")


def run_map(path: str, env: Mapping[str, str], out: Any = None, err: Any = None) -> int:
    from orb_bridge.core.config import MappingSettings
    from orb_bridge.core.errors import ConfigurationError
    from orb_bridge.core.http_request import BodyError
    from orb_bridge.segment.mapping import map_body
    from orb_bridge_dev.terminal import printable

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=err)
        return 2
    try:
        settings = MappingSettings.from_env(map_settings_env(env))
    except ConfigurationError as exc:
        print(f"error: {exc}", file=err)
        return 2
    print(
        f"settings: EVENT_NAME_FIELD={settings.event_name_field} "
        f"EXTERNAL_CUSTOMER_ID_FIELD={settings.external_customer_id_field} "
        f"IDEMPOTENCY_KEY_FIELD={settings.idempotency_key_field} "
        f"PROPERTIES_MAPPING={json.dumps(dict(settings.properties_mapping))}",
        file=out,
    )
    try:
        outcomes = map_body(raw, settings)
    except BodyError as exc:
        print(f"rejected: the whole body ({exc.problem.value}): {printable(exc.message)}", file=out)
        return 1
    now = datetime.now(UTC)
    accepted = skipped = rejected = 0
    for outcome in outcomes:
        label = f"[{outcome.index}]" + (f" messageId {printable(outcome.message_id)}" if outcome.message_id else "")
        if outcome.orb_event is not None:
            accepted += 1
            print(f"{label}: Orb event", file=out)
            print(json.dumps(outcome.orb_event.to_orb(), indent=2), file=out)
            note = _timestamp_note(outcome.orb_event.timestamp, now)
            if note:
                print(f"  note: {note}", file=out)
        elif outcome.skipped:
            skipped += 1
            print(
                f"{label}: skipped: {_with_article(printable(outcome.call_type))} call is acknowledged, not billed",
                file=out,
            )
        else:
            rejected += 1
            print(f"{label}: rejected: {printable(outcome.error)}", file=out)
    print(f"{accepted} accepted, {skipped} skipped, {rejected} rejected", file=out)
    return 1 if rejected else 0


def _timestamp_note(timestamp: str, now: datetime) -> str | None:
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment < now - GRACE_PERIOD:
        return "older than Orb's default 12 h grace period: Orb will reject it unless it is sent through a backfill"
    if moment > now + timedelta(minutes=5):
        return "more than 5 minutes in the future: Orb will reject it"
    return None


def _with_article(word: str) -> str:
    """ "an identify", "a page" (Segment's call types; by spelling, which fits them all)."""
    return f"{'an' if word[:1].lower() in 'aeiou' and word else 'a'} {word}"
