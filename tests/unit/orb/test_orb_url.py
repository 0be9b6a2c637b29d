"""The Orb API base URL rule (issue 22, item 7): decided on the host a client connects to.

Each refused form is one that a text split (the previous rule) read as local or harmless while
httpx connects elsewhere, or that parsers disagree on; each accepted one is checked against the
host httpx itself would connect to.
"""

from __future__ import annotations

import httpx
import pytest

from orb_bridge.core.errors import ConfigurationError
from orb_bridge.ingest.settings import IngestSettings
from orb_bridge.orb.base_url import OrbUrlError, base_url_host, checked_base_url

REFUSED = [
    # the reported bypasses: httpx sends to evil.example in clear
    ("http://evil.example#@localhost", "fragment"),
    ("http://evil.example?@127.0.0.1", "query"),
    ("http://evil.example/#@localhost", "fragment"),
    ("http://evil.example/v1?x=@[::1]", "query"),
    # user info, whichever side of it is local
    ("http://localhost@evil.example/v1", "user info"),
    ("http://evil.example@localhost/v1", "user info"),
    ("https://user:pass@api.withorb.com/v1", "user info"),
    ("http://127.0.0.1:80@evil.example", "user info"),
    # a query or fragment on an https URL too: no place in a base URL
    ("https://api.withorb.com/v1?", "query"),
    ("https://api.withorb.com/v1#x", "fragment"),
    # backslashes: WHATWG parsers read them as "/", urllib does not
    ("http://evil.example\\@localhost", "backslash"),
    ("http://localhost\\.evil.example/v1", "backslash"),
    ("https://api.withorb.com\\v1", "backslash"),
    # look-alike hosts
    ("http://127.0.0.1.evil.example", "not this machine"),
    ("http://localhost.evil.example/v1", "not this machine"),
    ("http://localhost./v1", "not a host name"),
    ("http://127.1/v1", "not this machine"),
    ("http://2130706433/v1", "not this machine"),
    ("http://0.0.0.0:3001/v1", "not this machine"),
    ("http://[::ffff:127.0.0.1]/v1", "not this machine"),
    ("http://%6cocalhost/v1", "not a host name"),
    ("https://api.withorb.com%2eevil.example/v1", "not a host name"),
    ("http://[::1%25eth0]/v1", "not a host name"),
    ("http://[evil.example]/v1", "not a host name"),
    ("http://[127.0.0.1]/v1", "not a host name"),
    ("https://аpi.withorb.com/v1", "non-ASCII"),  # Cyrillic a
    ("https://api.withorb.com。evil.example/v1", "non-ASCII"),  # ideographic full stop
    # whitespace and control characters anywhere
    ("http://evil.example /@localhost", "whitespace"),
    ("http://evil.example\t.localhost", "whitespace"),
    ("https://api.withorb.com\n/v1", "whitespace"),
    ("https://api.withorb.com/v1\x00", "whitespace"),
    (" https://api.withorb.com/v1", "whitespace"),
    # schemes, missing hosts, bad ports
    ("http://api.withorb.com/v1", "not this machine"),
    ("HTTP://API.WITHORB.COM/v1", "not this machine"),
    ("ftp://api.withorb.com/v1", "expected https://"),
    ("api.withorb.com/v1", "expected https://"),
    ("//api.withorb.com/v1", "expected https://"),
    ("https:api.withorb.com/v1", "expected https://"),
    ("https:///v1", "expected https://"),
    ("https://:443/v1", "not a host name"),
    ("http://localhost:3001:80/v1", "port"),
    ("http://localhost:99999/v1", "port"),
    ("http://localhost:-1/v1", "port"),
    ("", "expected https://"),
]

ACCEPTED = [
    ("https://api.withorb.com/v1", "api.withorb.com"),
    ("https://api.withorb.com/v1/", "api.withorb.com"),
    ("HTTPS://API.withorb.COM/v1", "api.withorb.com"),
    ("https://api.withorb.com:443/v1", "api.withorb.com"),
    ("https://orb.internal.example:8443", "orb.internal.example"),
    ("https://[2001:db8::1]/v1", "2001:db8::1"),
    ("http://127.0.0.1:3001/v1", "127.0.0.1"),
    ("http://localhost:3001/v1", "localhost"),
    ("HTTP://LOCALHOST:3001/v1", "localhost"),
    ("http://[::1]:3001/v1", "::1"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_refused_forms_name_what_is_wrong(url: str, why: str) -> None:
    with pytest.raises(OrbUrlError, match="must be an https:// URL") as raised:
        checked_base_url(url)
    assert why in str(raised.value)


@pytest.mark.parametrize(("url", "host"), ACCEPTED)
def test_accepted_forms_decide_on_the_host_httpx_connects_to(url: str, host: str) -> None:
    checked = checked_base_url(url)
    assert checked == url.rstrip("/")
    assert base_url_host(checked) == host
    parsed = httpx.URL(checked + "/ingest")
    assert parsed.host == host and parsed.scheme in ("https", "http")
    assert parsed.scheme == "https" or host in ("127.0.0.1", "localhost", "::1")


def test_the_functions_settings_apply_the_same_rule() -> None:
    env = {"ORB_API_KEY": "k", "REJECTED_QUEUE_URL": "q"}
    for url in ("http://evil.example#@localhost", "http://evil.example?@127.0.0.1", "http://127.0.0.1.evil.example"):
        with pytest.raises(ConfigurationError, match="ORB_API_BASE_URL must be an https:// URL"):
            IngestSettings.from_env({**env, "ORB_API_BASE_URL": url})
    with pytest.raises(ConfigurationError, match="ORB_API_BASE_URL must be an https:// URL"):
        IngestSettings(orb_api_key="k", rejected_queue_url="q", orb_api_base_url="http://evil.example#@localhost")
    settings = IngestSettings.from_env({**env, "ORB_API_BASE_URL": "http://[::1]:3001/v1/"})
    assert settings.orb_api_base_url == "http://[::1]:3001/v1"
