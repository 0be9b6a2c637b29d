"""A local stand-in for the HTTP API: routes requests to the real handlers as payload v2 events.

Each route maps ``METHOD /path`` to a Lambda handler. The event carries the raw body (base64
when it is not valid UTF-8, as API Gateway does for binary bodies), lower-cased headers and a
``requestContext`` with ``http.method`` / ``http.path`` and the ``routeKey``. The handler's
``statusCode`` / ``headers`` / ``body`` (base64-decoded when ``isBase64Encoded``) become the
HTTP response. Unknown paths answer 404, known paths with another method 405.

Like Lambda, one invocation at a time per function: a lock per route serialises them.

Unlike API Gateway, it answers loopback clients only (``loopback_guard``): a request with a
non-loopback ``Host`` (DNS rebinding) or a foreign ``Origin`` (a web page) gets a 403 before
any handler runs.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from orb_bridge_dev import loopback_guard
from orb_bridge_dev.devstack.lambda_runtime import LambdaContext

# API Gateway HTTP APIs refuse payloads over 10 MB.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    function_name: str
    timeout_seconds: float = 30.0
    on_response: Callable[[int, dict[str, Any] | None], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


def http_api_v2_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    route_key: str,
    source_ip: str,
    host: str,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event for one request."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    try:
        text_body: str | None = body.decode("utf-8")
        is_base64 = False
    except UnicodeDecodeError:
        text_body = base64.b64encode(body).decode("ascii")
        is_base64 = True
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = text_body
    return event


def http_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """The HTTP response API Gateway makes of a handler's return value (payload v2 rules)."""
    if isinstance(result, dict) and "statusCode" in result:
        status = int(result["statusCode"])
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[str(name)] = ",".join(str(v) for v in values)
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
        return status, headers, raw
    # Without a statusCode, HTTP APIs answer 200 with the JSON-serialised value.
    return 200, {"content-type": "application/json"}, json.dumps(result).encode("utf-8")


class Gateway:
    def __init__(self, routes: list[Route], *, port: int = 3000, host: str = "127.0.0.1") -> None:
        self.routes = routes
        self._server = ThreadingHTTPServer((host, port), self._request_handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="gateway", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def dispatch(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str, host: str
    ) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(target)
        path = split.path or "/"
        matching = [route for route in self.routes if route.path == path]
        if not matching:
            return _json(404, {"message": "Not Found"})
        route = next((r for r in matching if r.method == method), None)
        if route is None:
            status, response_headers, raw = _json(405, {"message": "Method Not Allowed"})
            response_headers["allow"] = ", ".join(sorted({r.method for r in matching}))
            return status, response_headers, raw
        if len(body) > MAX_PAYLOAD_BYTES:
            return _json(413, {"message": "Request Entity Too Large"})
        event = http_api_v2_event(
            method=method,
            raw_path=path,
            raw_query=split.query,
            headers=headers,
            body=body,
            route_key=route.route_key,
            source_ip=source_ip,
            host=host,
        )
        context = LambdaContext(route.function_name, route.timeout_seconds)
        with route.lock:
            try:
                result = route.handler(event, context)
            except Exception:  # what API Gateway answers when the function errors
                result = None
                status, response_headers, raw = _json(500, {"message": "Internal Server Error"})
            else:
                if context.timed_out:
                    status, response_headers, raw = _json(503, {"message": "Service Unavailable"})
                else:
                    status, response_headers, raw = http_response(result)
        if route.on_response is not None:
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            route.on_response(status, parsed if isinstance(parsed, dict) else None)
        return status, response_headers, raw

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "orb-bridge-dev"

            def setup(self) -> None:
                super().setup()
                # Without it Nagle's algorithm and delayed ACKs add ~40 ms to keep-alive requests.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                # Read even when refusing: unread bytes would make closing the socket reset it,
                # and the client might never see the 403.
                body = self.rfile.read(length) if length else b""
                refused = loopback_guard.refusal(
                    self.headers.get_all("host") or [], self.headers.get_all("origin") or []
                )
                if refused is not None:
                    status, headers, raw = _json_bytes(
                        loopback_guard.FORBIDDEN_STATUS, loopback_guard.refusal_body(refused)
                    )
                else:
                    status, headers, raw = gateway.dispatch(
                        self.command,
                        self.path,
                        list(self.headers.items()),
                        body,
                        self.client_address[0],
                        self.headers.get("host", "127.0.0.1"),
                    )
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the dev stack prints its own progress line

        return RequestHandler


def _json(status: int, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return _json_bytes(status, json.dumps(payload).encode("utf-8"))


def _json_bytes(status: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, raw
