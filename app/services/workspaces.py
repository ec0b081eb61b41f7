"""Workspaces and their members."""

from __future__ import annotations

import re

from app.config import Settings
from app.core.errors import CommonErrorCode, FieldError, WorkspaceErrorCode
from app.core.ids import prefix_of
from app.models import Membership, Plan, Role, User, Workspace
from app.services import access_cache
from app.services.result import Done
from app.services.validation import validate_name, validate_slug

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def default_plan(settings: Settings) -> Plan:
    """The plan of a workspace someone other than an instance operator creates (HOOKYARD_DEFAULT_PLAN)."""
    return Plan(settings.default_plan)


async def create_workspace(
    owner: User, slug: str, name: str, plan: Plan = Plan.FREE
) -> Done[Workspace]:
    """A workspace owned by `owner`. Choosing `plan` is for instance operators (the caller checks)."""
    errors = [e for e in (validate_slug(slug, "slug"), validate_name(name, "name")) if e]
    if not errors and await Workspace.exists(slug=slug):
        errors.append(FieldError("slug", f"the slug {slug!r} is taken", CommonErrorCode.TAKEN))
    if errors:
        return Done.refused(*errors)
    workspace = await Workspace.create(slug=slug, name=name.strip(), plan=plan)
    await Membership.create(workspace=workspace, user=owner, role=Role.OWNER)
    return Done(workspace)


async def set_plan(workspace: Workspace, plan: Plan) -> Done[Workspace]:
    """An instance operator sets or changes a workspace's plan."""
    if workspace.plan != plan:
        workspace.plan = plan
        await workspace.save(update_fields=["plan"])
        access_cache.forget_memberships()
    return Done(workspace)


async def add_member(
    workspace: Workspace, email: str, role: Role, name: str = ""
) -> Done[Membership]:
    email = (email or "").strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 254:
        return Done.refused(FieldError("email", "is not an email address", CommonErrorCode.INVALID))
    if len(name) > 200:  # the column holds 200; a longer name would fail the insert
        return Done.refused(FieldError("name", "must be at most 200 characters", CommonErrorCode.TOO_LONG))
    user, _ = await User.get_or_create(email=email, defaults={"name": name})
    membership = await Membership.get_or_none(workspace=workspace, user=user)
    if membership is not None:
        if membership.role == Role.OWNER and role != Role.OWNER and await _owner_count(workspace) <= 1:
            return Done.refused(FieldError("role", "a workspace needs at least one owner",
                                           WorkspaceErrorCode.LAST_OWNER))
        membership.role = role
        await membership.save(update_fields=["role"])
        access_cache.forget_memberships()
    else:
        membership = await Membership.create(workspace=workspace, user=user, role=role)
    await membership.fetch_related("user")
    return Done(membership)


async def remove_member(workspace: Workspace, user_id: str) -> Done[str]:
    membership = None
    if prefix_of(user_id) == "usr":  # anything else is no id of ours, maybe too long to look up
        membership = await Membership.get_or_none(workspace=workspace, user_id=user_id)
    if membership is None:
        return Done.refused(FieldError("userId", "is not a member of this workspace", CommonErrorCode.NOT_FOUND))
    if membership.role == Role.OWNER and await _owner_count(workspace) <= 1:
        return Done.refused(FieldError("userId", "the last owner cannot be removed", WorkspaceErrorCode.LAST_OWNER))
    await membership.delete()
    access_cache.forget_memberships()
    return Done(user_id)


async def _owner_count(workspace: Workspace) -> int:
    return await Membership.filter(workspace=workspace, role=Role.OWNER).count()
