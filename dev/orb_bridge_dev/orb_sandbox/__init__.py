"""An Orb look-alike HTTP API on 127.0.0.1, for integration tests, the dev stack and benchmarks.

It implements the slice of Orb's API the bridge talks to as Orb's OpenAPI spec describes it
(see ``docs/facts.md``): ``POST /v1/ingest`` (Bearer auth, at most 500 events; any invalid event
makes the whole request a 400 ``RequestValidationError`` and a 200's ``validation_failed`` is
always empty; each idempotency key ingested at most once), ``POST /v1/events/search``,
``GET /v1/events/volume`` and Orb's backfills (create, list, fetch, close, revert). Errors are
RFC 7807 problems with the spec's ``type`` URIs.

Modules, each readable in one sitting:

- ``validation``: Orb's event rules (grace period, future limit...) and the 400 body variants;
- ``ingest``, ``events`` (search, volume, pagination), ``backfills``: the routes;
- ``store``: ingested events and backfills, and what counts as billed;
- ``faults``: injected faults, scripted answers, rate limits (token buckets on an injectable clock);
- ``webhooks``: signing and sending webhooks as Orb does;
- ``problems``: Orb's problem types, date-times and JSON;
- ``wsgi``, ``server``: HTTP plumbing and the ``OrbSandbox`` class; ``cli``: the command line;
- ``contract``: the optional check of every answer against Orb's spec (on in the test suite).

HTTP on Werkzeug's threaded WSGI server: a maintained library (Pallets), already installed
through ``moto[server]``, that parses requests, handles keep-alive and chunking and needs no
event loop; the sandbox's handlers are plain blocking functions that may sleep (latency faults).
The standard library's ``http.server`` needed private internals for one-write answers.

Standalone: ``python -m orb_bridge_dev.orb_sandbox --port 3001 --error-body strings``.
"""

from orb_bridge_dev.orb_sandbox.faults import FaultConfig, RateLimiter, ScriptedResponse
from orb_bridge_dev.orb_sandbox.problems import format_utc, parse_iso8601
from orb_bridge_dev.orb_sandbox.server import OrbSandbox
from orb_bridge_dev.orb_sandbox.validation import (
    DEFAULT_FUTURE_LIMIT,
    DEFAULT_GRACE_PERIOD,
    ERROR_BODY_VARIANTS,
    MAX_EVENTS_PER_REQUEST,
    IngestRules,
)
from orb_bridge_dev.orb_sandbox.webhooks import SentWebhook, format_orb_timestamp, sign_orb_webhook


def main(argv=None) -> int:  # type: ignore[no-untyped-def]
    from orb_bridge_dev.orb_sandbox.cli import main as cli_main

    return cli_main(argv)


__all__ = [
    "DEFAULT_FUTURE_LIMIT",
    "DEFAULT_GRACE_PERIOD",
    "ERROR_BODY_VARIANTS",
    "FaultConfig",
    "IngestRules",
    "MAX_EVENTS_PER_REQUEST",
    "OrbSandbox",
    "RateLimiter",
    "ScriptedResponse",
    "SentWebhook",
    "format_orb_timestamp",
    "format_utc",
    "main",
    "parse_iso8601",
    "sign_orb_webhook",
]
