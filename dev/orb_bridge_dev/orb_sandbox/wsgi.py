"""HTTP plumbing on Werkzeug: a threaded WSGI server on loopback, replies, dropped connections."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from orb_bridge_dev.loopback_guard import LoopbackGuard
from orb_bridge_dev.orb_sandbox.problems import RequestError

logger = logging.getLogger("orb_bridge_dev.orb_sandbox")

MAX_BODY_BYTES = 20 * 1024 * 1024


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    scripted: bool = False  # a test's canned answer (not contract-checked)

    @classmethod
    def json(cls, status: int, body: dict[str, Any], headers: dict | None = None) -> Reply:
        return cls(status, body, {str(k): str(v) for k, v in (headers or {}).items()})

    @classmethod
    def problem(cls, error: RequestError) -> Reply:
        return cls.json(error.status, error.body(), error.headers)

    @classmethod
    def drop(cls) -> Reply:
        return cls(drop_connection=True)

    def content_type(self) -> str:
        body = self.body or {}
        is_problem = self.status >= 400 and {"status", "type"} <= body.keys()
        return "application/problem+json" if is_problem else "application/json"


class _Handler(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm and delayed ACKs add ~40 ms to keep-alive requests.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s -> %s", self.command, self.path, code)

    def log_error(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


def serve(host: str, port: int, handle: Callable[[Request], Reply]) -> BaseWSGIServer:
    """A threaded Werkzeug server calling ``handle`` for each request (not started)."""

    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        length = request.content_length or 0
        if length > MAX_BODY_BYTES:
            reply = Reply.problem(RequestError("request_too_large", f"Bodies are limited to {MAX_BODY_BYTES} bytes."))
        else:
            try:
                reply = handle(request)
            except Exception:  # the sandbox's own bug: answer 500 like a server would, and say so
                logger.exception("Orb sandbox failed on %s %s", request.method, request.path)
                reply = Reply.problem(RequestError("internal", "Sandbox internal error.", {"Transient-Error": "true"}))
        if reply.drop_connection:
            # Close the socket without an answer; Werkzeug's write then fails and it gives up
            # on the connection quietly (a ConnectionError is its "client went away" case).
            connection = environ.get("werkzeug.socket")
            if connection is not None:
                connection.shutdown(socket.SHUT_RDWR)
            raise ConnectionAbortedError("sandbox dropped the connection")
        response = Response(
            json.dumps(reply.body).encode("utf-8"),
            status=reply.status,
            headers=reply.headers,
            content_type=reply.content_type(),
        )
        return response(environ, start_response)

    # Werkzeug's threaded server listens with a backlog of 128; it answers "Connection: close" to every
    # request (its dev server never keeps a connection alive), where Orb keeps them: a client here
    # opens one connection per request.
    # Behind the loopback guard: web pages (cross-site or DNS-rebinding) get a 403, never Orb's API.
    # Werkzeug answers a port clash by printing its own advice and exiting the process: a caller
    # gets an OSError instead, to name its own flag (`--sandbox-port`, `--port`).
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return make_server(host, port, LoopbackGuard(app), threaded=True, request_handler=_Handler)
        except SystemExit:
            raise OSError(errno.EADDRINUSE, f"{host}:{port} is in use (or cannot be listened on)") from None
