"""End to end over real loopback HTTP: Segment -> /segment -> SQS -> ingest -> Orb sandbox, and
Orb sandbox webhooks -> /orb/webhook -> EventBridge bus."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from orb_bridge_dev import cli
from orb_bridge_dev.devstack.stack import DEV_ORB_API_KEY, DEV_WEBHOOK_SECRET, DevStack, wait_until
from orb_bridge_dev.orb_sandbox import ScriptedResponse
from tests.support.lambdas import EVENTS
from tests.support.queues import queue_bodies

pytestmark = pytest.mark.e2e


# Generous: these are "eventually" waits that return as soon as the condition holds; a loaded
# 2-core machine must only delay a real failure, never cause one.
EVENTUALLY = 120.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed_track(message_id: str | None = None) -> dict[str, Any]:
    """The seed's Track example (events/segment_track.json), sent now.

    Its 2022 timestamps lie outside Orb's 12 h grace period, so they are moved to the present,
    and each test uses its own messageId (Orb ingests a key once).
    """
    event = json.loads((EVENTS / "segment_track.json").read_text())
    stamp = now_iso()
    event.update(timestamp=stamp, originalTimestamp=stamp, sentAt=stamp, receivedAt=stamp)
    event["messageId"] = message_id or f"e2e-{uuid.uuid4()}"
    return event


def search(stack: DevStack, http: httpx.Client, keys: list[str]) -> list[dict[str, Any]]:
    response = http.post(
        f"{stack.sandbox.base_url}/events/search",
        json={"event_ids": keys},
        headers={"Authorization": f"Bearer {DEV_ORB_API_KEY}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def bus_events(stack: DevStack, webhook_id: str) -> list[dict[str, Any]]:
    return [e for e in queue_bodies(stack, stack.resources.bus_tap_queue.url) if e["detail"].get("id") == webhook_id]


def test_seed_track_call_is_found_through_orb_events_search(stack: DevStack, http: httpx.Client) -> None:
    event = seed_track()
    response = http.post(stack.segment_url, content=json.dumps(event), headers={"content-type": "application/json"})

    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "skipped": 0, "rejected": []}
    key = event["messageId"]
    assert wait_until(lambda: search(stack, http, [key]), timeout=EVENTUALLY)
    (found,) = search(stack, http, [key])
    assert found["event_name"] == "payment_confirmed"
    assert found["external_customer_id"] == "external_customer_id"
    assert found["properties"] == {
        "amount": 100,
        "currency": "USD",
        "confirmation_time": "2022-05-11T21:33:13.1652304793Z",
    }


def test_batch_with_an_invalid_event_lands_the_valid_ones_and_keeps_the_invalid_one(
    stack: DevStack, http: httpx.Client
) -> None:
    first, invalid, last = seed_track(), seed_track(), seed_track()
    del invalid["userId"]  # no external customer id: never guessed
    response = http.post(stack.segment_url, json=[first, invalid, last])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["messageId"]) for r in body["rejected"]] == [(1, invalid["messageId"])]
    assert "userId" in body["rejected"][0]["error"]

    keys = [first["messageId"], last["messageId"]]
    assert stack.sandbox.wait_for_ingested(keys, timeout=EVENTUALLY)
    assert invalid["messageId"] not in stack.sandbox.ingested_events()
    kept = [
        r
        for r in queue_bodies(stack, stack.resources.rejected_queue.url)
        if (r.get("segment_event") or {}).get("messageId") == invalid["messageId"]
    ]
    assert len(kept) == 1
    assert kept[0]["stage"] == "intake"
    assert "userId" in kept[0]["reason"] + " ".join(kept[0]["errors"])
    assert kept[0]["segment_event"] == invalid


def test_orb_500s_are_retried_until_the_event_is_ingested_exactly_once(stack: DevStack, http: httpx.Client) -> None:
    retried_before = stack.poller.stats.snapshot()["failed"]
    stack.sandbox.script_ingest_responses([ScriptedResponse(500), ScriptedResponse(500)])
    event = seed_track()

    response = http.post(stack.segment_url, json=event)
    assert response.status_code == 200, response.text

    key = event["messageId"]
    # Each 500 leaves the message for SQS to redeliver after the (1 s local) visibility timeout.
    assert stack.sandbox.wait_for_ingested([key], timeout=EVENTUALLY)
    assert stack.sandbox.pending_scripted_responses == 0
    assert stack.poller.stats.snapshot()["failed"] - retried_before == 2
    assert stack.sandbox.ingest_attempts_by_key[key] == 1
    assert len(search(stack, http, [key])) == 1
    assert wait_until(lambda: stack.queue_depth(stack.resources.ingest_queue.url) == 0, timeout=EVENTUALLY)
    assert not [
        r
        for r in queue_bodies(stack, stack.resources.rejected_queue.url)
        if (r.get("orb_event") or {}).get("idempotency_key") == key
    ]


def test_the_startup_test_webhook_was_verified_and_forwarded(stack: DevStack) -> None:
    assert stack.test_webhook_status == 200
    (sent,) = [w for w in stack.sandbox.sent_webhooks() if w.type == "resource_event.test"][:1]
    (forwarded,) = bus_events(stack, sent.id)
    assert forwarded["source"] == "orb"
    assert forwarded["detail-type"] == "resource_event.test"


def test_signed_webhook_reaches_the_bus_once_even_when_redelivered(stack: DevStack) -> None:
    response = stack.sandbox.send_webhook(stack.webhook_url, "invoice.issued")
    assert response.status_code == 200, response.text
    webhook_id = stack.sandbox.sent_webhooks()[-1].id

    again = stack.sandbox.redeliver_webhook(webhook_id)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "duplicate"

    (forwarded,) = bus_events(stack, webhook_id)
    assert forwarded["detail-type"] == "invoice.issued"
    assert forwarded["detail"]["type"] == "invoice.issued"


def test_webhook_with_a_wrong_signature_is_refused_and_not_forwarded(stack: DevStack) -> None:
    refused_before = stack.snapshot()["webhooks_refused"]
    response = stack.sandbox.send_webhook(stack.webhook_url, "invoice.issued", secret="not-the-secret")

    assert response.status_code == 401
    assert bus_events(stack, stack.sandbox.sent_webhooks()[-1].id) == []
    assert stack.snapshot()["webhooks_refused"] == refused_before + 1


def test_cli_webhook_send_signs_like_orb_and_redelivers_once(stack: DevStack, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(
        [
            "webhook",
            "send",
            "subscription.started",
            "--url",
            stack.webhook_url,
            "--secret",
            DEV_WEBHOOK_SECRET,
            "--times",
            "2",
        ]
    )

    assert code == 0
    output = capsys.readouterr().out
    webhook_id = output.split("(id ", 1)[1].split(")", 1)[0]
    assert "duplicate" in output
    (forwarded,) = bus_events(stack, webhook_id)
    assert forwarded["detail-type"] == "subscription.started"


def test_unknown_routes_and_methods_get_api_gateway_answers(stack: DevStack, http: httpx.Client) -> None:
    assert http.post(f"{stack.base_url}/nope", json={}).status_code == 404
    wrong_method = http.get(stack.segment_url)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"


def test_progress_counters_follow_what_happened(stack: DevStack, http: httpx.Client) -> None:
    before = stack.snapshot()
    event = seed_track()
    identify = {"type": "identify", "userId": "u1", "messageId": f"e2e-{uuid.uuid4()}"}
    assert http.post(stack.segment_url, json=[event, identify]).status_code == 200
    assert stack.sandbox.wait_for_ingested([event["messageId"]], timeout=EVENTUALLY)

    after = stack.snapshot()
    assert after["received"] - before["received"] == 2
    assert after["enqueued"] - before["enqueued"] == 1
    assert after["skipped"] - before["skipped"] == 1
    assert after["ingested"] - before["ingested"] == 1
    line = stack.status_line(after)
    assert f"ingested {after['ingested']}" in line and f"forwarded {after['forwarded']}" in line


# ---- web pages cannot use the dev stack (issue 22, item 5) ----------------------------------------
EVIL_ORIGIN = "https://evil.example"
# moto checks no signature: an Authorization header naming the service is enough.
FAKE_SQS_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0"
)


def test_a_cross_site_text_plain_form_post_is_refused_and_nothing_is_enqueued(
    stack: DevStack, http: httpx.Client
) -> None:
    attack, control = seed_track(), seed_track()
    # What <form enctype="text/plain"> makes of one field named '{..., "pad":"' with the value '"}'.
    form_body = json.dumps({**attack, "pad": ""})[:-2] + '="}'
    assert json.loads(form_body)["pad"] == "="  # valid JSON: the handler would accept it
    before = stack.snapshot()

    refused = http.post(
        stack.segment_url,
        content=form_body,
        headers={"content-type": "text/plain", "origin": EVIL_ORIGIN, "sec-fetch-site": "cross-site"},
    )

    assert refused.status_code == 403, refused.text
    assert "Origin" in refused.json()["message"]
    after = stack.snapshot()
    assert (after["received"], after["enqueued"]) == (before["received"], before["enqueued"])
    # The same request from a local tool (no Origin) goes through: the page's Origin alone decided.
    accepted = http.post(
        stack.segment_url, content=form_body.replace(attack["messageId"], control["messageId"]), headers={}
    )
    assert accepted.status_code == 200, accepted.text
    assert stack.sandbox.wait_for_ingested([control["messageId"]], timeout=EVENTUALLY)
    assert attack["messageId"] not in stack.sandbox.ingest_attempts_by_key


def test_every_listener_refuses_dns_rebinding_and_foreign_origins(stack: DevStack, http: httpx.Client) -> None:
    assert stack.gateway is not None
    moto_port = int(stack.resources.endpoint_url.rsplit(":", 1)[1])
    sandbox_requests = stack.sandbox.ingest_request_count
    segment_before = stack.snapshot()["received"]
    event = seed_track()
    ingest_form = {"Action": "SendMessage", "QueueUrl": stack.resources.ingest_queue.url, "MessageBody": "{}"}
    attacks = {
        "gateway": (stack.segment_url, stack.gateway.port, {}, json.dumps(event)),
        "sandbox": (
            f"{stack.sandbox.base_url}/ingest",
            stack.sandbox.port,
            {"authorization": f"Bearer {DEV_ORB_API_KEY}", "content-type": "application/json"},
            json.dumps({"events": []}),
        ),
        "moto": (
            stack.resources.ingest_queue.url,
            moto_port,
            {"authorization": FAKE_SQS_AUTHORIZATION, "content-type": "application/x-www-form-urlencoded"},
            str(httpx.QueryParams(ingest_form)),
        ),
    }
    for listener, (url, port, headers, body) in attacks.items():
        rebound = http.post(url, content=body, headers={**headers, "host": f"evil.example:{port}"})
        cross_site = http.post(url, content=body, headers={**headers, "origin": EVIL_ORIGIN})

        assert rebound.status_code == 403, (listener, rebound.text)
        assert "Host" in rebound.json()["message"], listener
        assert cross_site.status_code == 403, (listener, cross_site.text)
        assert "Origin" in cross_site.json()["message"], listener

    assert stack.sandbox.ingest_request_count == sandbox_requests
    assert stack.snapshot()["received"] == segment_before
    assert event["messageId"] not in stack.sandbox.ingest_attempts_by_key


def test_make_dev_archives_what_orb_accepted_as_deployed(stack: DevStack, http: httpx.Client) -> None:
    from orb_bridge.aws.archive import read_archive

    event = seed_track()
    response = http.post(stack.segment_url, content=json.dumps(event), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    key = event["messageId"]
    s3 = stack.local_aws.client("s3")
    bucket = stack.resources.audit_bucket_name

    def archived_events() -> list[dict[str, Any]]:
        found = []
        for item in s3.list_objects_v2(Bucket=bucket, Prefix="ingest/").get("Contents", []):
            head, events = read_archive(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            found += [{"header": head, **e} for e in events if e["idempotency_key"] == key]
        return found

    assert wait_until(archived_events, timeout=EVENTUALLY)
    (archived,) = archived_events()
    assert archived["event_name"] == "payment_confirmed" and archived["header"]["orb_status"] == 200
