from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app import models
from app.core.ids import prefix_of
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import NotFound, UserError, user_errors
from app.schema.permissions import check_workspace, form_visible, principal, require_form_visible, workspace_by_slug
from app.services import attachments

WRITE = {"ability": "integrations:write", "admin": True, "plan": True}


_EVENTS = ("Which of the form's event types go through: names, `*`, or prefix wildcards such as `session.*` "
           "(INVALID_EVENT_FILTER, EMPTY_EVENT_FILTER for an empty list).")
_LOGIC = ("Conditions on the payload, a node `{field, op, value}` (op: eq, neq, gt, gte, lt, lte, in, contains, "
          "exists, startsWith) or `{all: [...]}`, `{any: [...]}`, `{not: ...}`; INVALID_LOGIC when malformed.")


@strawberry.input(description="Which integration to attach to which form, and how.")
class FormIntegrationAttachInput:
    workspace: str = strawberry.field(description="The slug of the workspace of the form and integration.")
    form_slug: str = strawberry.field(description="The form's slug; NOT_FOUND when the workspace has no such form.")
    integration_id: strawberry.ID = strawberry.field(
        description="The integration to attach; NOT_FOUND when it is not in the workspace, TAKEN when it is attached "
                    "to the form already.")
    events: list[str] | None = strawberry.field(default=None, description=_EVENTS + " Every event (`*`) when left "
                                                                                     "out.")
    enabled: bool | None = strawberry.field(default=None, description="Whether the attachment passes events on; "
                                                                      "true when left out.")
    notify_on_failure: bool | None = strawberry.field(
        default=None, description="Publish `integration.delivery_failed` to the other integrations when a delivery "
                                  "through this attachment fails; false when left out.")
    logic: JSON | None = strawberry.field(default=None, description=_LOGIC + " No conditions when left out.")


@strawberry.type(description="The result of `formIntegrationAttach` and `formIntegrationUpdate`.")
class FormIntegrationPayload:
    form_integration: t.FormIntegration | None = strawberry.field(
        default=None, description="The attachment as it is now; null when attaching was refused.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.input(description="What to change on an attachment; what is left out stays as it is.")
class FormIntegrationUpdateInput:
    id: strawberry.ID = strawberry.field(description="The attachment's ID (`fin_...`).")
    events: list[str] | None = strawberry.field(default=None, description=_EVENTS)
    enabled: bool | None = strawberry.field(default=None, description="Whether the attachment passes events on.")
    notify_on_failure: bool | None = strawberry.field(
        default=None, description="Publish `integration.delivery_failed` to the other integrations when a delivery "
                                  "through this attachment fails.")
    logic: JSON | None = strawberry.field(default=None, description=_LOGIC + " `{}` removes the conditions.")


@strawberry.input(description="Which attachment to remove.")
class FormIntegrationDetachInput:
    id: strawberry.ID = strawberry.field(description="The attachment's ID (`fin_...`).")


@strawberry.type(description="The result of `formIntegrationDetach`.")
class FormIntegrationDetachPayload:
    detached_id: strawberry.ID | None = strawberry.field(default=None, description="The ID of the removed attachment.")
    errors: list[UserError] = strawberry.field(description="Always empty; an unknown attachment is NOT_FOUND.")


async def load_attachment(info: Info, attachment_id: str, **checks) -> models.FormIntegration:
    principal(info)
    att = None
    if prefix_of(attachment_id) == "fin":  # anything else is no id of ours, maybe too long to look up
        att = await models.FormIntegration.get_or_none(id=attachment_id).select_related("integration__workspace")
    await check_workspace(info, att.integration.workspace if att else None, what="form integration", **checks)
    await require_form_visible(info, att.form_id, "form integration")
    return att


@strawberry.type
class FormIntegrationMutations:
    @strawberry.mutation(description="Attaches an integration to a form and switches the integration to scope FORMS, "
                                     "so it then hears only its forms' events. Needs integrations:write, the owner or "
                                     "admin role (else FORBIDDEN) and a paid plan where plans are enforced "
                                     "(PLAN_REQUIRED).")
    async def form_integration_attach(
        self, info: Info,
        input: Annotated[FormIntegrationAttachInput, strawberry.argument(description="The form, integration and "
                                                                                     "options.")],
    ) -> FormIntegrationPayload:
        ws = await workspace_by_slug(info, input.workspace, **WRITE)
        form = None
        if len(input.form_slug) <= 64:  # no longer slug exists, and tortoise refuses to compare one
            form = await models.Form.get_or_none(workspace=ws, slug=input.form_slug)
        integration = None
        if prefix_of(input.integration_id) == "int":  # else no id of ours, maybe too long to look up
            integration = await models.Integration.get_or_none(id=input.integration_id, workspace=ws)
        if form is None or not form_visible(info, form.slug):
            raise NotFound(f"form {input.form_slug!r} not found")
        if integration is None:
            raise NotFound("integration not found")
        async with info.context.unit() as unit:
            done = await attachments.attach(
                unit, form, integration, events=input.events, enabled=input.enabled,
                notify_on_failure=input.notify_on_failure, logic=input.logic,
            )
        return FormIntegrationPayload(form_integration=t.FormIntegration.of(done.value) if done.ok else None,
                                      errors=user_errors(done.errors))

    @strawberry.mutation(description="Changes an attachment's filters, conditions or switches. Needs "
                                     "integrations:write, the owner or admin role (else FORBIDDEN) and a paid plan "
                                     "where plans are enforced (PLAN_REQUIRED); an unknown attachment is NOT_FOUND.")
    async def form_integration_update(
        self, info: Info,
        input: Annotated[FormIntegrationUpdateInput, strawberry.argument(description="The attachment and changes.")],
    ) -> FormIntegrationPayload:
        att = await load_attachment(info, input.id, **WRITE)
        async with info.context.unit() as unit:
            done = await attachments.update_attachment(
                unit, att, events=input.events, enabled=input.enabled, notify_on_failure=input.notify_on_failure,
                logic=input.logic or None, clear_logic=input.logic == {},
            )
        return FormIntegrationPayload(form_integration=t.FormIntegration.of(att), errors=user_errors(done.errors))

    @strawberry.mutation(description="Removes an attachment; the integration keeps scope FORMS, so with no "
                                     "attachments left it receives nothing. Needs integrations:write and the owner or "
                                     "admin role (else FORBIDDEN), on any plan; an unknown attachment is NOT_FOUND.")
    async def form_integration_detach(
        self, info: Info,
        input: Annotated[FormIntegrationDetachInput, strawberry.argument(description="The attachment.")],
    ) -> FormIntegrationDetachPayload:
        att = await load_attachment(info, input.id, ability="integrations:write", admin=True)
        async with info.context.unit() as unit:
            done = await attachments.detach(unit, att)
        return FormIntegrationDetachPayload(detached_id=done.value, errors=user_errors(done.errors))
