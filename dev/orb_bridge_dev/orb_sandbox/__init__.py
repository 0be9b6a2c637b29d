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
- ``faults``: injected faults, scripted answers, rate limits (token buckets on an injectable clock),
  and the hold that stops one client mid-flight;
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

from importlib import import_module
from typing import Any

# Exports load on first use (PEP 562): ``orb-bridge`` builds its parser from ``options``
# without importing the HTTP server.
_EXPORTS = {
    "FaultConfig": "faults",
    "IngestHold": "faults",
    "RateLimiter": "faults",
    "ScriptedResponse": "faults",
    "format_utc": "problems",
    "parse_iso8601": "problems",
    "OrbSandbox": "server",
    "DEFAULT_FUTURE_LIMIT": "validation",
    "DEFAULT_GRACE_PERIOD": "validation",
    "ERROR_BODY_VARIANTS": "validation",
    "MAX_EVENTS_PER_REQUEST": "validation",
    "IngestRules": "validation",
    "SentWebhook": "webhooks",
    "format_orb_timestamp": "webhooks",
    "sign_orb_webhook": "webhooks",
    "main": "cli",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DEFAULT_FUTURE_LIMIT",
    "DEFAULT_GRACE_PERIOD",
    "ERROR_BODY_VARIANTS",
    "MAX_EVENTS_PER_REQUEST",
    "FaultConfig",
    "IngestHold",
    "IngestRules",
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
