from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from graphql import GraphQLError

from app.realtime import slow_clients
from app.realtime.broadcaster import LiveMessage, SlowSubscriber
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


def _from_message(message: LiveMessage) -> DeliveryUpdate:
    # Every subscriber of a workspace gets the same message: build the objects once, not once per client.
    view = message.views.get("graphql")
    if view is None:
        update = message.update
        view = message.views["graphql"] = DeliveryUpdate(
            status=update.delivery.status,
            delivery=t.Delivery.of(update.delivery),
            attempt=t.DeliveryAttempt.of(update.attempt) if update.attempt else None,
            at=update.at,
            workspace_id=update.delivery.workspace_id,
            shared_results={},
        )
    return view


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
        live = info.context.live
        if live is None:
            raise GraphQLError("live updates are not running in this process")
        broadcaster, watch = live.broadcaster, live.access_watch
        connection = info.context.request
        sub = broadcaster.subscribe(ws.id, on_overflow=_dropper(connection, broadcaster.slow_grace))
        principal = info.context.principal
        watched = watch.watch(connection, principal.token.id, principal.user.id, ws.id)
        try:
            try:
                async for message in sub.updates(integration_id, form_slug, wanted):
                    yield _from_message(message)
            except SlowSubscriber as exc:
                raise GraphQLError(str(exc), extensions={"code": "SLOW_SUBSCRIBER"}) from exc
        finally:
            broadcaster.unsubscribe(sub)
            watch.unwatch(watched)
