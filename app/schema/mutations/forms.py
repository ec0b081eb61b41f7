from __future__ import annotations

from typing import Annotated

import strawberry

from app import models
from app.core.ids import prefix_of
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import UserError, user_errors
from app.schema.permissions import check_workspace, form_visible, principal, workspace_by_slug
from app.services import forms

_SLUG = ("1-63 lowercase letters, digits or dashes, starting with a letter or digit (INVALID_SLUG), unique in the "
         "workspace (TAKEN).")
_NAME = "A display name of 1-200 characters (REQUIRED, TOO_LONG)."


@strawberry.input(description="A new form.")
class FormCreateInput:
    workspace: str = strawberry.field(description="The slug of the workspace to create it in.")
    slug: str = strawberry.field(description="The form's short name: " + _SLUG)
    name: str = strawberry.field(description=_NAME)


@strawberry.type(description="The result of `formCreate` and `formUpdate`.")
class FormPayload:
    form: t.Form | None = strawberry.field(
        default=None, description="The form as it is now (unchanged when the update was refused); null when "
                                  "creating it was refused.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.input(description="What to change on a form; what is left out stays as it is.")
class FormUpdateInput:
    id: strawberry.ID = strawberry.field(description="The form's ID (`frm_...`).")
    slug: str | None = strawberry.field(default=None, description="A new slug: " + _SLUG)
    name: str | None = strawberry.field(default=None, description="A new name: " + _NAME)


@strawberry.input(description="Which form to delete.")
class FormDeleteInput:
    id: strawberry.ID = strawberry.field(description="The form's ID (`frm_...`).")


@strawberry.type(description="The result of `formDelete`.")
class FormDeletePayload:
    deleted_id: strawberry.ID | None = strawberry.field(default=None, description="The ID of the deleted form.")
    errors: list[UserError] = strawberry.field(description="Always empty; an unknown form is NOT_FOUND.")


async def load_form(info: Info, form_id: str) -> models.Form:
    principal(info)
    form = None
    if prefix_of(form_id) == "frm":  # anything else is no id of ours, maybe too long to look up
        form = await models.Form.get_or_none(id=form_id).select_related("workspace")
    if form is not None and not form_visible(info, form.slug):
        form = None  # outside a portal session's forms
    await check_workspace(info, form.workspace if form else None, ability="forms:write", what="form")
    return form


@strawberry.type
class FormMutations:
    @strawberry.mutation(description="Creates a form. Needs forms:write and membership of the workspace (else "
                                     "NOT_FOUND); any role may.")
    async def form_create(
        self, info: Info, input: Annotated[FormCreateInput, strawberry.argument(description="The new form.")]
    ) -> FormPayload:
        ws = await workspace_by_slug(info, input.workspace, ability="forms:write")
        async with info.context.unit():
            done = await forms.create_form(ws, input.slug, input.name)
        return FormPayload(form=t.Form.of(done.value) if done.ok else None, errors=user_errors(done.errors))

    @strawberry.mutation(description="Changes a form's slug or name. Needs forms:write and membership of its "
                                     "workspace (an unknown form is NOT_FOUND); any role may.")
    async def form_update(
        self, info: Info, input: Annotated[FormUpdateInput, strawberry.argument(description="The form and changes.")]
    ) -> FormPayload:
        form = await load_form(info, input.id)
        async with info.context.unit():
            done = await forms.update_form(form, input.slug, input.name)
        return FormPayload(form=t.Form.of(form), errors=user_errors(done.errors))

    @strawberry.mutation(description="Deletes a form and its attachments; its events and deliveries stay, no longer "
                                     "tied to a form. Needs forms:write and membership of its workspace (an unknown "
                                     "form is NOT_FOUND); any role may.")
    async def form_delete(
        self, info: Info, input: Annotated[FormDeleteInput, strawberry.argument(description="The form.")]
    ) -> FormDeletePayload:
        form = await load_form(info, input.id)
        await form.delete()
        return FormDeletePayload(deleted_id=input.id, errors=[])
