"""``OrbSandbox``: lifecycle, shared state, routing and the test-facing accessors."""

from __future__ import annotations

import hmac
import json
import logging
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug.wrappers import Request

from orb_bridge_dev.orb_sandbox import amendments, backfills, contract, events
from orb_bridge_dev.orb_sandbox.faults import FaultConfig, IngestHold, RateLimiter, ScriptedResponse
from orb_bridge_dev.orb_sandbox.ingest import handle_ingest
from orb_bridge_dev.orb_sandbox.problems import RequestError
from orb_bridge_dev.orb_sandbox.store import EventStore
from orb_bridge_dev.orb_sandbox.validation import DEFAULT_FUTURE_LIMIT, DEFAULT_GRACE_PERIOD, IngestRules
from orb_bridge_dev.orb_sandbox.webhooks import WebhookSender
from orb_bridge_dev.orb_sandbox.wsgi import Reply, serve

logger = logging.getLogger("orb_bridge_dev.orb_sandbox")

Clock = Callable[[], datetime]

# (method, path pattern) -> route name; each route takes (sandbox, request, path match).
_ROUTES: list[tuple[str, re.Pattern[str], Callable[..., dict[str, Any]]]] = [
    ("POST", re.compile(r"/v1/events/search"), events.search),
    ("GET", re.compile(r"/v1/events/volume"), events.volume),
    ("GET", re.compile(r"/v1/events/backfills"), backfills.list_backfills),
    ("POST", re.compile(r"/v1/events/backfills"), backfills.create),
    ("GET", re.compile(r"/v1/events/backfills/(?P<id>[^/]+)"), backfills.fetch),
    ("POST", re.compile(r"/v1/events/backfills/(?P<id>[^/]+)/close"), backfills.close),
    ("POST", re.compile(r"/v1/events/backfills/(?P<id>[^/]+)/revert"), backfills.revert),
    ("PUT", re.compile(r"/v1/events/(?P<id>[^/]+)/deprecate"), amendments.deprecate),
    ("PUT", re.compile(r"/v1/events/(?P<id>[^/]+)"), amendments.amend),
]


def _system_clock() -> datetime:
    return datetime.now(UTC)


class OrbSandbox(WebhookSender):
    """An Orb-like HTTP API on loopback (see the package docstring). Thread-safe."""

    def __init__(
        self,
        api_key: str = "sandbox-key",
        host: str = "127.0.0.1",
        port: int = 0,
        grace_period: timedelta = DEFAULT_GRACE_PERIOD,
        webhook_secret: str | None = None,
        faults: FaultConfig | None = None,
        seed: int | None = None,
        *,
        future_limit: timedelta = DEFAULT_FUTURE_LIMIT,
        ingest_valid_events_on_400: bool = False,
        error_body: str = "validation_failed",
        rate_limit_requests_per_second: float = 0.0,
        rate_limit_events_per_minute: float = 0.0,
        backfill_reflect_delay: timedelta = timedelta(0),
        dedupe_within_backfill: bool = False,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(webhook_secret)
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the Orb sandbox binds to loopback only, not {host!r}")
        self.api_key = api_key
        self.host = host
        self._requested_port = port
        self.rules = IngestRules(grace_period, future_limit, ingest_valid_events_on_400, error_body)
        self.faults = faults if faults is not None else FaultConfig()
        self.rate_limiter = RateLimiter(rate_limit_requests_per_second, rate_limit_events_per_minute)
        self.backfill_reflect_delay = backfill_reflect_delay
        self.dedupe_within_backfill = dedupe_within_backfill
        self.now: Clock = clock or _system_clock
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._stopping = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._init_state()

    def _init_state(self) -> None:
        self.store = EventStore(self.backfill_reflect_delay, self.dedupe_within_backfill)
        self.scripted: list[ScriptedResponse] = []
        self.ingest_hold: IngestHold | None = None
        self.ingest_request_count = 0
        self.ingest_outcomes: Counter[str] = Counter()
        self.idempotent_replies: dict[str, tuple[str, Reply]] = {}
        self._clear_sent_webhooks()

    @property
    def grace_period(self) -> timedelta:
        return self.rules.grace_period

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> OrbSandbox:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = serve(self.host, self._requested_port, self._handle)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"orb-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on latency or timeout faults
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close_http()

    def __enter__(self) -> OrbSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("Orb sandbox is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ---- test hooks and state -----------------------------------------------------------------
    def script_ingest_responses(self, responses: Iterable[ScriptedResponse]) -> None:
        """Answer the next ingest requests with these, in order, instead of processing them."""
        with self.lock:
            self.scripted.extend(responses)

    def hold_ingest(self, keys: Iterable[str]) -> IngestHold:
        """Hold a client's next ingest request once part of ``keys`` is in Orb (see ``IngestHold``):
        wait on ``hold.reached``, stop the client, then set ``hold.release``."""
        hold = IngestHold(frozenset(keys))
        with self.lock:
            self.ingest_hold = hold
        return hold

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def pending_scripted_responses(self) -> int:
        with self.lock:
            return len(self.scripted)

    def ingested_events(self) -> dict[str, dict]:
        """idempotency_key -> billed event (a copy): what Orb would count now."""
        with self.lock:
            self.store.settle(self.now())
            return {event.key: event.as_dict() for event in self.store.billed()}

    @property
    def ingested_count(self) -> int:
        with self.lock:
            return len(self.ingested_events())

    def billed_count_by_key(self) -> Counter[str]:
        """Billed events per key: any count above 1 is a key billed twice."""
        with self.lock:
            self.store.settle(self.now())
            return self.store.billed_count_by_key()

    @property
    def ingest_attempts_by_key(self) -> Counter[str]:
        """How many times each key arrived in a valid event of an accepted request."""
        with self.lock:
            return Counter(self.store.offered_by_key)

    @property
    def duplicate_count(self) -> int:
        with self.lock:
            return self.store.duplicate_count

    @property
    def conflicting_duplicates(self) -> list[dict]:
        with self.lock:
            return list(self.store.conflicting_duplicates)

    def stats(self) -> dict[str, Any]:
        """Counters for progress displays, benchmarks and soak tests."""
        with self.lock:
            billed = self.store.billed_count_by_key()
            return {
                "ingest_requests": self.ingest_request_count,
                "ingested": len(billed),
                "billed_twice": sum(1 for count in billed.values() if count > 1),
                "duplicates": self.store.duplicate_count,
                "conflicting_duplicates": len(self.store.conflicting_duplicates),
                "outcomes": dict(self.ingest_outcomes),
                "webhooks_sent": len(self.sent_webhooks()),
            }

    def wait_for_ingested(self, keys: Iterable[str], timeout: float = 10.0) -> bool:
        """Block until every key is billed (True) or ``timeout`` passes (False)."""
        wanted = set(keys)
        with self.changed:
            return self.changed.wait_for(lambda: wanted <= {e.key for e in self.store.billed()}, timeout=timeout)

    def reset(self) -> None:
        """Forget events, backfills, counters, scripted responses and sent webhooks; keep the
        configuration (api key, rules, faults, rate limits)."""
        with self.lock:
            self._init_state()
            self.rate_limiter = RateLimiter(self.rate_limiter.requests_per_second, self.rate_limiter.events_per_minute)
            self.changed.notify_all()

    def forget_customer(self, external_customer_id: str) -> None:
        """From now on, events naming this external customer id match no customer in Orb."""
        with self.lock:
            self.store.unknown_customers.add(external_customer_id)

    def lost_keys(self) -> list[str]:
        """Keys a 200 answer accepted but the ``lose_rate`` fault silently dropped."""
        with self.lock:
            return list(self.store.lost_keys)

    # ---- used by the routes ---------------------------------------------------------------
    def count(self, outcome: str) -> None:
        with self.lock:
            self.ingest_outcomes[outcome] += 1

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return hmac.compare_digest(token.strip().encode("utf-8"), self.api_key.encode("utf-8"))

    # ---- dispatch ---------------------------------------------------------------------------
    def _handle(self, request: Request) -> Reply:
        body = request.get_data(cache=True)
        reply = self.handle(request.method, request.path, request.args.to_dict(), request.headers, body)
        contract.check_exchange(request.method, request.path, request.args.to_dict(), request.headers, body, reply)
        return reply

    def handle(self, method: str, raw_path: str, query: dict[str, str], headers: Any, body: bytes) -> Reply:
        path = raw_path.rstrip("/") or "/"
        authorized = self._authorized(headers.get("Authorization"))
        if path == "/v1/ingest" and method == "POST":
            return handle_ingest(self, body, query, authorized)
        for route_method, pattern, route in _ROUTES:  # noqa: B007 (route is used after the loop)
            match = pattern.fullmatch(path)
            if match and route_method == method:
                break
        else:  # Orb's "URL not found", distinct from a resource that does not exist
            return Reply.problem(RequestError("url_not_found", f"No route for {method} {path}."))
        if not authorized:
            return Reply.problem(RequestError("authentication", "Missing or invalid API key."))
        idempotency_key = headers.get("Idempotency-Key") if method == "POST" else None
        fingerprint = f"{method} {path} {json.dumps(query, sort_keys=True)} {body!r}"
        if idempotency_key:
            with self.lock:
                earlier = self.idempotent_replies.get(idempotency_key)
            if earlier is not None:
                if earlier[0] != fingerprint:
                    return Reply.problem(
                        RequestError(
                            "idempotency_mismatch",
                            f"Idempotency-Key {idempotency_key!r} was used with another request.",
                        )
                    )
                return earlier[1]
        try:
            reply = Reply.json(200, route(self, body, query, **match.groupdict()))
        except RequestError as error:
            reply = Reply.problem(error)
        if idempotency_key and reply.status < 500:
            with self.lock:
                self.idempotent_replies.setdefault(idempotency_key, (fingerprint, reply))
        return reply
