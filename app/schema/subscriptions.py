from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from graphql import GraphQLError

from app import models
from app.realtime.broadcaster import SlowSubscriber, get_broadcaster
from app.schema import types as t
from app.schema.context import Info
from app.schema.permissions import workspace_by_slug


@strawberry.type
class DeliveryUpdate:
    status: t.DeliveryStatus
    delivery: t.Delivery
    attempt: t.DeliveryAttempt | None
    at: datetime


def _from_message(message: dict) -> DeliveryUpdate:
    # Every subscriber of a workspace gets the same dict: build the objects once, not once per client.
    cached = message.get("_update")
    if cached is None:
        cached = message["_update"] = _build(message)
    return cached


def _build(message: dict) -> DeliveryUpdate:
    delivery = models.Delivery(**message["delivery"])
    attempt = models.DeliveryAttempt(**message["attempt"]) if message.get("attempt") else None
    return DeliveryUpdate(
        status=delivery.status,
        delivery=t.Delivery.of(delivery),
        attempt=t.DeliveryAttempt.of(attempt) if attempt else None,
        at=datetime.fromisoformat(message["at"]),
    )


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def delivery_updates(
        self,
        info: Info,
        workspace: str,
        integration_id: strawberry.ID | None = None,
        form_slug: str | None = None,
        status: list[t.DeliveryStatus] | None = None,
    ) -> AsyncGenerator[DeliveryUpdate, None]:
        ws = await workspace_by_slug(info, workspace, ability="deliveries:read", admin=True)
        wanted = {s.value for s in status} if status else None
        broadcaster = get_broadcaster()
        sub = broadcaster.subscribe(ws.id)
        try:
            while True:
                try:
                    message = await sub.next()
                except SlowSubscriber as exc:
                    raise GraphQLError(str(exc), extensions={"code": "SLOW_SUBSCRIBER"}) from exc
                d = message["delivery"]
                if integration_id and d["integration_id"] != integration_id:
                    continue
                if form_slug and message.get("form_slug") != form_slug:
                    continue
                if wanted and d["status"] not in wanted:
                    continue
                yield _from_message(message)
        finally:
            broadcaster.unsubscribe(sub)
