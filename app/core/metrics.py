"""Prometheus metrics: every metric Hookyard exports, and the small `/metrics` server a worker runs.

The metrics live in prometheus_client's default registry, one per process: the API serves them at
`/metrics` (or on HOOKYARD_METRICS_PORT), a `hookyard worker` on HOOKYARD_METRICS_PORT. Labels only
ever hold bounded sets (integration kinds, outcome classes, statuses, capped operation names), never ids.

Gauges read from the database and Redis are refreshed asynchronously right before a scrape is
rendered (`GaugeRefresher`), each source under a short timeout, so a scrape never hangs on an outage.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import threading
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from app.core.logging import get_logger

log = get_logger(__name__)

# No `*_created` series beside every counter and histogram: they double the output and nobody graphs them.
disable_created_metrics()

ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400)
GRAPHQL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# -- deliveries (recorded where they happen: the API's fan-out, whichever process sends)

DELIVERIES_CREATED = Counter(
    "hookyard_deliveries_created_total", "Deliveries created by published events, by integration kind and first status",
    ["type", "status"])
DELIVERY_ATTEMPTS = Counter(
    "hookyard_delivery_attempts_total",
    "Delivery attempts by integration kind and outcome (success, http_3xx, http_4xx, http_5xx, timeout, "
    "connection, ssrf_blocked, error)",
    ["type", "outcome"])
ATTEMPT_DURATION = Histogram(
    "hookyard_delivery_attempt_duration_seconds", "Time the requests of one delivery attempt took",
    ["type"], buckets=ATTEMPT_BUCKETS)
DELIVERY_LATENCY = Histogram(
    "hookyard_delivery_latency_seconds", "From the event's publication to its successful delivery, retries included",
    ["type"], buckets=LATENCY_BUCKETS)

# -- state read from Redis and the database at scrape time (the same for every process)

QUEUE_DEPTH = Gauge(
    "hookyard_queue_depth", "Jobs on the arq queue: due (runnable now or running) or scheduled (a later retry)",
    ["state"])
QUEUE_OLDEST_AGE = Gauge(
    "hookyard_queue_oldest_job_age_seconds", "How long the oldest due job has been waiting on the arq queue (0: none)")
DELIVERIES_RETRYING = Gauge("hookyard_deliveries_retrying", "Deliveries waiting for their next attempt")
DELIVERIES_HELD = Gauge("hookyard_deliveries_held", "Deliveries held while their integration is disabled or "
                                                    "needs re-authorization")
INTEGRATIONS = Gauge("hookyard_integrations", "Integrations by health status", ["status"])
SOURCE_UP = Gauge("hookyard_metrics_source_up",
                  "1 when the last scrape-time read of this source (database, redis) answered in time", ["source"])

# -- the API

GRAPHQL_DURATION = Histogram(
    "hookyard_graphql_operation_duration_seconds",
    "GraphQL queries and mutations by operation name (capped; anonymous, other) and outcome (ok, error)",
    ["operation", "outcome"], buckets=GRAPHQL_BUCKETS)
LIVE_SUBSCRIBERS = Gauge("hookyard_live_subscribers", "deliveryUpdates subscriptions held by this API process")
LIVE_SLOW_DROPPED = Counter("hookyard_live_slow_subscribers_dropped_total",
                            "Live subscribers dropped because they fell too far behind")

# -- operation names: clients choose them, so only the first MAX_OPERATION_NAMES get a series of their own

MAX_OPERATION_NAMES = 100
ANONYMOUS = "anonymous"
OTHER = "other"
_OPERATION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class OperationNames:
    """The label for an operation name: itself while fewer than `limit` distinct names were seen, else "other"."""

    def __init__(self, limit: int = MAX_OPERATION_NAMES):
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def label(self, name: str | None) -> str:
        if not name:
            return ANONYMOUS
        if name in self._seen:
            return name
        if not _OPERATION_NAME.fullmatch(name):
            return OTHER
        with self._lock:
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(name)
        return name


OPERATION_NAMES = OperationNames()


# -- serving

def authorized(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries `Bearer <token>`; anything goes when no token is set."""
    if not token:
        return True
    scheme, _, value = (header or "").strip().partition(" ")
    # compare_digest on both sides always, so the time taken says nothing about the token.
    return hmac.compare_digest(value.strip().encode(), token.encode()) and scheme.lower() == "bearer"


def render() -> bytes:
    return generate_latest(REGISTRY)


class GaugeRefresher:
    """Runs an async refresh of the scrape-time gauges before a scrape is rendered: at most one at a
    time, at most one per `min_interval` seconds (concurrent scrapers share it), never longer than
    `timeout` (the refresh keeps its own, shorter, per-source timeouts)."""

    def __init__(self, refresh: Callable[[], Awaitable[object]], *, timeout: float = 3.0, min_interval: float = 1.0):
        self._refresh = refresh
        self.timeout = timeout
        self.min_interval = min_interval
        self._lock = asyncio.Lock()
        self._last = float("-inf")

    async def __call__(self) -> None:
        async with self._lock:
            if time.monotonic() - self._last < self.min_interval:
                return
            try:
                async with asyncio.timeout(self.timeout):
                    await self._refresh()
            except Exception:
                log.warning("metrics.refresh_failed", exc_info=True)
            finally:
                self._last = time.monotonic()


UNAUTHORIZED = b"a bearer token (HOOKYARD_METRICS_TOKEN) is required\n"


async def start_server(host: str, port: int, token: str | None,
                       before_render: Callable[[], Awaitable[object]] | None = None) -> web.AppRunner:
    """Serves GET /metrics on host:port in this event loop; `await runner.cleanup()` stops it."""

    async def handle(request: web.Request) -> web.Response:
        if not authorized(request.headers.get("Authorization"), token):
            return web.Response(status=401, body=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"},
                                content_type="text/plain")
        if before_render is not None:
            await before_render()
        return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("metrics.serving", url=f"http://{host}:{port}/metrics")
    return runner
