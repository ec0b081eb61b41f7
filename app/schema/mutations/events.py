from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app.core import tracing
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import NotFound, UserError, user_errors
from app.schema.permissions import forms_limit, workspace_by_slug
from app.services import events


@strawberry.input(description="An event to publish.")
class EventPublishInput:
    workspace: str = strawberry.field(description="The slug of the workspace the event belongs to.")
    type: str = strawberry.field(
        description="The event's type: up to 100 characters of segments of a-z, 0-9 and _ joined by `.` or `:`, such "
                    "as `session.completed` (else INVALID).")
    payload: JSON = strawberry.field(
        description="The event's data: a JSON object of at most 256 KiB (INVALID, or TOO_LONG when larger). When the "
                    "event catalog has a JSON Schema for the type, it is checked against it: a STRICT type answers "
                    "INVALID_PAYLOAD per mismatch (`field` `payload/` then the JSON pointer), a LENIENT one publishes "
                    "and lists the mismatches in the event's `schemaErrors`.")
    form_slug: str | None = strawberry.field(
        default=None, description="The form the event comes from, which integrations attached to it hear; NOT_FOUND "
                                  "when the workspace has no such form.")
    idempotency_key: str | None = strawberry.field(
        default=None, description="1-200 characters unique to this event: publishing again with a key the workspace "
                                  "has seen answers the earlier event and its deliveries and creates nothing.")


@strawberry.type(description="The result of `eventPublish`.")
class EventPublishPayload:
    event: t.Event | None = strawberry.field(default=None, description="The event; null when the input was refused.")
    deliveries: list[t.Delivery] = strawberry.field(
        description="One delivery per enabled integration whose filters (and scope) let the event in; HELD for an "
                    "integration that is DISABLED, NEEDS_REAUTH or NEEDS_SETUP.")
    created: bool = strawberry.field(default=False, description="False when the idempotency key was seen before and "
                                                                "the earlier event is answered.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.input(description="One event of an `eventsPublish` call.")
class EventPublishItemInput:
    type: str = strawberry.field(
        description="The event's type, as in `eventPublish`: up to 100 characters of segments of a-z, 0-9 and _ "
                    "joined by `.` or `:` (else INVALID on `events.<index>.type`).")
    payload: JSON = strawberry.field(
        description="The event's data: a JSON object of at most 256 KiB (INVALID, or TOO_LONG when larger), checked "
                    "against the event catalog's JSON Schema for the type like `eventPublish` does (a STRICT type "
                    "answers INVALID_PAYLOAD on `events.<index>.payload/` then the JSON pointer).")
    form_slug: str | None = strawberry.field(
        default=None, description="The form the event comes from; NOT_FOUND when the workspace has no such form (or "
                                  "a portal session limited to some forms names another).")
    idempotency_key: str | None = strawberry.field(
        default=None, description="1-200 characters unique to this event: a key the workspace has seen, or one an "
                                  "earlier event of the same call carries, answers that event (`created` false) and "
                                  "creates nothing.")


@strawberry.input(description="Events to publish in one call.")
class EventsPublishInput:
    workspace: str = strawberry.field(description="The slug of the workspace the events belong to.")
    events: list[EventPublishItemInput] = strawberry.field(
        description=f"The events, at most {events.MAX_BATCH} (else TOO_LONG on `events` and nothing is published); "
                    "each has its own type, payload, form and idempotency key.")


@strawberry.type(description="What became of one event of an `eventsPublish` call.")
class EventPublishResult:
    index: int = strawberry.field(description="The event's position in the input's `events`, from 0.")
    event: t.Event | None = strawberry.field(default=None, description="The event; null when it was refused.")
    deliveries: list[t.Delivery] = strawberry.field(
        description="One delivery per enabled integration whose filters (and scope) let the event in; HELD for an "
                    "integration that is DISABLED, NEEDS_REAUTH or NEEDS_SETUP.")
    created: bool = strawberry.field(default=False, description="False when the event was refused, or when its "
                                                                "idempotency key was seen before (in an earlier call "
                                                                "or earlier in this one) and that event is answered.")
    errors: list[UserError] = strawberry.field(description="What was wrong with this event (fields "
                                                           "`events.<index>.…`); empty when it was published.")


@strawberry.type(description="The result of `eventsPublish`.")
class EventsPublishPayload:
    results: list[EventPublishResult] = strawberry.field(
        description="One result per input event, in the input's order; empty when the input was refused as a whole.")
    errors: list[UserError] = strawberry.field(
        description="Every problem of the call: the input's as a whole (more events than allowed: nothing published) "
                    "and each refused event's (also in its result). Empty when every event was published.")


@strawberry.type
class EventMutations:
    @strawberry.mutation(description="Publishes an event and makes a delivery of it to every integration that "
                                     "receives it; they are sent once the request commits. Needs events:publish and "
                                     "membership of the workspace (else NOT_FOUND); any role may publish.")
    async def event_publish(
        self, info: Info, input: Annotated[EventPublishInput, strawberry.argument(description="The event.")]
    ) -> EventPublishPayload:
        ws = await workspace_by_slug(info, input.workspace, ability="events:publish")
        limit = forms_limit(info)
        if limit is not None and input.form_slug not in limit:  # a portal session limited to some forms
            raise NotFound(f"form {(input.form_slug or '')[:64]!r} not found")
        # The publish's span (tracing on) takes in the commit and the queueing: its jobs join its trace.
        with tracing.span(tracing.PUBLISH_SPAN, attributes={"hookyard.workspace": input.workspace,
                                                            "hookyard.event.type": input.type,
                                                            "hookyard.form": input.form_slug}) as span:
            # No transaction: the publish's writes are one statement (or a transaction of their own).
            async with info.context.unit(transaction=False) as unit:
                done = await events.publish(unit, ws, input.type, input.payload, form_slug=input.form_slug,
                                            idempotency_key=input.idempotency_key)
            result = done.value
            tracing.set_attributes(span, {"hookyard.event.id": result.event.id if result.event else None,
                                          "hookyard.event.created": result.created,
                                          "hookyard.delivery.count": len(result.deliveries)})
        return EventPublishPayload(
            event=t.Event.of(result.event) if result.event else None,
            deliveries=[t.Delivery.of(d) for d in result.deliveries],
            created=result.created,
            errors=user_errors(result.errors),
        )


    @strawberry.mutation(description=f"Publishes up to {events.MAX_BATCH} events in one call and transaction, each "
                                     "with its own type, payload, form and idempotency key, like `eventPublish` "
                                     "would one by one: the valid ones are published (sent once the request "
                                     "commits) and each refused one answers its errors in its result. Needs "
                                     "events:publish and membership of the workspace (else NOT_FOUND); any role may "
                                     "publish. Counts as one request against the publish rate limit.")
    async def events_publish(
        self, info: Info, input: Annotated[EventsPublishInput, strawberry.argument(description="The events.")]
    ) -> EventsPublishPayload:
        ws = await workspace_by_slug(info, input.workspace, ability="events:publish")
        items = [events.EventInput(e.type, e.payload, e.form_slug, e.idempotency_key) for e in input.events]
        # One span for the call (tracing on), taking in the commit and the queueing: every job joins its trace.
        with tracing.span(tracing.PUBLISH_SPAN, attributes={"hookyard.workspace": input.workspace,
                                                            "hookyard.event.count": len(items)}) as span:
            async with info.context.unit(transaction=False) as unit:
                done = await events.publish_many(unit, ws, items, forms=forms_limit(info))
            results: list[events.Published] = done.value or []
            tracing.set_attributes(span, {
                "hookyard.event.created_count": sum(1 for r in results if r.created),
                "hookyard.event.refused_count": sum(1 for r in results if r.event is None),
                "hookyard.delivery.count": sum(len(r.deliveries) for r in results if r.created)})
        return EventsPublishPayload(
            results=[EventPublishResult(index=i, event=t.Event.of(r.event) if r.event else None,
                                        deliveries=[t.Delivery.of(d) for d in r.deliveries], created=r.created,
                                        errors=user_errors(r.errors)) for i, r in enumerate(results)],
            errors=user_errors(done.errors),
        )
