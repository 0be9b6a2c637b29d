"""Refuse requests a web page could have made: every dev listener answers loopback clients only.

Binding to 127.0.0.1 keeps other machines out, not web pages: any page the developer visits can
POST to ``http://127.0.0.1:3000`` (a ``text/plain`` form needs no CORS preflight), and a
DNS-rebinding page reaches the same socket under its own name (``Host: evil.example:3000``).
Browsers always send the page's ``Host``, and ``Origin`` on cross-site POSTs, so a listener that
answers only a loopback ``Host`` and no foreign ``Origin`` serves local tools (curl, boto3,
httpx send no ``Origin``) and no web page. The gateway, the Orb sandbox and moto's server all use
this module (the gateway on ``http.server``, the others as WSGI middleware).
See docs/facts.md#cross-site-requests-to-loopback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# The host part of a Host header or an Origin, with or without a port. Nothing else, so that
# duplicated or joined headers ("a, b") and userinfo tricks never match.
_LOOPBACK_HOST = r"(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?"
_HOST_PATTERN = re.compile(_LOOPBACK_HOST, re.IGNORECASE)
_ORIGIN_PATTERN = re.compile(r"https?://" + _LOOPBACK_HOST, re.IGNORECASE)

FORBIDDEN_STATUS = 403
_SHOWN_CHARACTERS = 100


def refusal(hosts: Sequence[str], origins: Sequence[str]) -> str | None:
    """Why a request with these ``Host`` and ``Origin`` header values is refused, or None.

    Exactly one loopback ``Host`` (127.0.0.1, localhost or [::1], any port) and no ``Origin``
    but loopback ones (browsers send ``Origin: null`` from sandboxed or privacy-minded pages:
    foreign too).
    """
    if len(hosts) != 1:
        return "the request must carry exactly one Host header (127.0.0.1, localhost or [::1])"
    if not _HOST_PATTERN.fullmatch(hosts[0].strip()):
        return (
            f"Host {_shown(hosts[0])} is not a loopback address: the dev stack answers only requests "
            "addressed to 127.0.0.1, localhost or [::1] (a guard against DNS rebinding)"
        )
    for origin in origins:
        if not _ORIGIN_PATTERN.fullmatch(origin.strip()):
            return (
                f"Origin {_shown(origin)} is not a loopback origin: the dev stack refuses requests "
                "made by web pages from other sites (a guard against cross-site requests)"
            )
    return None


def refusal_body(reason: str) -> bytes:
    """The JSON body of a 403 refusal (API Gateway's ``message`` shape, understood by every client)."""
    return json.dumps({"message": f"Forbidden: {reason}"}).encode("utf-8")


def _shown(value: str) -> str:
    """A caller's header value, quoted and shortened for the refusal message."""
    return json.dumps(value[:_SHOWN_CHARACTERS] + ("..." if len(value) > _SHOWN_CHARACTERS else ""))


# Refused bodies are read and dropped up to this size (more than any dev listener accepts).
_DISCARDED_BODY_LIMIT = 32 * 1024 * 1024


def _discard_body(environ: dict[str, Any]) -> None:
    """Read the refused request's body: closing a socket with unread bytes resets it, and the
    client could lose the 403 before reading it."""
    from werkzeug.wsgi import get_input_stream

    try:
        stream = get_input_stream(environ, max_content_length=_DISCARDED_BODY_LIMIT)
        while stream.read(64 * 1024):
            pass
    except Exception:  # too large, or the client went away: the 403 is the answer all the same
        pass


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LoopbackGuard:
    """WSGI middleware: answers 403 (see ``refusal``) before the wrapped app sees the request."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # WSGI servers join repeated headers into one value (werkzeug with ", "): the strict
        # patterns refuse such a joined value.
        host = environ.get("HTTP_HOST")
        origin = environ.get("HTTP_ORIGIN")
        reason = refusal([host] if host is not None else [], [origin] if origin is not None else [])
        if reason is None:
            return self.app(environ, start_response)
        _discard_body(environ)
        body = refusal_body(reason)
        start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
