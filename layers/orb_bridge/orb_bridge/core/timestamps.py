"""The one timestamp parser: ISO 8601 with a UTC offset -> Orb's UTC form, on ``datetime.fromisoformat``.

``fromisoformat`` reads far more than ISO 8601's extended date-time (week dates, basic format,
any separator character, offsets with seconds, a missing offset read as local time), so a guard
admits only what the mapping accepts: ``YYYY-MM-DD``, ``T``/``t``/space, ``HH:MM:SS``, an optional
fraction after ``.`` or ``,`` (more than six digits are truncated: Segment sends up to ten), and a
required ``Z``/``z`` or ``+HH:MM``/``+HHMM`` offset. Digits are ASCII only.

Orb's form (``CANONICAL``, what ``OrbUsageEvent`` holds): ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``. The
Segment libraries send ``...T12:34:56.789Z``; such a value takes a fast path (the calendar still
checked by ``fromisoformat``), about four times quicker than the general one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from orb_bridge.core.errors import quote

# Orb's form: UTC with a Z, up to microseconds (the pattern of Orb's ingest API, ASCII digits).
CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.([0-9]{1,6}))?Z")
# What the mapping accepts; fromisoformat then checks the calendar and applies the offset.
_ISO_8601 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:[.,]([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?"
)


class TimestampError(ValueError):
    """Why a value is not a usable timestamp; the message quotes the value (bounded)."""


def utc_text(value: str) -> str:
    """ISO 8601 with an offset or Z -> UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``; raises ``TimestampError``.

    Zero fractions are dropped, others written with six digits; a timestamp without an offset
    is refused rather than read in some assumed zone.
    """
    canonical = CANONICAL.fullmatch(value)
    if canonical:
        try:
            datetime.fromisoformat(value[:19])  # the calendar: 2022-02-30, 24:00, :60 are refused
        except ValueError:
            pass  # the general path says why
        else:
            fraction = canonical.group(1)
            if fraction is None or not fraction.strip("0"):
                return value[:19] + "Z"
            return f"{value[:19]}.{fraction.ljust(6, '0')}Z"
    return _utc_text(value)


def _utc_text(value: str) -> str:
    match = _ISO_8601.fullmatch(value.strip())
    if not match:
        raise TimestampError(f"{quote(value)} is not an ISO 8601 date-time")
    date, time, fraction, zulu, sign, offset_hours, offset_minutes = match.groups()
    if not zulu and not sign:
        raise TimestampError(f"{quote(value)} has no UTC offset (expected Z or +HH:MM)")
    if sign and (int(offset_hours) > 23 or int(offset_minutes) > 59):
        raise TimestampError(f"{quote(value)} has an invalid UTC offset")
    offset = "+00:00" if zulu else f"{sign}{offset_hours}:{offset_minutes}"
    iso = f"{date}T{time}{'.' + fraction[:6].ljust(6, '0') if fraction else ''}{offset}"
    try:
        moment = datetime.fromisoformat(iso).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # e.g. "day is out of range for month"; year 1 minus an offset
        raise TimestampError(f"{quote(value)} is not a valid date-time ({exc})") from None
    text = moment.replace(tzinfo=None).isoformat(timespec="seconds")  # the year always has four digits
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"
