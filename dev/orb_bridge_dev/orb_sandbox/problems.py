"""Orb's wire formats: date-times, JSON bodies and RFC 7807 problems with the spec's ``type`` URIs.

Every error the sandbox answers is one of the problem schemas of Orb's OpenAPI spec
(``components/schemas/*Error``, ``URLNotFound``, ``TooManyRequests``...), told apart by ``type``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

ERROR_DOCS = "https://docs.withorb.com/reference/error-responses"

# status, title, anchor of the ``type`` URI: one entry per problem schema in Orb's spec.
PROBLEMS: dict[str, tuple[int, str, str]] = {
    "request_validation": (400, "Request validation error", "400-request-validation-errors"),
    "constraint_violation": (400, "Constraint violation", "400-constraint-violation"),
    "authentication": (401, "Authentication error", "401-authentication-error"),
    "resource_not_found": (404, "Resource not found", "404-resource-not-found"),
    "url_not_found": (404, "URL not found", "404-url-not-found"),
    "idempotency_mismatch": (409, "Resource conflict", "409-resource-conflict"),
    "resource_conflict": (409, "Resource conflict", "409-resource-conflict"),
    "request_too_large": (413, "Request too large", "413-request-too-large"),
    "too_many_requests": (429, "Too many requests", "429-too-many-requests"),
    "internal": (500, "Internal server error", "500-internal-server-error"),
}

_ISO8601 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


def problem(kind: str, detail: str, **extra: Any) -> dict[str, Any]:
    status, title, anchor = PROBLEMS[kind]
    body: dict[str, Any] = {"type": f"{ERROR_DOCS}#{anchor}", "status": status, "title": title, "detail": detail}
    body.update(extra)
    return body


def default_body(status: int) -> dict[str, Any]:
    """Orb's usual body for a status (scripted responses without a body)."""
    if 200 <= status < 300:
        return {"validation_failed": []}
    kind = next((k for k, (s, _, _) in PROBLEMS.items() if s == status), None)
    if kind is None:  # 502/503/504 and other 5xx: Orb's spec has one server-error schema
        return {
            "type": f"{ERROR_DOCS}#500-internal-server-error",
            "status": status,
            "title": "Server error",
            "detail": f"Sandbox answered {status}.",
        }
    body = problem(kind, f"Sandbox answered {status} ({PROBLEMS[kind][1]}).")
    if kind == "request_validation":
        body["validation_errors"] = [body["detail"]]
    return body


class RequestError(Exception):
    """Ends request handling with an RFC 7807 answer of the given kind."""

    def __init__(self, kind: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    @property
    def status(self) -> int:
        return PROBLEMS[self.kind][0]

    def body(self) -> dict[str, Any]:
        extra = dict(self.extra)
        if self.kind == "request_validation":
            extra.setdefault("validation_errors", [self.detail])
        return problem(self.kind, self.detail, **extra)


def invalid(detail: str, *errors: str) -> RequestError:
    """A 400 ``RequestValidationError`` for a request that is unreadable as a whole."""
    return RequestError("request_validation", detail, validation_errors=list(errors) or [detail])


# ---- date-times ------------------------------------------------------------------------


def parse_iso8601(value: str) -> datetime:
    """An ISO 8601 date-time as Orb reads it: no offset means UTC; any fraction length.

    Returns an aware UTC datetime; raises ValueError otherwise."""
    match = _ISO8601.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micros, tzinfo=UTC)
    if offset and offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        parsed -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return parsed


def format_utc(moment: datetime) -> str:
    """Orb's wire format for times in responses: UTC with a ``Z``."""
    moment = moment.astimezone(UTC)
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def optional_time(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_iso8601(value)
    except ValueError:
        raise invalid(f"{name} must be an ISO 8601 date-time.", f"{name}: not an ISO 8601 date-time") from None


# ---- JSON --------------------------------------------------------------------------------


def _reject_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_reject_json_constant) if body else None
    except (UnicodeDecodeError, ValueError) as error:
        raise invalid(f"Body is not valid JSON: {error}.", "body: not valid JSON") from None
    if not isinstance(payload, dict):
        raise invalid("Body must be a JSON object.", "body: must be an object")
    return payload


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
