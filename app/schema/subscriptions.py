from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError

from app.realtime import live_operations, slow_clients
from app.realtime.broadcaster import LiveMessage, SlowSubscriber
from app.schema import shared_events
from app.schema import types as t
from app.schema.context import Info
from app.schema.permissions import workspace_by_slug


@strawberry.type(description="A delivery changed: it was made, queued, attempted, retried, held or finished.")
class DeliveryUpdate:
    status: t.DeliveryStatus = strawberry.field(description="The delivery's status after the change.")
    delivery: t.Delivery = strawberry.field(description="The delivery as it is after the change.")
    attempt: t.DeliveryAttempt | None = strawberry.field(
        description="The attempt that caused the change; null when the change was not an attempt.")
    at: datetime = strawberry.field(description="When the change happened.")
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


@strawberry.type(description="Live updates, over a WebSocket (graphql-transport-ws, or the legacy graphql-ws).")
class Subscription:
    @strawberry.subscription(
        description="Every change to the workspace's deliveries, as it happens. Needs deliveries:read and the owner or "
                    "admin role (else FORBIDDEN; NOT_FOUND for a workspace you are not in). A subscriber that falls "
                    "too far behind is dropped (its WebSocket closed, else a SLOW_SUBSCRIBER error), and losing access "
                    "later closes the WebSocket with 4403.")
    async def delivery_updates(
        self,
        info: Info,
        workspace: Annotated[str, strawberry.argument(description="The workspace's slug.")],
        integration_id: Annotated[strawberry.ID | None, strawberry.argument(
            description="Only updates of deliveries to this integration.")] = None,
        form_slug: Annotated[str | None, strawberry.argument(
            description="Only updates of deliveries of this form's events.")] = None,
        status: Annotated[list[t.DeliveryStatus] | None, strawberry.argument(
            description="Only updates that leave the delivery in one of these statuses.")] = None,
    ) -> AsyncGenerator[DeliveryUpdate, None]:
        ws = await workspace_by_slug(info, workspace, ability="deliveries:read", admin=True)
        wanted = {s.value for s in status} if status else None
        live = info.context.live
        if live is None:
            raise GraphQLError("live updates are not running in this process")
        broadcaster, watch = live.broadcaster, live.access_watch
        connection = info.context.request
        principal = info.context.principal
        sub = broadcaster.subscribe(ws.id, on_overflow=_dropper(connection, broadcaster.slow_grace),
                                    integration_id=integration_id, form_slug=form_slug, statuses=wanted,
                                    forms=principal.form_slugs)
        watched = watch.watch(connection, principal.credential_id, principal.user.id, ws.id)
        # Over a WebSocket, an update already executed for a subscriber with the same selection and access is
        # sent from here, without going through the subscription machinery again (see live_operations).
        operation = live_operations.CURRENT.get()
        raw = info._raw_info
        key = shared_events.subscription_key(raw.operation, raw.variable_values) if operation else None
        context = info.context
        try:
            try:
                while True:  # filtered by the broadcaster as it dispatches
                    update = _from_message(await sub.next())
                    if key is not None and (data := shared_events.executed_data(update, key, context)) is not None:
                        try:
                            await operation.send_data(data)
                        except Exception:  # the connection went away: end as the handler would, not as a GraphQL error
                            return
                        continue
                    yield update
            except SlowSubscriber as exc:
                raise GraphQLError(str(exc), extensions={"code": "SLOW_SUBSCRIBER"}) from exc
        finally:
            broadcaster.unsubscribe(sub)
            watch.unwatch(watched)
