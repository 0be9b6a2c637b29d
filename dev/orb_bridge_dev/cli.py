"""``orb-bridge``: the developer's command line (never deployed).

orb-bridge dev [--port 3000] [--sandbox-port 3001] ...   run the whole stack locally
orb-bridge map FILE                                      dry-run the Segment -> Orb mapping
orb-bridge webhook send TYPE [--url ...]                 sign and send an Orb webhook to the stack
orb-bridge webhook sign [PAYLOAD] [-o FILE]              write a signed HTTP API event for sam local invoke
orb-bridge sandbox [--port 3001] ...                     run the Orb sandbox alone
orb-bridge replay (--stack NAME | --dev) [--yes] ...     replay rejected events through the ingest queue
orb-bridge backfill (--stack NAME | --dev) [--yes] ...   backfill rejected events older than Orb's grace period
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orb_bridge_dev.orb_sandbox.options import add_behaviour_arguments, behaviour_from_args

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:3000/orb/webhook"
# Orb's default grace period: older events need a backfill (docs/facts.md#orb-timestamps-and-grace-period).
GRACE_PERIOD = timedelta(hours=12)


def _fault_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Orb sandbox faults (per ingest request)")
    group.add_argument("--error-500-rate", type=float, default=0.0, help="probability of a 500 (default 0)")
    group.add_argument("--error-429-rate", type=float, default=0.0, help="probability of a 429 (default 0)")
    group.add_argument("--latency-seconds", type=float, default=0.0, help="added latency (default 0)")
    group.add_argument("--drop-connection-rate", type=float, default=0.0, help="probability of a dropped connection")
    group.add_argument(
        "--timeout-rate", type=float, default=0.0, help="probability of hanging past the client's timeout (default 0)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orb-bridge", description="segment-orb-bridge developer tools")
    commands = parser.add_subparsers(dest="command", required=True)

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
    dev.add_argument("--no-test-webhook", action="store_true", help="do not send a resource_event.test at start")
    _fault_arguments(dev)
    add_behaviour_arguments(dev)  # Orb's rules and rate limits in the sandbox (off by default)

    mapping = commands.add_parser(
        "map",
        help="dry-run the mapping of a Segment event or batch file (exit 1 if any event is rejected)",
        description='Print the Orb event(s) a Segment event, array or {"batch": [...]} becomes under the current settings.',
    )
    mapping.add_argument("file", help="JSON file ('-' for stdin)")

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

    commands.add_parser("sandbox", add_help=False, help="run the Orb sandbox alone (see `orb-bridge sandbox --help`)")
    commands.add_parser("replay", add_help=False, help="replay rejected events (see `orb-bridge replay --help`)")
    commands.add_parser(
        "backfill", add_help=False, help="backfill late rejected events into Orb (see `orb-bridge backfill --help`)"
    )
    return parser


# ---- dev ---------------------------------------------------------------------------------------
def run_dev(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from orb_bridge_dev.devstack import DEFAULT_TEMPLATE, DevStack, DevStackConfig, DevStackError, run_forever
    from orb_bridge_dev.orb_sandbox import FaultConfig

    config = DevStackConfig(
        port=args.port,
        sandbox_port=args.sandbox_port,
        moto_port=args.moto_port,
        template_path=args.template or DEFAULT_TEMPLATE,
        local_visibility_timeout=max(1, args.visibility_timeout),
        faults=FaultConfig(
            error_500_rate=args.error_500_rate,
            error_429_rate=args.error_429_rate,
            latency_seconds=args.latency_seconds,
            drop_connection_rate=args.drop_connection_rate,
            timeout_rate=args.timeout_rate,
        ),
        send_test_webhook=not args.no_test_webhook,
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
            + (" (is another dev stack running? try --port / --sandbox-port)" if isinstance(exc, OSError) else ""),
            file=sys.stderr,
        )
        return 2
    # From here Ctrl-C (even where a parent shell ignores SIGINT) asks the status loop to stop.
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from orb_bridge_dev.stack_target import remove_dev_stack_file, write_dev_stack_file

    try:
        # `orb-bridge replay --dev` / `backfill --dev` find the stack through this file.
        write_dev_stack_file(stack.resources.endpoint_url, stack.sandbox.base_url if stack.sandbox else "")
        print(stack.banner(), flush=True)
        print(_curl_example(stack.segment_url, bearer=bool(env.get("SEGMENT_AUTH_TOKEN", "").strip())), flush=True)
        run_forever(stack, sys.stdout, stop)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean stop
        remove_dev_stack_file()
        print("stopping...", flush=True)
        final = stack.status_line()
        stack.stop()
        print(f"stopped. {final}", flush=True)
    return 0


def _curl_example(segment_url: str, bearer: bool = False) -> str:
    # The token is named, never printed: the shell expands it.
    authorization = ' -H "authorization: Bearer $SEGMENT_AUTH_TOKEN"' if bearer else ""
    return (
        "Try:\n"
        f"  curl -s -X POST {segment_url} -H 'content-type: application/json'{authorization} \\\n"
        '    -d \'{"type":"track","event":"payment_confirmed","userId":"cust_1","messageId":"msg-\'$RANDOM\'",\n'
        '         "timestamp":"\'$(date -u +%Y-%m-%dT%H:%M:%SZ)\'","properties":{"amount":100,"currency":"USD"}}\'\n'
        "  orb-bridge webhook send invoice.issued"
    )


# ---- map ---------------------------------------------------------------------------------------
def map_settings_env(env: Mapping[str, str]) -> dict[str, str]:
    """The settings a dry run uses: the environment, with the dev stack's defaults."""
    from orb_bridge_dev.devstack import DEFAULT_PROPERTIES_MAPPING

    merged = dict(env)
    if not merged.get("EXTERNAL_CUSTOMER_ID_FIELD", "").strip():
        merged["EXTERNAL_CUSTOMER_ID_FIELD"] = "userId"
    if not merged.get("PROPERTIES_MAPPING", "").strip():
        merged["PROPERTIES_MAPPING"] = json.dumps(DEFAULT_PROPERTIES_MAPPING)
    return merged


def run_map(path: str, env: Mapping[str, str], out: Any = None, err: Any = None) -> int:
    from orb_bridge.config import MappingSettings
    from orb_bridge.errors import ConfigurationError
    from orb_bridge.http_request import BodyError
    from orb_bridge.segment.mapping import map_body
    from orb_bridge_dev.terminal import printable

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=err)
        return 2
    try:
        settings = MappingSettings.from_env(map_settings_env(env))
    except ConfigurationError as exc:
        print(f"error: {exc}", file=err)
        return 2
    print(
        f"settings: EVENT_NAME_FIELD={settings.event_name_field} "
        f"EXTERNAL_CUSTOMER_ID_FIELD={settings.external_customer_id_field} "
        f"IDEMPOTENCY_KEY_FIELD={settings.idempotency_key_field} "
        f"PROPERTIES_MAPPING={json.dumps(dict(settings.properties_mapping))}",
        file=out,
    )
    try:
        outcomes = map_body(raw, settings)
    except BodyError as exc:
        print(f"rejected: the whole body ({exc.problem.value}): {printable(exc.message)}", file=out)
        return 1
    now = datetime.now(UTC)
    accepted = skipped = rejected = 0
    for outcome in outcomes:
        label = f"[{outcome.index}]" + (f" messageId {printable(outcome.message_id)}" if outcome.message_id else "")
        if outcome.orb_event is not None:
            accepted += 1
            print(f"{label}: Orb event", file=out)
            print(json.dumps(outcome.orb_event.to_orb(), indent=2), file=out)
            note = _timestamp_note(outcome.orb_event.timestamp, now)
            if note:
                print(f"  note: {note}", file=out)
        elif outcome.skipped:
            skipped += 1
            print(f"{label}: skipped: a {printable(outcome.call_type)} call is acknowledged, not billed", file=out)
        else:
            rejected += 1
            print(f"{label}: rejected: {printable(outcome.error)}", file=out)
    print(f"{accepted} accepted, {skipped} skipped, {rejected} rejected", file=out)
    return 1 if rejected else 0


def _timestamp_note(timestamp: str, now: datetime) -> str | None:
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment < now - GRACE_PERIOD:
        return "older than Orb's default 12 h grace period: Orb will reject it unless it is sent through a backfill"
    if moment > now + timedelta(minutes=5):
        return "more than 5 minutes in the future: Orb will reject it"
    return None


# ---- webhook send ------------------------------------------------------------------------------
def run_webhook_send(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    import httpx

    from orb_bridge_dev.devstack import DEV_WEBHOOK_SECRET
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # These delegate their whole command line to their own parsers.
    if argv[:1] == ["sandbox"]:
        from orb_bridge_dev import orb_sandbox

        return orb_sandbox.main(argv[1:])
    if argv[:1] in (["replay"], ["backfill"]):
        from orb_bridge_dev import backfill_cmd, replay_cmd

        return (replay_cmd if argv[0] == "replay" else backfill_cmd).main(argv[1:])
    if argv[:2] == ["webhook", "sign"]:
        from orb_bridge_dev import webhook_event

        return webhook_event.main(argv[2:])

    args = build_parser().parse_args(argv)
    env = os.environ
    if args.command == "dev":
        return run_dev(args, env)
    if args.command == "map":
        try:
            return run_map(args.file, env)
        except BrokenPipeError:  # `orb-bridge map FILE | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    if args.command == "webhook" and args.webhook_command == "send":
        return run_webhook_send(args, env)
    build_parser().print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
