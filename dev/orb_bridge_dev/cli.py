"""``orb-bridge``: the developer's command line (never deployed). One module per command:

orb-bridge dev [--port 3000] [--sandbox-port 3001] ...   run the whole stack locally (commands/dev.py)
orb-bridge map FILE                                      dry-run the Segment -> Orb mapping (commands/map.py)
orb-bridge webhook send TYPE [--url ...]                 sign and send an Orb webhook to the stack (commands/webhook/)
orb-bridge webhook sign [PAYLOAD] [-o FILE]              write a signed HTTP API event for sam local invoke
orb-bridge sandbox [--port 3001] ...                     run the Orb sandbox alone (orb_sandbox/)
orb-bridge replay (--stack NAME | --dev) [--yes] ...     replay rejected events through the ingest queue (commands/replay.py)
orb-bridge backfill (--stack NAME | --dev) [--yes] ...   backfill rejected events older than Orb's grace period (commands/backfill/)
orb-bridge rejected (--stack NAME | --dev) [--full] ...  list the rejected records, changing nothing (commands/rejected.py)
orb-bridge status (--stack NAME | --dev) [--json]        the deployment on one screen; exit 0 well, 1 attention, 2 unknown (commands/status.py)
orb-bridge reconcile (--stack NAME | --dev) [--check] [--repair [--yes]]  reports per hour; repair lost events (commands/reconcile/)
orb-bridge trace KEY (--stack NAME | --dev)              where one event is now (commands/trace.py)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from orb_bridge_dev.commands import dev, map  # noqa: A004 (the command is called map)
from orb_bridge_dev.commands.webhook import command as webhook
from orb_bridge_dev.orb_sandbox.options import behaviour_from_args  # noqa: F401 (tests read the dev parser's options through it)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orb-bridge", description="segment-orb-bridge developer tools")
    commands = parser.add_subparsers(dest="command", required=True)
    dev.register(commands)
    map.register(commands)
    webhook.register(commands)
    # These parse their own command line (see main).
    commands.add_parser("sandbox", add_help=False, help="run the Orb sandbox alone (see `orb-bridge sandbox --help`)")
    commands.add_parser("replay", add_help=False, help="replay rejected events (see `orb-bridge replay --help`)")
    commands.add_parser(
        "backfill", add_help=False, help="backfill late rejected events into Orb (see `orb-bridge backfill --help`)"
    )
    commands.add_parser("rejected", add_help=False, help="list the rejected records (see `orb-bridge rejected --help`)")
    commands.add_parser("status", add_help=False, help="the deployment on one screen (see `orb-bridge status --help`)")
    commands.add_parser("reconcile", add_help=False, help="reconciliation per hour, and repair (see --help)")
    commands.add_parser("trace", add_help=False, help="where one event is now (see `orb-bridge trace --help`)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # These delegate their whole command line to their own parsers.
    if argv[:1] == ["sandbox"]:
        from orb_bridge_dev import orb_sandbox

        return orb_sandbox.main(argv[1:])
    if argv[:1] == ["replay"]:
        from orb_bridge_dev.commands import replay

        return replay.main(argv[1:])
    if argv[:1] == ["backfill"]:
        from orb_bridge_dev.commands.backfill import command as backfill

        return backfill.main(argv[1:])
    if argv[:1] == ["rejected"]:
        from orb_bridge_dev.commands import rejected

        return rejected.main(argv[1:])
    if argv[:1] == ["status"]:
        from orb_bridge_dev.commands import status

        return status.main(argv[1:])
    if argv[:1] == ["reconcile"]:
        from orb_bridge_dev.commands.reconcile import command as reconcile

        return reconcile.main(argv[1:])
    if argv[:1] == ["trace"]:
        from orb_bridge_dev.commands import trace

        return trace.main(argv[1:])
    if argv[:2] == ["webhook", "sign"]:
        from orb_bridge_dev.commands.webhook import event as webhook_event

        return webhook_event.main(argv[2:])

    args = build_parser().parse_args(argv)
    env = os.environ
    if args.command == "dev":
        return dev.run(args, env)
    if args.command == "map":
        try:
            return map.run_map(args.file, env)
        except BrokenPipeError:  # `orb-bridge map FILE | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    if args.command == "webhook" and args.webhook_command == "send":
        return webhook.run_send(args, env)
    build_parser().print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
