"""``orb-bridge sandbox`` / ``python -m orb_bridge_dev.orb_sandbox``: run the sandbox alone."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Sequence

from orb_bridge_dev.orb_sandbox.options import (
    add_behaviour_arguments,
    add_fault_arguments,
    behaviour_from_args,
    faults_from_args,
)
from orb_bridge_dev.orb_sandbox.server import OrbSandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orb-bridge sandbox", description="Run the Orb sandbox (an Orb-like API on 127.0.0.1)."
    )
    parser.add_argument("--port", type=int, default=3001, help="port (0: any free one; default 3001)")
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument("--webhook-secret", default=None)
    add_behaviour_arguments(parser)
    add_fault_arguments(parser)
    return parser


def sandbox_from_args(args: argparse.Namespace) -> OrbSandbox:
    return OrbSandbox(
        api_key=args.api_key,
        port=args.port,
        webhook_secret=args.webhook_secret,
        faults=faults_from_args(args),
        seed=args.seed,
        **behaviour_from_args(args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    sandbox = sandbox_from_args(build_parser().parse_args(argv))
    stop = threading.Event()
    # ValueError: not the main thread; Ctrl-C / stop() of the caller ends it instead.
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sandbox.start()
    except OSError as exc:
        print(f"orb-bridge sandbox: cannot listen: {exc}; choose another port with --port", file=sys.stderr)
        return 2
    print(f"Orb sandbox listening on {sandbox.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stats = sandbox.stats()
        sandbox.stop()
        print(f"Orb sandbox stopped: {json.dumps(stats)}", file=sys.stderr)
    return 0
