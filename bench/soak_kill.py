"""The soak's killed invocation: one ingest invocation in a child process, SIGKILLed mid-flight."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


KILLED_CHILD = textwrap.dedent(
    """
    import json, os, sys
    import boto3
    sys.path.insert(0, os.environ["SOAK_DEV_PATH"])
    from orb_bridge_dev.devstack.stack import load_function
    from orb_bridge_dev.devstack.poller import LambdaContext, sqs_record
    # Small sequential chunks: the sandbox holds the second request once the first is in Orb.
    os.environ["ORB_MAX_EVENTS_PER_REQUEST"] = "10"
    os.environ["ORB_MAX_CONCURRENT_REQUESTS"] = "1"
    sqs = boto3.client("sqs")
    url, arn = os.environ["SOAK_QUEUE_URL"], os.environ["SOAK_QUEUE_ARN"]
    messages = []
    for _ in range(40):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                  VisibilityTimeout=int(os.environ["SOAK_VISIBILITY"])).get("Messages", [])
        messages += got
        if len(messages) >= 200:
            break
    handler = load_function("orb_ingest", module_prefix="soak_killed")
    keys = [json.loads(m["Body"]).get("idempotency_key") for m in messages]
    print(json.dumps({"received": len(messages), "keys": keys}), flush=True)
    sys.stdin.readline()  # the parent has set up the hold on these keys
    handler.lambda_handler({"Records": [sqs_record(m, arn) for m in messages]}, LambdaContext("killed", 60))
    print(json.dumps({"finished": True}), flush=True)
    """
)


# Generous: only a broken child or sandbox takes this long, and then the soak fails anyway.
HOLD_DEADLINE_SECONDS = 300


def kill_one_invocation(stack: Any, visibility_seconds: int) -> dict[str, Any]:
    """Run one ingest invocation in a child process and SIGKILL it mid-flight: the sandbox holds
    its next request once part of its batch is in Orb, so the kill lands there every time."""
    sandbox = stack.sandbox
    env = dict(
        os.environ,
        SOAK_DEV_PATH=str(ROOT / "dev"),
        SOAK_QUEUE_URL=stack.resources.ingest_queue.url,
        SOAK_QUEUE_ARN=stack.resources.ingest_queue.arn,
        SOAK_VISIBILITY=str(visibility_seconds),
        PYTHONPATH=os.pathsep.join([str(ROOT / "dev"), os.environ.get("PYTHONPATH", "")]),
    )
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    info: dict[str, Any] = {"messages": 0, "in_orb_at_kill": 0, "killed": False}
    hold = None
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline()
        started: dict[str, Any] = json.loads(line) if line.startswith("{") else {"received": 0, "keys": []}
        keys = {key for key in started["keys"] if key}
        info["messages"] = started["received"]
        hold = sandbox.hold_ingest(keys)
        child.stdin.write("go\n")
        child.stdin.flush()
        # Part of the batch is in Orb and the next request is held: kill the invocation there.
        if keys and hold.reached.wait(HOLD_DEADLINE_SECONDS) and child.poll() is None:
            child.send_signal(signal.SIGKILL)
            info["killed"] = True
        child.wait(timeout=30)
        offered = sandbox.ingest_attempts_by_key
        info["in_orb_at_kill"] = sum(1 for key in keys if offered[key])
    finally:
        if hold is not None:
            hold.release.set()
        if child.poll() is None:
            child.kill()
            child.wait()
    return info
