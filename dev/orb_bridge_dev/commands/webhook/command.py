"""``orb-bridge webhook send``: sign a webhook as Orb does and POST it to the dev stack.

``orb-bridge webhook sign`` (a signed HTTP API event for ``sam local invoke``) is ``event.main``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:3000/orb/webhook"


def register(commands: Any) -> None:
    webhook = commands.add_parser("webhook", help="Orb webhooks: send one to the dev stack, or write a signed event")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", required=True)
    send = webhook_commands.add_parser("send", help="sign a webhook as Orb does and POST it to the dev stack")
    send.add_argument("type", nargs="?", default="resource_event.test", help="webhook type, e.g. invoice.issued")
    send.add_argument("--url", default=DEFAULT_WEBHOOK_URL, help=f"receiver URL (default {DEFAULT_WEBHOOK_URL})")
    send.add_argument(
        "--secret", default=None, help="signing secret (default: $ORB_WEBHOOK_SECRET, else the dev secret)"
    )
    send.add_argument("--times", type=int, default=1, help="deliver it this many times (redeliveries keep the id)")
    webhook_commands.add_parser(
        "sign", add_help=False, help="write a freshly signed HTTP API v2 event (see `orb-bridge webhook sign --help`)"
    )


def run_send(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    import httpx

    from orb_bridge_dev.devstack.stack import DEV_WEBHOOK_SECRET
    from orb_bridge_dev.orb_sandbox import OrbSandbox

    configured = args.secret if args.secret is not None else env.get("ORB_WEBHOOK_SECRET", "")
    secret = next((s.strip() for s in configured.replace("\n", ",").split(",") if s.strip()), DEV_WEBHOOK_SECRET)
    # The sandbox's signer is Orb's scheme; it needs no running server to send.
    signer = OrbSandbox(webhook_secret=secret)
    try:
        response = signer.send_webhook(args.url, args.type)
        print(f"sent {args.type} (id {signer.sent_webhooks()[-1].id}): HTTP {response.status_code} {response.text}")
        for _ in range(max(0, args.times - 1)):
            response = signer.redeliver_webhook()
            print(f"redelivered: HTTP {response.status_code} {response.text}")
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {args.url} ({type(exc).__name__}); is `orb-bridge dev` running?", file=sys.stderr)
        return 2
    finally:
        signer.stop()
    return 0 if response.is_success else 1
