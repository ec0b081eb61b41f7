from __future__ import annotations

import strawberry

from app import models
from app.core.ids import prefix_of
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import UserError, user_errors
from app.schema.permissions import check_workspace, principal, workspace_by_slug
from app.services import forms


@strawberry.input
class FormCreateInput:
    workspace: str
    slug: str
    name: str


@strawberry.type
class FormPayload:
    form: t.Form | None = None
    errors: list[UserError]


@strawberry.input
class FormUpdateInput:
    id: strawberry.ID
    slug: str | None = None
    name: str | None = None


@strawberry.input
class FormDeleteInput:
    id: strawberry.ID


@strawberry.type
class FormDeletePayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


async def load_form(info: Info, form_id: str) -> models.Form:
    principal(info)
    form = None
    if prefix_of(form_id) == "frm":  # anything else is no id of ours, maybe too long to look up
        form = await models.Form.get_or_none(id=form_id).select_related("workspace")
    await check_workspace(info, form.workspace if form else None, ability="forms:write", what="form")
    return form


@strawberry.type
class FormMutations:
    @strawberry.mutation
    async def form_create(self, info: Info, input: FormCreateInput) -> FormPayload:
        ws = await workspace_by_slug(info, input.workspace, ability="forms:write")
        async with info.context.unit():
            done = await forms.create_form(ws, input.slug, input.name)
        return FormPayload(form=t.Form.of(done.value) if done.ok else None, errors=user_errors(done.errors))

    @strawberry.mutation
    async def form_update(self, info: Info, input: FormUpdateInput) -> FormPayload:
        form = await load_form(info, input.id)
        async with info.context.unit():
            done = await forms.update_form(form, input.slug, input.name)
        return FormPayload(form=t.Form.of(form), errors=user_errors(done.errors))

    @strawberry.mutation
    async def form_delete(self, info: Info, input: FormDeleteInput) -> FormDeletePayload:
        form = await load_form(info, input.id)
        await form.delete()
        return FormDeletePayload(deleted_id=input.id, errors=[])
