from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from app import models
from app.core.ids import prefix_of
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import NotFound, UserError, user_errors
from app.schema.permissions import check_workspace, principal, workspace_by_slug
from app.services import attachments

WRITE = {"ability": "integrations:write", "admin": True, "plan": True}


@strawberry.input
class FormIntegrationAttachInput:
    workspace: str
    form_slug: str
    integration_id: strawberry.ID
    events: list[str] | None = None
    enabled: bool | None = None
    notify_on_failure: bool | None = None
    logic: JSON | None = None


@strawberry.type
class FormIntegrationPayload:
    form_integration: t.FormIntegration | None = None
    errors: list[UserError]


@strawberry.input
class FormIntegrationUpdateInput:
    id: strawberry.ID
    events: list[str] | None = None
    enabled: bool | None = None
    notify_on_failure: bool | None = None
    logic: JSON | None = strawberry.field(default=None, description="{} removes the conditions")


@strawberry.input
class FormIntegrationDetachInput:
    id: strawberry.ID


@strawberry.type
class FormIntegrationDetachPayload:
    detached_id: strawberry.ID | None = None
    errors: list[UserError]


async def load_attachment(info: Info, attachment_id: str, **checks) -> models.FormIntegration:
    principal(info)
    att = None
    if prefix_of(attachment_id) == "fin":  # anything else is no id of ours, maybe too long to look up
        att = await models.FormIntegration.get_or_none(id=attachment_id).select_related("integration__workspace")
    await check_workspace(info, att.integration.workspace if att else None, what="form integration", **checks)
    return att


@strawberry.type
class FormIntegrationMutations:
    @strawberry.mutation
    async def form_integration_attach(
        self, info: Info, input: FormIntegrationAttachInput
    ) -> FormIntegrationPayload:
        ws = await workspace_by_slug(info, input.workspace, **WRITE)
        form = None
        if len(input.form_slug) <= 64:  # no longer slug exists, and tortoise refuses to compare one
            form = await models.Form.get_or_none(workspace=ws, slug=input.form_slug)
        integration = None
        if prefix_of(input.integration_id) == "int":  # else no id of ours, maybe too long to look up
            integration = await models.Integration.get_or_none(id=input.integration_id, workspace=ws)
        if form is None:
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

    @strawberry.mutation
    async def form_integration_update(
        self, info: Info, input: FormIntegrationUpdateInput
    ) -> FormIntegrationPayload:
        att = await load_attachment(info, input.id, **WRITE)
        async with info.context.unit() as unit:
            done = await attachments.update_attachment(
                unit, att, events=input.events, enabled=input.enabled, notify_on_failure=input.notify_on_failure,
                logic=input.logic or None, clear_logic=input.logic == {},
            )
        return FormIntegrationPayload(form_integration=t.FormIntegration.of(att), errors=user_errors(done.errors))

    @strawberry.mutation
    async def form_integration_detach(
        self, info: Info, input: FormIntegrationDetachInput
    ) -> FormIntegrationDetachPayload:
        att = await load_attachment(info, input.id, ability="integrations:write", admin=True)
        async with info.context.unit() as unit:
            done = await attachments.detach(unit, att)
        return FormIntegrationDetachPayload(detached_id=done.value, errors=user_errors(done.errors))
