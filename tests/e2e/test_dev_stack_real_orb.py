"""``make dev`` pointed at a real Orb (here another loopback sandbox, on its own port, standing in
for one): the stack refuses to take unauthenticated Track calls that would bill the account.

The stack runs in a child process: the layer's container caches and ``os.environ`` are
process-wide, and the package's own dev stack (tests/e2e/conftest.py) may be running here.
Refusing to start without a Segment credential is tested in tests/unit/dev/devstack/test_devstack_env.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from orb_bridge_dev.orb_sandbox import OrbSandbox

pytestmark = pytest.mark.e2e

# Generous: waits end as soon as the condition holds; a loaded machine only delays a failure.
EVENTUALLY = 120.0
ACCOUNT_KEY = "stand-in-real-orb-key"
SEGMENT_TOKEN = "segment-destination-token"

_CHILD = """
import json, sys
from orb_bridge_dev.devstack.stack import DevStack, DevStackConfig
config = DevStackConfig(port=0, local_visibility_timeout=1, send_test_webhook=False, user_env=json.loads(sys.argv[1]))
with DevStack(config) as stack:
    print("segment", stack.segment_url, flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def real_orb() -> Iterator[OrbSandbox]:
    with OrbSandbox(api_key=ACCOUNT_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def segment_url(real_orb: OrbSandbox) -> Iterator[str]:
    user_env = {"ORB_API_BASE_URL": real_orb.base_url, "ORB_API_KEY": ACCOUNT_KEY, "SEGMENT_AUTH_TOKEN": SEGMENT_TOKEN}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(user_env)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    output = child.stdout
    lines: list[str] = []

    def read_until_started() -> None:
        for line in output:  # ends at EOF when the child fails to start
            lines.append(line)
            if line.startswith("segment "):
                return

    reader = threading.Thread(target=read_until_started, daemon=True)
    reader.start()
    reader.join(EVENTUALLY)
    try:
        assert lines and lines[-1].startswith("segment "), f"the dev stack did not start: {lines}"
        yield lines[-1].split()[1]
    finally:
        child.stdin.close()  # the child stops its stack and exits
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()


def track_call() -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "type": "track",
        "event": "payment_confirmed",
        "userId": "cust_1",
        "messageId": f"real-orb-{uuid.uuid4()}",
        "timestamp": stamp,
        "properties": {"amount": 100, "currency": "USD"},
    }


def test_only_the_segment_credential_bills_the_real_orb(real_orb: OrbSandbox, segment_url: str) -> None:
    unauthenticated, cross_site, authenticated = track_call(), track_call(), track_call()
    with httpx.Client(timeout=30) as http:
        refused = http.post(segment_url, json=unauthenticated)
        # Even a page that somehow held the token is refused for its Origin.
        from_a_page = http.post(
            segment_url,
            json=cross_site,
            headers={"authorization": f"Bearer {SEGMENT_TOKEN}", "origin": "https://evil.example"},
        )
        accepted = http.post(segment_url, json=authenticated, headers={"authorization": f"Bearer {SEGMENT_TOKEN}"})

    assert refused.status_code == 401, refused.text
    assert from_a_page.status_code == 403, from_a_page.text
    assert accepted.status_code == 200, accepted.text
    # The stack bills the stand-in account: the credential's call arrives, the others never do.
    assert real_orb.wait_for_ingested([authenticated["messageId"]], timeout=EVENTUALLY)
    attempted = real_orb.ingest_attempts_by_key
    assert unauthenticated["messageId"] not in attempted and cross_site["messageId"] not in attempted
