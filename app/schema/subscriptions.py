from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from graphql import GraphQLError

from app import models
from app.realtime import slow_clients
from app.realtime.access_watch import get_access_watch
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
    workspace_id: strawberry.Private[str]
    # Filled by app.schema.shared_events: one execution per distinct selection, shared by its subscribers.
    shared_results: strawberry.Private[dict]


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
        workspace_id=delivery.workspace_id,
        shared_results={},
    )


def _dropper(connection, grace: float):
    """Over WebSockets a subscriber that falls too far behind has its connection closed at once."""
    if connection.scope["type"] != "websocket":
        return None
    return lambda sub: slow_clients.drop(connection, sub.buffer, grace)


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
        connection = info.context.request
        sub = broadcaster.subscribe(ws.id, on_overflow=_dropper(connection, broadcaster.slow_grace))
        watch = get_access_watch()
        principal = info.context.principal
        watched = watch.watch(connection, principal.token.id, principal.user.id, ws.id) if watch else None
        try:
            try:
                async for message in sub.updates(integration_id, form_slug, wanted):
                    yield _from_message(message)
            except SlowSubscriber as exc:
                raise GraphQLError(str(exc), extensions={"code": "SLOW_SUBSCRIBER"}) from exc
        finally:
            broadcaster.unsubscribe(sub)
            if watched:
                watch.unwatch(watched)
