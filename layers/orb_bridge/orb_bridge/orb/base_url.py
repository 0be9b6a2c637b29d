"""The rule for Orb's API base URL, shared by the functions' settings and the operator CLIs.

The Orb API key travels in the Authorization header of every request to this URL, so it must
go over https, except to a local stand-in on this machine (http to 127.0.0.1, localhost or
[::1]). The rule is decided on the parsed scheme and host, the ones a client connects to, never
on the text: a base URL is a scheme, a host, an optional port and a path. User info, a query or
a fragment have no place in one and are refused (``http://evil.example#@localhost`` reads as
``localhost`` to a naive split but connects to evil.example), as is anything URL parsers
disagree on: whitespace or control characters, backslashes (WHATWG parsers read them as ``/``),
non-ASCII or percent-escaped hosts (decoded by some clients, not others).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

DEFAULT_ORB_API_BASE_URL = "https://api.withorb.com/v1"

# Orb's API (docs.withorb.com): the only host the CLIs send a key to unless told otherwise.
ORB_API_HOST = "api.withorb.com"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
RULE = "must be an https:// URL (http:// only to 127.0.0.1, localhost or [::1]) with no user info, query or fragment"
# A DNS name as it reaches the wire: letters, digits, hyphens and dots (urlsplit lowercases it).
_HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")


class OrbUrlError(ValueError):
    """The URL breaks the rule; the message says how (after ``RULE``)."""


def checked_base_url(value: str) -> str:
    """``value`` without trailing slashes if it passes the rule, else ``OrbUrlError``."""
    url = value.rstrip("/")
    base_url_host(url)
    return url


def base_url_host(url: str) -> str:
    """The host ``url`` connects to (lowercase, IPv6 without brackets) if it passes the rule."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise OrbUrlError(f"{RULE}: it holds whitespace, control or non-ASCII characters")
    for character, what in (("\\", "a backslash"), ("@", "user info"), ("?", "a query"), ("#", "a fragment")):
        if character in url:
            raise OrbUrlError(f"{RULE}: it holds {what} ({character!r})")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. brackets around something that is not an IPv6 address
        raise OrbUrlError(f"{RULE}: the host is not a host name or IP address") from None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in ("https", "http") or not parts.netloc:
        raise OrbUrlError(f"{RULE}: expected https://HOST[:PORT][/PATH]")
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise OrbUrlError(f"{RULE}: the port is not a number from 0 to 65535") from None
    if not _valid_host(host, bracketed=parts.netloc.startswith("[")):
        raise OrbUrlError(f"{RULE}: {host!r} is not a host name or IP address")
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        raise OrbUrlError(f"{RULE}: http:// goes to {host!r}, which is not this machine")
    return host


def _valid_host(host: str, *, bracketed: bool) -> bool:
    if bracketed:  # an IPv6 literal; no zone id (``%``), which clients read differently
        if "%" in host:
            return False
        try:
            return ipaddress.ip_address(host).version == 6
        except ValueError:
            return False
    return bool(_HOST_NAME.fullmatch(host))
