"""The event catalog: `eventTypeRegister`, `eventTypeUpdate`, `eventTypeDeprecate`."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app import models
from app.core.errors import CommonErrorCode, FieldError
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import UserError, user_errors
from app.schema.permissions import refuse_portal_session, require_ability, workspace_by_slug
from app.services import event_catalog
from app.services.result import Done
from app.services.tokens import OPERATOR_ABILITY

CATALOG_ABILITY = "events:publish"
_NEEDS = ("Needs an API token (not a portal session, else FORBIDDEN): for a workspace's type, events:publish and the "
          "owner or admin role (else FORBIDDEN; a workspace you are not in is NOT_FOUND); for a global type, "
          "instance:operator (else FORBIDDEN)")
_WORKSPACE = "The slug of the workspace whose catalog holds the type; leave it out with `global: true`."
_GLOBAL = ("True for the global catalog, whose types every workspace sees (needs instance:operator); leave "
           "`workspace` out then.")
_NAME = ("The event type, such as `session.completed`: up to 100 characters of segments of a-z, 0-9 and _ joined "
         "by `.` or `:` (else INVALID); `integration.*` names are Hookyard's own (NOT_ALLOWED).")


@strawberry.input(description="An event type to add to the catalog.")
class EventTypeRegisterInput:
    name: str = strawberry.field(description=_NAME + " TAKEN when the catalog has it already.")
    workspace: str | None = strawberry.field(default=None, description=_WORKSPACE)
    is_global: bool = strawberry.field(name="global", default=False, description=_GLOBAL)
    description: str = strawberry.field(
        default="", description="What the event means, for the people choosing events: up to 2000 characters.")
    schema: JSON | None = strawberry.field(
        default=None, description="A JSON Schema (draft 2020-12 unless `$schema` names another) that published "
                                  "payloads are checked against; at most 64 KiB, `$ref`s only inside it (else "
                                  "INVALID_SCHEMA, `field` `schema/` then the JSON pointer). Null: no checking.")
    example: JSON | None = strawberry.field(
        default=None, description="An example payload, a JSON object of at most 64 KiB that must match the schema "
                                  "(else INVALID_PAYLOAD, `field` `example/` then the JSON pointer); "
                                  "`integrationTest` sends it.")
    validation: t.EventValidation = strawberry.field(
        default=models.EventValidation.LENIENT,
        description="What publishing a payload that does not match the schema does; LENIENT when left out.")


@strawberry.input(description="Changes to an event type of the catalog; what is left out stays as it is.")
class EventTypeUpdateInput:
    name: str = strawberry.field(description="The registered event type (NOT_FOUND when the catalog has none).")
    workspace: str | None = strawberry.field(default=None, description=_WORKSPACE)
    is_global: bool = strawberry.field(name="global", default=False, description=_GLOBAL)
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="The new description, up to 2000 characters; null clears it.")
    schema: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="The new JSON Schema, checked as for `eventTypeRegister`; null removes "
                                              "it (payloads are not checked any more). The example, new or kept, "
                                              "must match it.")
    example: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="The new example payload, which must match the schema; null removes "
                                              "it.")
    validation: t.EventValidation | None = strawberry.field(
        default=strawberry.UNSET, description="STRICT or LENIENT; null or left out keeps it.")


@strawberry.input(description="An event type of the catalog to deprecate, or to restore.")
class EventTypeDeprecateInput:
    name: str = strawberry.field(description="The registered event type (NOT_FOUND when the catalog has none).")
    workspace: str | None = strawberry.field(default=None, description=_WORKSPACE)
    is_global: bool = strawberry.field(name="global", default=False, description=_GLOBAL)
    reason: str | None = strawberry.field(
        default=None, description="Why, such as what to use instead: up to 500 characters; left out keeps the "
                                  "earlier one.")
    deprecated: bool = strawberry.field(
        default=True, description="False restores a deprecated type (and forgets the reason).")


@strawberry.type(description="The result of `eventTypeRegister`, `eventTypeUpdate` or `eventTypeDeprecate`.")
class EventTypePayload:
    event_type: t.EventType | None = strawberry.field(
        default=None, description="The type as the catalog holds it now (`lastSeenAt` is not filled in here); null "
                                  "when the input was refused.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


async def _catalog(info: Info, workspace: str | None, is_global: bool) -> tuple[models.Workspace | None,
                                                                                list[FieldError]]:
    """Whose catalog the input names, once the caller may change it."""
    refuse_portal_session(info, "change the event catalog")
    if is_global:
        require_ability(info, OPERATOR_ABILITY)
        if workspace is not None:
            return None, [FieldError("workspace", "leave it out with global: true")]
        return None, []
    if workspace is None:
        return None, [FieldError("workspace", "name the workspace, or set global: true", CommonErrorCode.REQUIRED)]
    return await workspace_by_slug(info, workspace, ability=CATALOG_ABILITY, admin=True), []


def _answer(done: Done[models.EventType]) -> EventTypePayload:
    if not done.ok:
        return EventTypePayload(errors=user_errors(done.errors))
    m = done.value
    entry = event_catalog.CatalogEntry(name=m.name, system=False, registered=m, description=m.description)
    return EventTypePayload(event_type=t.EventType.of(entry), errors=[])


def _keep(value):
    return event_catalog.KEEP if value is strawberry.UNSET else value


@strawberry.type
class EventTypeMutations:
    @strawberry.mutation(description="Adds an event type to a workspace's catalog, or with `global: true` to every "
                                     "workspace's, with a description, a JSON Schema its payloads are checked against "
                                     "and an example. " + _NEEDS + ".")
    async def event_type_register(
        self, info: Info, input: Annotated[EventTypeRegisterInput, strawberry.argument(description="The type.")]
    ) -> EventTypePayload:
        ws, errors = await _catalog(info, input.workspace, input.is_global)
        if errors:
            return EventTypePayload(errors=user_errors(errors))
        spec = event_catalog.EventTypeSpec(name=input.name, description=input.description, schema=input.schema,
                                           example=input.example, validation=models.EventValidation(input.validation))
        async with info.context.unit() as unit:
            done = await event_catalog.register(unit, ws, spec)
        return _answer(done)

    @strawberry.mutation(description="Changes an event type of the catalog: description, schema, example, "
                                     "validation. Publishing uses the new schema at once. " + _NEEDS + ".")
    async def event_type_update(
        self, info: Info, input: Annotated[EventTypeUpdateInput, strawberry.argument(description="The changes.")]
    ) -> EventTypePayload:
        ws, errors = await _catalog(info, input.workspace, input.is_global)
        if errors:
            return EventTypePayload(errors=user_errors(errors))
        changes = event_catalog.Changes(description=_keep(input.description), schema=_keep(input.schema),
                                        example=_keep(input.example), validation=_keep(input.validation))
        async with info.context.unit() as unit:
            done = await event_catalog.update(unit, ws, input.name, changes)
        return _answer(done)

    @strawberry.mutation(description="Deprecates an event type of the catalog (or restores it): `eventTypes` marks "
                                     "it, and its events are still checked and delivered. " + _NEEDS + ".")
    async def event_type_deprecate(
        self, info: Info, input: Annotated[EventTypeDeprecateInput, strawberry.argument(description="The type.")]
    ) -> EventTypePayload:
        ws, errors = await _catalog(info, input.workspace, input.is_global)
        if errors:
            return EventTypePayload(errors=user_errors(errors))
        async with info.context.unit() as unit:
            done = await event_catalog.deprecate(unit, ws, input.name, input.reason, input.deprecated)
        return _answer(done)
