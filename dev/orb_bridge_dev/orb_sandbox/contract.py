"""Contract checks: every sandbox answer, and every request from the bridge's own Orb client,
validated against Orb's OpenAPI spec while the hook is on.

Off unless ``ORB_SANDBOX_CONTRACT_SPEC`` names a spec file (JSON, Orb's OpenAPI 3.1 spec or the
subset in ``tests/contract/``) or ``enable(path)`` is called; the test suite turns it on for every
test and fails any test during which a violation was recorded (``take_violations``). Requests are
checked only when their ``User-Agent`` is the bridge's (``segment-orb-bridge/...``): tests send
deliberately bad requests from other clients, and the sandbox must answer those as Orb would.
Answers a test scripted (``ScriptedResponse``) are not checked: they are the test's, not the sandbox's.

jsonschema (Draft 2020-12, the dialect of OpenAPI 3.1 schemas) rather than openapi-core: the
checks need only "does this JSON match that schema", over the spec's own ``components``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("orb_bridge_dev.orb_sandbox.contract")

ENV_VAR = "ORB_SANDBOX_CONTRACT_SPEC"
BRIDGE_USER_AGENT = "segment-orb-bridge/"
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")

_SPEC_URI = "urn:orb-openapi"
_lock = threading.Lock()
_checker: ContractChecker | None = None
_spec_path: str | None = None
_violations: list[str] = []


class ContractChecker:
    def __init__(self, spec: Mapping[str, Any]) -> None:
        import jsonschema
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        # Local "#/components/..." references, pointed at the spec registered under one URI.
        self.spec = _rebase(spec)
        resource = Resource.from_contents(self.spec, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(_SPEC_URI, resource)
        self._formats = jsonschema.FormatChecker(formats=())
        self._formats.checks("date-time")(lambda value: not isinstance(value, str) or bool(_RFC3339.match(value)))
        self._validator_class = jsonschema.Draft202012Validator
        self._validators: dict[str, Any] = {}
        # "/events/backfills/{backfill_id}/close" -> a regex over the path after "/v1".
        self._paths = [
            (re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$"), path)
            for path in self.spec.get("paths", {})
        ]

    def errors(self, schema: Mapping[str, Any], instance: Any) -> list[str]:
        cache_key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(cache_key)
        if validator is None:
            validator = self._validator_class(_rebase(schema), registry=self._registry, format_checker=self._formats)
            self._validators[cache_key] = validator
        return [
            f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
            for error in validator.iter_errors(instance)
        ]

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        relative = path.removeprefix("/v1")
        for pattern, template in self._paths:
            if pattern.match(relative):
                return self.spec["paths"][template].get(method.lower())
        return None

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        operation = self.operation(method, path)
        if operation is None:  # no such operation: only Orb's "URL not found" fits
            if status != 404:
                return [f"{method} {path} is not in Orb's spec, yet answered {status}"]
            return self.errors({"$ref": "#/components/schemas/URLNotFound"}, body)
        response = operation.get("responses", {}).get(str(status))
        if response is None:
            return [f"{status} is not a documented answer of {method} {path}"]
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        return self.errors(schema, body) if schema is not None else []

    def check_request(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> list[str]:
        operation = self.operation(method, path)
        if operation is None:
            return [f"{method} {path} is not an operation of Orb's API"]
        problems: list[str] = []
        for parameter in operation.get("parameters", []):
            if parameter.get("in") != "query":
                continue
            value: Any = query.get(parameter["name"])
            if value is None:
                if parameter.get("required"):
                    problems.append(f"query parameter {parameter['name']} is required")
                continue
            if parameter.get("schema", {}).get("type") == "integer":
                value = int(value) if value.lstrip("-").isdigit() else value
            problems.extend(f"query {parameter['name']}: {error}" for error in self.errors(parameter["schema"], value))
        unknown = set(query) - {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        problems.extend(f"query parameter {name} is not in Orb's spec" for name in sorted(unknown))
        request_body = operation.get("requestBody")
        if request_body is not None:
            try:
                payload = json.loads(body)
            except ValueError:
                return [*problems, "request body is not JSON"]
            schema = request_body["content"]["application/json"]["schema"]
            problems.extend(f"request body: {error}" for error in self.errors(schema, payload))
        return problems


def _rebase(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: (_SPEC_URI + v if k == "$ref" and v.startswith("#") else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(item) for item in schema]
    return schema


def enable(spec_path: str) -> None:
    global _checker, _spec_path
    with open(spec_path, encoding="utf-8") as handle:
        checker = ContractChecker(json.load(handle))
    with _lock:
        _checker, _spec_path = checker, spec_path


def disable() -> None:
    global _checker, _spec_path
    with _lock:
        _checker, _spec_path = None, None


def active_spec() -> str | None:
    return _spec_path


def take_violations() -> list[str]:
    """The violations recorded since the last call (and forget them)."""
    with _lock:
        taken = list(_violations)
        _violations.clear()
    return taken


def check_exchange(method: str, path: str, query: Mapping[str, str], headers: Any, body: bytes, reply: Any) -> None:
    """Record (and log) every way this request/answer pair departs from Orb's spec."""
    checker = _checker
    if checker is None or reply.drop_connection or reply.scripted:
        return  # a scripted answer is the test's own words, off-spec on purpose at times
    found = [
        f"response {reply.status}: {error}" for error in checker.check_response(method, path, reply.status, reply.body)
    ]
    if str(headers.get("User-Agent", "")).startswith(BRIDGE_USER_AGENT):
        found.extend(f"request: {error}" for error in checker.check_request(method, path, query, body))
    if found:
        message = f"Orb contract violation on {method} {path}: " + "; ".join(found)
        logger.error("%s", message)
        with _lock:
            _violations.append(message)


if os.environ.get(ENV_VAR):
    enable(os.environ[ENV_VAR])
