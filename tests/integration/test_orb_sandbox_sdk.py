"""The official Orb Python SDK (`orb-billing`) works against the Orb sandbox as it would against Orb."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orb
import pytest
from orb import Orb

from orb_bridge_dev.orb_sandbox import OrbSandbox, ScriptedResponse

API_KEY = "sdk-test-key"
WEBHOOK_SECRET = "sdk-webhook-secret"


def event(key: str, minutes_ago: float = 2, **overrides: object) -> Any:  # the SDK's Event (a TypedDict)
    body = {
        "event_name": "api_call",
        "idempotency_key": key,
        "timestamp": datetime.now(UTC) - timedelta(minutes=minutes_ago),
        "properties": {"tokens": 7, "region": "eu"},
        "external_customer_id": "user-sdk",
    }
    body.update(overrides)
    return body


@pytest.fixture
def sandbox() -> Iterator[OrbSandbox]:
    with OrbSandbox(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET) as running:
        yield running


@pytest.fixture
def client(sandbox: OrbSandbox) -> Iterator[Orb]:
    with Orb(api_key=API_KEY, base_url=sandbox.base_url, webhook_secret=WEBHOOK_SECRET, max_retries=2) as sdk:
        yield sdk


def test_sdk_ingests_and_finds_events_through_search(sandbox: OrbSandbox, client: Orb) -> None:
    response = client.events.ingest(
        events=[event("sdk-1"), event("sdk-2", customer_id="cus_1", external_customer_id=None)]
    )
    assert response.validation_failed == []

    found = client.events.search(event_ids=["sdk-1", "sdk-2"])
    by_id = {item.id: item for item in found.data}
    assert set(by_id) == {"sdk-1", "sdk-2"}
    assert by_id["sdk-1"].external_customer_id == "user-sdk"
    assert by_id["sdk-2"].customer_id == "cus_1"
    assert by_id["sdk-1"].properties == {"tokens": 7, "region": "eu"}
    assert by_id["sdk-1"].deprecated is False
    assert isinstance(by_id["sdk-1"].timestamp, datetime) and by_id["sdk-1"].timestamp.tzinfo is not None
    assert set(sandbox.ingested_events()) == {"sdk-1", "sdk-2"}


def test_sdk_raises_request_validation_error_for_a_stale_event(sandbox: OrbSandbox) -> None:
    with Orb(api_key=API_KEY, base_url=sandbox.base_url, max_retries=0) as sdk:
        with pytest.raises(orb.RequestValidationError) as raised:
            sdk.events.ingest(events=[event("fresh"), event("stale", minutes_ago=13 * 60)])
    assert raised.value.status_code == 400
    body: Any = raised.value.body
    assert body["validation_failed"][0]["idempotency_key"] == "stale"
    assert any("grace period" in str(message) for message in raised.value.validation_errors)
    assert sandbox.ingested_events() == {}


def test_sdk_reads_event_volume(client: Orb) -> None:
    client.events.ingest(events=[event("v1", minutes_ago=1), event("v2", minutes_ago=1)])
    volume = client.events.volume.list(timeframe_start=datetime.now(UTC) - timedelta(hours=2))
    assert sum(bucket.count for bucket in volume.data) == 2
    assert all(bucket.timeframe_end - bucket.timeframe_start == timedelta(hours=1) for bucket in volume.data)


def test_sdk_maps_sandbox_errors_to_orbs_exception_types(sandbox: OrbSandbox) -> None:
    with Orb(api_key="wrong", base_url=sandbox.base_url, max_retries=0) as wrong:
        with pytest.raises(orb.OrbAuthenticationError):
            wrong.events.ingest(events=[event("k")])
    with Orb(api_key=API_KEY, base_url=sandbox.base_url, max_retries=0) as sdk:
        with pytest.raises(orb.RequestValidationError) as raised:
            sdk.events.ingest(events=[event("k", properties={"a": 1}), event("k", properties={"a": 2})])
        assert raised.value.validation_errors
        sandbox.script_ingest_responses([ScriptedResponse(status=429)])
        with pytest.raises(orb.RateLimitError):
            sdk.events.ingest(events=[event("k")])
    assert sandbox.ingested_events() == {}


def test_sdk_retries_transient_failures_and_the_event_is_ingested_once(sandbox: OrbSandbox, client: Orb) -> None:
    fast_retry = {"retry-after-ms": "10"}  # the SDK honours it, so the test does not wait for its back-off
    sandbox.script_ingest_responses(
        [
            ScriptedResponse(status=500, headers=fast_retry),
            ScriptedResponse(status=429, headers=fast_retry),
        ]
    )
    response = client.events.ingest(events=[event("retried")])
    assert response.validation_failed == []
    assert sandbox.ingest_request_count == 3
    assert list(sandbox.ingested_events()) == ["retried"]


def test_sdk_backfill_lifecycle(sandbox: OrbSandbox, client: Orb) -> None:
    now = datetime.now(UTC)
    backfill = client.events.backfills.create(
        timeframe_start=now - timedelta(days=2), timeframe_end=now - timedelta(days=1), replace_existing_events=False
    )
    assert backfill.status == "pending" and backfill.replace_existing_events is False
    assert backfill.close_time is not None and backfill.close_time > now  # auto-close, a day from now
    client.events.ingest(events=[event("late", minutes_ago=36 * 60)], backfill_id=backfill.id)
    assert client.events.backfills.fetch(backfill.id).events_ingested == 1
    assert "late" not in sandbox.ingested_events()  # not reflected before close
    closed = client.events.backfills.close(backfill.id)
    assert closed.status == "reflected" and closed.events_ingested == 1
    assert "late" in sandbox.ingested_events()
    found = client.events.search(event_ids=["late"], timeframe_start=now - timedelta(days=3))
    assert [item.id for item in found.data] == ["late"]

    listed = client.events.backfills.list(limit=1)
    assert [item.id for item in listed.data] == [backfill.id]
    reverted = client.events.backfills.revert(backfill.id)
    assert reverted.status == "reverted" and reverted.reverted_at is not None
    assert "late" not in sandbox.ingested_events()


def test_sdk_backfill_errors(sandbox: OrbSandbox) -> None:
    now = datetime.now(UTC)
    with Orb(api_key=API_KEY, base_url=sandbox.base_url, max_retries=0) as sdk:
        sdk.events.backfills.create(timeframe_start=now - timedelta(days=3), timeframe_end=now - timedelta(days=1))
        with pytest.raises(orb.ResourceConflict):  # the spec's 409 for an overlapping backfill
            sdk.events.backfills.create(timeframe_start=now - timedelta(days=2), timeframe_end=now - timedelta(hours=1))
        with pytest.raises(orb.RequestValidationError):
            sdk.events.backfills.create(timeframe_start=now - timedelta(days=40), timeframe_end=now - timedelta(days=4))
        with pytest.raises(orb.ResourceNotFound):
            sdk.events.backfills.fetch("bf_nope")
        with pytest.raises(orb.URLNotFound):
            sdk.get("/no/such/url", cast_to=dict)


def test_sdk_search_and_volume_pages(sandbox: OrbSandbox, client: Orb) -> None:
    client.events.ingest(events=[event(f"p{i}", minutes_ago=60 * i + 1) for i in range(3)])
    with pytest.raises(orb.RequestValidationError):
        client.with_options(max_retries=0).events.search(event_ids=[])
    first = client.events.volume.list(timeframe_start=datetime.now(UTC) - timedelta(hours=4), limit=2)
    assert len(first.data) == 2


class _Capture(BaseHTTPRequestHandler):
    deliveries: list[tuple[bytes, dict[str, str]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.deliveries.append((body, dict(self.headers.items())))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_endpoint() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    server.deliveries = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("webhook_type", ["resource_event.test", "customer.created", "invoice.payment_succeeded"])
def test_sdk_verifies_and_parses_sandbox_webhooks(
    sandbox: OrbSandbox, client: Orb, webhook_endpoint: ThreadingHTTPServer, webhook_type: str
) -> None:
    url = f"http://127.0.0.1:{webhook_endpoint.server_address[1]}/orb/webhook"
    assert sandbox.send_webhook(url, webhook_type).status_code == 204
    sandbox.redeliver_webhook()
    (body, headers), (again, again_headers) = webhook_endpoint.deliveries  # type: ignore[attr-defined]

    unwrapped = client.webhooks.unwrap(body, headers)
    assert unwrapped.type == webhook_type
    assert client.webhooks.unwrap(again, again_headers).id == unwrapped.id

    with pytest.raises(ValueError, match="signature"):
        client.webhooks.unwrap(body.replace(b'"type"', b'"type" '), headers)
    with pytest.raises(ValueError, match="signature"):
        client.webhooks.unwrap(body, headers, secret="another-secret")
