"""The dev gateway hands requests to handlers as API Gateway HTTP API (payload v2) events."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orb_bridge_dev.devstack.gateway import Gateway, Route, http_response


class Capture:
    def __init__(self, result: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.result = result if result is not None else {"statusCode": 202, "headers": {"x-a": "1"}, "body": "ok"}

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def capture() -> Capture:
    return Capture()


@pytest.fixture
def gateway(capture: Capture) -> Iterator[Gateway]:
    responses: list[tuple[int, Any]] = []
    running = Gateway(
        [
            Route(
                "POST",
                "/segment",
                capture,
                "TrackIntakeFunction",
                10,
                on_response=lambda s, b: responses.append((s, b)),
            )
        ],
        port=0,
    )
    running.responses = responses  # type: ignore[attr-defined]
    running.start()
    yield running
    running.stop()


def test_post_becomes_a_payload_v2_event_and_the_handler_answer_the_response(
    gateway: Gateway, capture: Capture
) -> None:
    raw = b'{"type":"track",  "event":"x"}'
    response = httpx.post(
        f"{gateway.base_url}/segment?a=1&a=2&b=",
        content=raw,
        headers={"Content-Type": "application/json", "X-Signature": "abc", "Authorization": "Bearer t"},
    )

    assert response.status_code == 202
    assert response.text == "ok"
    assert response.headers["x-a"] == "1"
    (event,) = capture.events
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /segment"
    assert event["rawPath"] == "/segment"
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["body"] == raw.decode()  # exactly as sent, never re-serialised
    assert event["isBase64Encoded"] is False
    assert event["headers"]["x-signature"] == "abc"
    assert event["headers"]["authorization"] == "Bearer t"
    assert all(name == name.lower() for name in event["headers"])
    context = event["requestContext"]
    assert context["http"]["method"] == "POST" and context["http"]["path"] == "/segment"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["routeKey"] == "POST /segment" and context["stage"] == "$default"
    assert 0 < capture.contexts[0].get_remaining_time_in_millis() <= 10_000


def test_a_body_that_is_not_utf8_arrives_base64_encoded(gateway: Gateway, capture: Capture) -> None:
    raw = b"\xff\xfe binary \x00"
    httpx.post(f"{gateway.base_url}/segment", content=raw)

    (event,) = capture.events
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_unknown_path_is_404_and_wrong_method_405(gateway: Gateway, capture: Capture) -> None:
    assert httpx.post(f"{gateway.base_url}/other", content=b"{}").status_code == 404
    response = httpx.put(f"{gateway.base_url}/segment", content=b"{}")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert capture.events == []


def test_a_handler_exception_is_a_500_like_api_gateway(gateway: Gateway, capture: Capture) -> None:
    capture.result = RuntimeError("bug")
    response = httpx.post(f"{gateway.base_url}/segment", content=b"{}")

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_the_response_callback_sees_status_and_json_body(gateway: Gateway, capture: Capture) -> None:
    capture.result = {"statusCode": 200, "body": json.dumps({"accepted": 2})}
    httpx.post(f"{gateway.base_url}/segment", content=b"{}")

    assert gateway.responses == [(200, {"accepted": 2})]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"statusCode": 201, "body": "hi"}, (201, {}, b"hi")),
        (
            {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True},
            (200, {}, b"\x00\x01"),
        ),
        ({"statusCode": 204}, (204, {}, b"")),
        # Without a statusCode, HTTP APIs answer 200 with the JSON-serialised return value.
        ({"accepted": 1}, (200, {"content-type": "application/json"}, b'{"accepted": 1}')),
    ],
)
def test_http_response_follows_payload_v2_rules(result: Any, expected: Any) -> None:
    assert http_response(result) == expected


# A page anywhere on the web can make the developer's browser send this: a form with
# enctype="text/plain" whose one field name holds the JSON (no CORS preflight needed).
FORM_POST_BODY = b'{"type":"track","event":"payment_confirmed","userId":"cust_1","messageId":"m1","pad":"="}'


def test_a_cross_site_text_plain_form_post_is_refused_before_any_handler_runs(
    gateway: Gateway, capture: Capture
) -> None:
    browser_headers = {
        "Content-Type": "text/plain",
        "Origin": "https://evil.example",
        "Referer": "https://evil.example/page",
        "Sec-Fetch-Site": "cross-site",
    }
    response = httpx.post(f"{gateway.base_url}/segment", content=FORM_POST_BODY, headers=browser_headers)

    assert response.status_code == 403
    assert "Origin" in response.json()["message"] and "evil.example" in response.json()["message"]
    assert capture.events == [] and gateway.responses == []  # type: ignore[attr-defined]
    # The same bytes from a local tool (no Origin) reach the handler: the Origin alone decided.
    assert httpx.post(f"{gateway.base_url}/segment", content=FORM_POST_BODY).status_code == 202
    assert len(capture.events) == 1


@pytest.mark.parametrize("origin", ["null", "http://127.0.0.1.evil.example:3000"])
def test_other_foreign_origins_are_refused(gateway: Gateway, capture: Capture, origin: str) -> None:
    response = httpx.post(f"{gateway.base_url}/segment", content=b"{}", headers={"Origin": origin})
    assert response.status_code == 403
    assert capture.events == []


def test_a_dns_rebinding_request_is_refused(gateway: Gateway, capture: Capture) -> None:
    # The page's own name, resolved to 127.0.0.1 after the page loaded: same socket, foreign Host.
    response = httpx.post(
        f"{gateway.base_url}/segment", content=FORM_POST_BODY, headers={"Host": f"evil.example:{gateway.port}"}
    )

    assert response.status_code == 403
    assert "Host" in response.json()["message"]
    assert capture.events == []


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_loopback_names_and_a_loopback_origin_pass(gateway: Gateway, capture: Capture, host: str) -> None:
    response = httpx.post(
        f"{gateway.base_url}/segment",
        content=b"{}",
        headers={"Host": f"{host}:{gateway.port}", "Origin": f"http://localhost:{gateway.port}"},
    )
    assert response.status_code == 202
    assert len(capture.events) == 1


def test_a_refused_request_leaves_the_connection_usable(gateway: Gateway, capture: Capture) -> None:
    with httpx.Client() as client:
        refused = client.post(f"{gateway.base_url}/segment", content=b"x" * 100_000, headers={"Origin": "null"})
        accepted = client.post(f"{gateway.base_url}/segment", content=b"{}")
    assert (refused.status_code, accepted.status_code) == (403, 202)
    assert len(capture.events) == 1
