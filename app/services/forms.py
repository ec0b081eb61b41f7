"""Forms: the sources of events inside a workspace."""

from __future__ import annotations

from app.core.errors import CommonErrorCode, FieldError
from app.models import Form, Workspace
from app.services.result import Done
from app.services.validation import validate_name, validate_slug


async def create_form(workspace: Workspace, slug: str, name: str) -> Done[Form]:
    errors = [e for e in (validate_slug(slug, "slug"), validate_name(name, "name")) if e]
    if not errors and await Form.exists(workspace=workspace, slug=slug):
        errors.append(FieldError("slug", f"a form with slug {slug!r} exists in this workspace", CommonErrorCode.TAKEN))
    if errors:
        return Done.refused(*errors)
    return Done(await Form.create(workspace=workspace, slug=slug, name=name.strip()))


async def update_form(form: Form, slug: str | None, name: str | None) -> Done[Form]:
    errors = []
    if slug is not None:
        if err := validate_slug(slug, "slug"):
            errors.append(err)
        elif slug != form.slug and await Form.exists(workspace_id=form.workspace_id, slug=slug):
            errors.append(FieldError("slug", f"a form with slug {slug!r} exists in this workspace",
                                     CommonErrorCode.TAKEN))
    if name is not None and (err := validate_name(name, "name")):
        errors.append(err)
    if errors:
        return Done.refused(*errors)
    if slug is not None:
        form.slug = slug
    if name is not None:
        form.name = name.strip()
    await form.save()
    return Done(form)
