"""Recording delivery metrics (app.core.metrics holds the definitions) and reading the scrape-time
gauges from Redis and the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

from aiohttp import web
from arq.constants import default_queue_name
from redis.asyncio import Redis
from tortoise.functions import Count

from app.config import Settings
from app.core import metrics
from app.core.logging import get_logger
from app.delivery.attempt_log import classify_outcome
from app.integrations.registry import get_kind
from app.models import Delivery, DeliveryAttempt, DeliveryStatus, Integration, IntegrationStatus

log = get_logger(__name__)

# Each source read at scrape time gets this long; a slow or absent one leaves its gauges as they were
# and sets hookyard_metrics_source_up{source} to 0.
SOURCE_TIMEOUT = 1.5
QUEUE_STATES = ("due", "scheduled")


def kind_label(type_name: str | None) -> str:
    """An integration kind as a label: webhook, slack, ...; "other" for anything unregistered."""
    kind = get_kind(type_name or "")
    return kind.type.lower() if kind is not None else "other"


def count_created(deliveries: Iterable[Delivery], types: Mapping[str, str]) -> None:
    """Counts newly created deliveries; `types` maps integration ids to their kinds."""
    try:
        for delivery in deliveries:
            metrics.DELIVERIES_CREATED.labels(kind_label(types.get(delivery.integration_id)),
                                              str(delivery.status).lower()).inc()
    except Exception:  # a metric must never cost a publish
        log.error("metrics.record_failed", exc_info=True)


def record_attempt(delivery: Delivery, attempt: DeliveryAttempt, success: bool) -> None:
    """Counts and times one recorded attempt; a success of a real delivery also gets its latency."""
    try:
        kind = kind_label(delivery.integration.type)
        outcome = classify_outcome(success, attempt.response_code, attempt.error)
        metrics.DELIVERY_ATTEMPTS.labels(kind, outcome).inc()
        metrics.ATTEMPT_DURATION.labels(kind).observe(max(attempt.duration_ms or 0, 0) / 1000)
        if success and not delivery.is_test and delivery.delivered_at and delivery.created_at:
            latency = (delivery.delivered_at - delivery.created_at).total_seconds()
            metrics.DELIVERY_LATENCY.labels(kind).observe(max(latency, 0.0))
    except Exception:
        log.error("metrics.record_failed", delivery_id=delivery.id, exc_info=True)


# -- scrape-time gauges

async def _read_queue(redis: Redis) -> None:
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(default_queue_name)
        pipe.zcount(default_queue_name, "-inf", now_ms)
        # The score is when the job was queued, or when a deferred one (a retry) falls due.
        pipe.zrangebyscore(default_queue_name, "-inf", now_ms, start=0, num=1, withscores=True)
        total, due, oldest = await pipe.execute()
    metrics.QUEUE_DEPTH.labels("due").set(due)
    metrics.QUEUE_DEPTH.labels("scheduled").set(max(total - due, 0))
    metrics.QUEUE_OLDEST_AGE.set(max(now_ms - oldest[0][1], 0) / 1000 if oldest else 0)


async def _read_database() -> None:
    retrying = await Delivery.filter(status=DeliveryStatus.RETRYING).count()
    held = await Delivery.filter(status=DeliveryStatus.HELD).count()
    rows = await Integration.annotate(n=Count("id")).group_by("status").values("status", "n")
    metrics.DELIVERIES_RETRYING.set(retrying)
    metrics.DELIVERIES_HELD.set(held)
    counts = {str(row["status"]): row["n"] for row in rows}
    for status in IntegrationStatus:
        metrics.INTEGRATIONS.labels(status.value).set(counts.get(status.value, 0))


async def _read(source: str, read) -> None:
    try:
        async with asyncio.timeout(SOURCE_TIMEOUT):
            await read
        metrics.SOURCE_UP.labels(source).set(1)
    except Exception as exc:
        metrics.SOURCE_UP.labels(source).set(0)
        log.info("metrics.source_unavailable", source=source, error=repr(exc))


async def refresh_gauges(redis: Redis | None) -> None:
    """Reads the queue from Redis and the counts from the database, concurrently, each with a timeout."""
    reads = [_read("database", _read_database())]
    if redis is not None:
        reads.append(_read("redis", _read_queue(redis)))
    await asyncio.gather(*reads)


def refresher(redis: Redis | None) -> metrics.GaugeRefresher:
    return metrics.GaugeRefresher(lambda: refresh_gauges(redis))


async def start_metrics_server(settings: Settings, redis: Redis | None) -> web.AppRunner:
    """/metrics on HOOKYARD_METRICS_HOST (default HOOKYARD_HOST) : HOOKYARD_METRICS_PORT."""
    assert settings.metrics_port is not None
    return await metrics.start_server(settings.metrics_host or settings.host, settings.metrics_port,
                                      settings.metrics_token, refresher(redis))
