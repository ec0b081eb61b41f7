"""Delivery status changes, published on one Redis channel for every API process to fan out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from app.models import Delivery, DeliveryAttempt

CHANNEL = "hookyard:delivery-updates"

_DELIVERY_FIELDS = (
    "id", "workspace_id", "event_id", "integration_id", "form_id", "attachment_id", "event_type", "status",
    "is_test", "attempt_count", "next_attempt_at", "response_code", "duration_ms", "last_error", "request",
    "response", "created_at", "updated_at", "delivered_at",
)
_ATTEMPT_FIELDS = (
    "id", "delivery_id", "number", "trigger", "request_url", "response_code", "response_headers",
    "response_body", "duration_ms", "error", "created_at",
)


def _snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = value.value if hasattr(value, "value") else value
    return out


def encode_update(delivery: Delivery, attempt: DeliveryAttempt | None, form_slug: str | None) -> bytes:
    return orjson.dumps({
        "delivery": _snapshot(delivery, _DELIVERY_FIELDS),
        "attempt": _snapshot(attempt, _ATTEMPT_FIELDS) if attempt else None,
        "form_slug": form_slug,
        "at": datetime.now(UTC),
    })


async def publish(redis: Redis | None, messages: list[bytes]) -> None:
    if redis is None or not messages:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for message in messages:
            pipe.publish(CHANNEL, message)
        await pipe.execute()


def form_slug_of(delivery: Delivery) -> str | None:
    """The slug of a delivery fetched with its form (select_related("form"))."""
    return delivery.form.slug if delivery.form_id and delivery.form else None


async def announce(redis: Redis | None, deliveries: list[Delivery]) -> None:
    """Publishes the current state of deliveries fetched with their form."""
    await publish(redis, [encode_update(d, None, form_slug_of(d)) for d in deliveries])
