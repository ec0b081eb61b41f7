"""Access checks. Another workspace's objects are NOT_FOUND, never FORBIDDEN."""

from __future__ import annotations

from app.models import ADMIN_ROLES, Membership, Plan, Role, Workspace
from app.schema.context import Info
from app.schema.errors import Forbidden, NotFound, PlanRequired, Unauthenticated
from app.services.tokens import Principal


def principal(info: Info) -> Principal:
    p = info.context.principal
    if p is None:
        raise Unauthenticated("a valid API token is required: send 'Authorization: Bearer hyk_...'")
    return p


def require_ability(info: Info, ability: str) -> Principal:
    p = principal(info)
    if not p.can(ability):
        raise Forbidden(f"this token lacks the '{ability}' ability")
    return p


async def membership(info: Info, workspace_id: str) -> Membership | None:
    cache = info.context.memberships
    if workspace_id not in cache:
        cache[workspace_id] = await Membership.get_or_none(
            workspace_id=workspace_id, user_id=principal(info).user.id
        )
    return cache[workspace_id]


async def check_workspace(
    info: Info,
    workspace: Workspace | None,
    *,
    ability: str | None = None,
    admin: bool = False,
    plan: bool = False,
    what: str = "workspace",
) -> Workspace:
    """Raises unless the viewer may act in this workspace as asked."""
    principal(info)
    if workspace is None or await membership(info, workspace.id) is None:
        raise NotFound(f"{what} not found")
    if ability:
        require_ability(info, ability)
    role = (await membership(info, workspace.id)).role
    if admin and role not in ADMIN_ROLES:
        raise Forbidden("only workspace owners and admins may do this")
    if plan and info.context.runtime.settings.enforce_plans and workspace.plan == Plan.FREE:
        raise PlanRequired("integrations require the starter or professional plan")
    return workspace


async def workspace_by_slug(info: Info, slug: str, **checks) -> Workspace:
    # One query for the workspace and the viewer's membership in it; check_workspace then finds
    # the membership cached. Not a member reads the same as no such workspace.
    viewer = principal(info)
    member = None
    if len(slug) <= 64:  # no longer slug exists, and tortoise refuses to compare one with the column
        member = await Membership.get_or_none(workspace__slug=slug, user_id=viewer.user.id).select_related("workspace")
    if member is None:
        raise NotFound("workspace not found")
    info.context.memberships[member.workspace_id] = member
    return await check_workspace(info, member.workspace, **checks)


async def role_in(info: Info, workspace_id: str) -> Role | None:
    m = await membership(info, workspace_id)
    return m.role if m else None
