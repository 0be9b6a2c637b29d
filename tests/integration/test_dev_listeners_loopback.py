"""The Orb sandbox and moto's server (as the dev stack runs them) answer loopback clients only:
a DNS-rebinding request (a web page's own name resolved to 127.0.0.1) or any request a web page
makes from another site (it carries that site's ``Origin``) gets a 403, and changes nothing.
The gateway's own replays are in tests/unit/dev/devstack/test_gateway.py, the whole stack's in tests/e2e."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest

from orb_bridge_dev.devstack.moto_server import MotoServerProcess
from orb_bridge_dev.orb_sandbox import OrbSandbox

API_KEY = "loopback-test-key"
EVIL_ORIGIN = "https://evil.example"


@pytest.fixture
def sandbox() -> Iterator[OrbSandbox]:
    with OrbSandbox(api_key=API_KEY) as running:
        yield running


def ingest_request(sandbox: OrbSandbox, key: str, headers: dict[str, str]) -> httpx.Response:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event = {
        "event_name": "api_call",
        "idempotency_key": key,
        "timestamp": stamp,
        "external_customer_id": "c1",
        "properties": {},
    }
    return httpx.post(
        f"{sandbox.base_url}/ingest",
        json={"events": [event]},
        headers={"Authorization": f"Bearer {API_KEY}", **headers},
    )


def test_the_sandbox_refuses_a_dns_rebinding_request_even_with_the_right_key(sandbox: OrbSandbox) -> None:
    response = ingest_request(sandbox, "rebound", {"Host": f"evil.example:{sandbox.port}"})

    assert response.status_code == 403
    assert "Host" in response.json()["message"] and "DNS rebinding" in response.json()["message"]
    assert sandbox.ingest_request_count == 0 and sandbox.ingested_events() == {}


@pytest.mark.parametrize("origin", [EVIL_ORIGIN, "null"])
def test_the_sandbox_refuses_a_foreign_origin(sandbox: OrbSandbox, origin: str) -> None:
    response = ingest_request(sandbox, "cross-site", {"Origin": origin, "Content-Type": "text/plain"})

    assert response.status_code == 403
    assert "Origin" in response.json()["message"]
    assert sandbox.ingest_request_count == 0 and sandbox.ingested_events() == {}


def test_the_sandbox_still_answers_loopback_clients(sandbox: OrbSandbox) -> None:
    by_name = ingest_request(sandbox, "by-name", {"Host": f"localhost:{sandbox.port}"})
    from_a_local_page = ingest_request(sandbox, "local-page", {"Origin": f"http://127.0.0.1:{sandbox.port}"})

    assert (by_name.status_code, from_a_local_page.status_code) == (200, 200)
    assert set(sandbox.ingested_events()) == {"by-name", "local-page"}


# ---- moto's server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServerProcess]:
    server = MotoServerProcess()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sqs(moto: MotoServerProcess) -> Any:
    # boto3 sends Host: 127.0.0.1:PORT and no Origin: the guard lets it through.
    return boto3.session.Session().client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{moto.port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# moto checks no signature: a page only needs an Authorization header naming the service, which
# moto's CORS (every origin, every header) lets a cross-site fetch send after a preflight.
FAKE_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0"
)


def messages_in(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def send_as_a_page(queue_url: str, headers: dict[str, str]) -> httpx.Response:
    form = {"Action": "SendMessage", "QueueUrl": queue_url, "MessageBody": '{"written": "by a web page"}'}
    return httpx.post(queue_url, data=form, headers={"Authorization": FAKE_AUTHORIZATION, **headers})


def test_a_cross_site_page_cannot_write_to_a_moto_queue(sqs: Any) -> None:
    queue_url = sqs.create_queue(QueueName="cross-site-target")["QueueUrl"]

    preflight = httpx.request(
        "OPTIONS",
        queue_url,
        headers={
            "Origin": EVIL_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    sent = send_as_a_page(queue_url, {"Origin": EVIL_ORIGIN})

    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    assert sent.status_code == 403 and "Origin" in sent.json()["message"]
    assert messages_in(sqs, queue_url) == 0
    # The same request without the page's Origin lands: the guard alone stopped it.
    assert send_as_a_page(queue_url, {}).status_code == 200
    assert messages_in(sqs, queue_url) == 1


def test_a_dns_rebinding_page_cannot_reach_moto(sqs: Any, moto: MotoServerProcess) -> None:
    queue_url = sqs.create_queue(QueueName="rebinding-target")["QueueUrl"]

    sent = send_as_a_page(queue_url, {"Host": f"evil.example:{moto.port}"})
    listed = httpx.get(f"http://127.0.0.1:{moto.port}/", headers={"Host": f"evil.example:{moto.port}"})

    assert sent.status_code == 403 and "Host" in sent.json()["message"]
    assert listed.status_code == 403
    assert messages_in(sqs, queue_url) == 0
