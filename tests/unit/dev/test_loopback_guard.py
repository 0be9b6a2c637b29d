"""The loopback guard every dev listener uses: which Host and Origin values pass, and the 403."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from orb_bridge_dev.loopback_guard import LoopbackGuard, refusal


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:3000", "localhost", "LOCALHOST:3001", "[::1]", "[::1]:5000", " localhost:80 "],
)
def test_loopback_hosts_with_or_without_a_port_pass(host: str) -> None:
    assert refusal([host], []) is None


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:3000",  # DNS rebinding: the page's own name reaches our socket
        "evil.example",
        "127.0.0.1.evil.example",
        "localhost.evil.example:3000",
        "127.0.0.2:3000",
        "0.0.0.0:3000",
        "::1",  # an IPv6 literal must be bracketed in a Host header
        "localhost:3000, evil.example",  # two Host headers joined by a WSGI server
        "user@localhost",
        "localhost:",
        "localhost:123456",
        "",
    ],
)
def test_other_hosts_are_refused(host: str) -> None:
    reason = refusal([host], [])
    assert reason is not None and "Host" in reason


def test_a_missing_or_repeated_host_is_refused() -> None:
    assert refusal([], []) is not None
    assert refusal(["127.0.0.1:3000", "evil.example:3000"], []) is not None


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:3000", "http://localhost:8080", "https://localhost", "http://[::1]:3000"]
)
def test_loopback_origins_pass(origin: str) -> None:
    assert refusal(["127.0.0.1:3000"], [origin]) is None


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",  # sandboxed iframes, privacy-minded pages
        "http://127.0.0.1.evil.example",
        "http://localhost:3000@evil.example",
        "http://127.0.0.1:3000/",
        "file://",
        "",
    ],
)
def test_foreign_origins_are_refused(origin: str) -> None:
    reason = refusal(["127.0.0.1:3000"], [origin])
    assert reason is not None and "Origin" in reason


def test_any_foreign_origin_among_several_is_refused() -> None:
    assert refusal(["127.0.0.1:3000"], ["http://localhost:3000", "https://evil.example"]) is not None


def call(environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(env)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer.update(status=status, headers=dict(headers))

    body = b"".join(LoopbackGuard(app)(environ, start_response))
    return answer["status"], answer["headers"], body, seen


def test_the_wsgi_guard_answers_403_with_a_clear_json_body_and_reads_the_refused_body() -> None:
    payload = b'{"type":"track","event":"x","pad":"="}'
    stream = io.BytesIO(payload)
    status, headers, body, seen = call(
        {
            "REQUEST_METHOD": "POST",
            "HTTP_HOST": "evil.example:3001",
            "CONTENT_LENGTH": str(len(payload)),
            "CONTENT_TYPE": "text/plain",
            "wsgi.input": stream,
        }
    )

    assert status == "403 Forbidden" and seen == []
    assert headers["Content-Type"] == "application/json" and headers["Content-Length"] == str(len(body))
    message = json.loads(body)["message"]
    assert message.startswith("Forbidden: Host") and "evil.example:3001" in message and "DNS rebinding" in message
    assert stream.tell() == len(payload)  # drained: closing the socket then cannot reset it


def test_the_wsgi_guard_passes_loopback_requests_to_the_app() -> None:
    status, _, body, seen = call({"REQUEST_METHOD": "GET", "HTTP_HOST": "127.0.0.1:5000", "wsgi.input": io.BytesIO()})
    assert (status, body, len(seen)) == ("200 OK", b"ok", 1)
