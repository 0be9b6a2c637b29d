"""``orb-bridge dev``: the whole stack on 127.0.0.1 (handlers, moto, the SQS poller, the Orb sandbox)."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orb_bridge_dev.orb_sandbox.options import (
    add_behaviour_arguments,
    add_fault_arguments,
    behaviour_from_args,
    faults_from_args,
)


def register(commands: Any) -> None:
    dev = commands.add_parser(
        "dev",
        help="run the local dev stack (HTTP API, embedded AWS, SQS poller, Orb sandbox)",
        description=(
            "Run the real handlers on 127.0.0.1 with moto (resources from template.yaml) and the Orb "
            "sandbox. Settings come from your environment (ORB_API_BASE_URL + ORB_API_KEY for a real "
            "Orb, which then requires SEGMENT_AUTH_TOKEN or SEGMENT_SHARED_SECRET; EXTERNAL_CUSTOMER_ID_FIELD, "
            "PROPERTIES_MAPPING...)."
        ),
    )
    dev.add_argument("--port", type=int, default=3000, help="HTTP port for /segment and /orb/webhook (default 3000)")
    dev.add_argument("--sandbox-port", type=int, default=3001, help="Orb sandbox port (default 3001)")
    dev.add_argument(
        "--name",
        default="",
        help="a name for this stack, for `--dev NAME` in replay/backfill/rejected when several run (default dev-PORT)",
    )
    dev.add_argument("--moto-port", type=int, default=0, help="moto server port (default: any free port)")
    dev.add_argument(
        "--template", type=Path, default=None, help="SAM template (default: the repository's template.yaml)"
    )
    dev.add_argument(
        "--visibility-timeout",
        type=int,
        default=2,
        help="local visibility timeout of the ingest queue in seconds: how soon a failed message is retried (default 2)",
    )
    dev.add_argument(
        "--reconcile-every",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="run the reconciler over the audit archive this often (default 30; 0: off); the status line shows it",
    )
    dev.add_argument("--no-test-webhook", action="store_true", help="do not send a resource_event.test at start")
    add_fault_arguments(dev, full=False)  # the sandbox's own CLI has a few more
    add_behaviour_arguments(dev)  # Orb's rules and rate limits in the sandbox (off by default)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from orb_bridge_dev.devstack.stack import DEFAULT_TEMPLATE, DevStack, DevStackConfig, DevStackError, run_forever

    config = DevStackConfig(
        port=args.port,
        sandbox_port=args.sandbox_port,
        moto_port=args.moto_port,
        template_path=args.template or DEFAULT_TEMPLATE,
        local_visibility_timeout=max(1, args.visibility_timeout),
        faults=faults_from_args(args),
        reconcile_every=max(0.0, args.reconcile_every),
        send_test_webhook=not args.no_test_webhook,
        name=args.name,
        user_env=env,
        sandbox_options=behaviour_from_args(args),
    )
    stack = DevStack(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stack.start()
    except KeyboardInterrupt:  # start() has already stopped what it had started
        return 130
    except (DevStackError, OSError) as exc:
        print(
            f"orb-bridge dev: cannot start: {exc}"
            + (
                " (is another dev stack running? try --port / --sandbox-port)"
                if not isinstance(exc, DevStackError)
                else ""
            ),
            file=sys.stderr,
        )
        return 2
    # From here Ctrl-C (even where a parent shell ignores SIGINT) asks the status loop to stop.
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from orb_bridge_dev.deployment import dev_stacks
    from orb_bridge_dev.devstack.env import cli_target

    port = stack.gateway.port if stack.gateway is not None else args.port
    try:
        # `orb-bridge replay --dev` / `backfill --dev` / `rejected --dev` find the stack through this file.
        dev_stacks.register(
            port, stack.resources.endpoint_url, stack.sandbox.base_url if stack.sandbox else "", args.name
        )
        print(stack.banner(), flush=True)
        print(
            try_lines(stack.segment_url, stack.webhook_url, _segment_auth(env), cli_target(port, args.name)),
            flush=True,
        )
        run_forever(stack, sys.stdout, stop)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean stop
        dev_stacks.unregister(port)
        print("stopping...", flush=True)
        final = stack.status_line()
        stack.stop()
        print(f"stopped. {final}", flush=True)
    return 0


def _segment_auth(env: Mapping[str, str]) -> str:
    if env.get("SEGMENT_AUTH_TOKEN", "").strip():
        return "bearer"
    return "signature" if env.get("SEGMENT_SHARED_SECRET", "").strip() else ""


def cli_command() -> str:
    """`orb-bridge` if the shell finds it, else the path that works from the repository's root
    (`make dev` runs it from .venv/bin, which is not on PATH)."""
    return "orb-bridge" if shutil.which("orb-bridge") else ".venv/bin/orb-bridge"


def try_lines(segment_url: str, webhook_url: str, auth: str = "", dev_target: str = "--dev") -> str:
    """Commands to paste from the repository's root. Secrets are named, never printed: the shell
    expands them."""
    command = cli_command()
    body = (
        '\'{"type":"track","event":"payment_confirmed","userId":"cust_1","messageId":"msg-\'$RANDOM\'",'
        '"timestamp":"\'$(date -u +%Y-%m-%dT%H:%M:%SZ)\'","properties":{"amount":100,"currency":"USD"}}\''
    )
    if auth == "signature":  # Segment's X-Signature: hex HMAC-SHA1 of the body with the shared secret
        post = (
            f"  BODY={body}\n"
            f"  curl -s -X POST {segment_url} -H 'content-type: application/json' \\\n"
            '    -H "x-signature: $(printf %s "$BODY" | openssl dgst -sha1 -hmac "$SEGMENT_SHARED_SECRET" '
            '| sed \'s/.* //\')" -d "$BODY"'
        )
    else:
        authorization = ' -H "authorization: Bearer $SEGMENT_AUTH_TOKEN"' if auth == "bearer" else ""
        post = f"  curl -s -X POST {segment_url} -H 'content-type: application/json'{authorization} \\\n    -d {body}"
    return (
        "Try (from the repository's root):\n"
        f"{post}\n"
        f"  {command} webhook send invoice.issued --url {webhook_url}\n"
        f"  {command} rejected {dev_target}"
    )
