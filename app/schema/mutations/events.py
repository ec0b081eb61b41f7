from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import UserError, user_errors
from app.schema.permissions import workspace_by_slug
from app.services import events


@strawberry.input
class EventPublishInput:
    workspace: str
    type: str
    payload: JSON
    form_slug: str | None = None
    idempotency_key: str | None = None


@strawberry.type
class EventPublishPayload:
    event: t.Event | None = None
    deliveries: list[t.Delivery]
    created: bool = strawberry.field(default=False, description="false when the idempotency key was seen before")
    errors: list[UserError]


@strawberry.type
class EventMutations:
    @strawberry.mutation
    async def event_publish(self, info: Info, input: EventPublishInput) -> EventPublishPayload:
        ws = await workspace_by_slug(info, input.workspace, ability="events:publish")
        async with info.context.unit() as unit:
            done = await events.publish(unit, ws, input.type, input.payload, form_slug=input.form_slug,
                                        idempotency_key=input.idempotency_key)
        result = done.value
        return EventPublishPayload(
            event=t.Event.of(result.event) if result.event else None,
            deliveries=[t.Delivery.of(d) for d in result.deliveries],
            created=result.created,
            errors=user_errors(result.errors),
        )
