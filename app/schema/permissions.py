"""Access checks. Another workspace's objects are NOT_FOUND, never FORBIDDEN."""

from __future__ import annotations

from app.models import ADMIN_ROLES, Form, Membership, Plan, Role, Workspace
from app.schema.context import Info
from app.schema.errors import Forbidden, NotFound, PlanRequired, Unauthenticated
from app.services import access_cache
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


def refuse_portal_session(info: Info, what: str) -> Principal:
    """For what only an API token may do: tokens, sessions, members and plans."""
    p = principal(info)
    if p.session is not None:
        raise Forbidden(f"a portal session cannot {what}")
    return p


def forms_limit(info: Info) -> frozenset[str] | None:
    """The form slugs a portal session is limited to; None when the viewer sees every form."""
    p = info.context.principal
    return p.form_slugs if p is not None else None


def form_visible(info: Info, slug: str | None) -> bool:
    """Whether the viewer may see the form with this slug (None: no form, which everyone may)."""
    limit = forms_limit(info)
    return limit is None or slug is None or slug in limit


async def require_form_visible(info: Info, form_id: str | None, what: str) -> None:
    """NOT_FOUND for an object of a form outside a portal session's forms."""
    if form_id is None or forms_limit(info) is None:
        return
    slug = await Form.filter(id=form_id).values_list("slug", flat=True)
    if not form_visible(info, slug[0] if slug else None):
        raise NotFound(f"{what} not found")


async def membership(info: Info, workspace_id: str) -> Membership | None:
    viewer = principal(info)
    if viewer.workspace_id is not None and workspace_id != viewer.workspace_id:
        return None  # a portal session sees its own workspace only
    cache = info.context.memberships
    if workspace_id not in cache:
        # Remembered across requests for a few seconds (app.services.access_cache), found or not per request.
        key = access_cache.membership_key(viewer.user.id, workspace_id=workspace_id)
        member = access_cache.cached_membership(key)
        if member is None:
            generation = access_cache.memberships.generation
            member = await Membership.get_or_none(workspace_id=workspace_id, user_id=viewer.user.id)
            if member is not None:
                access_cache.remember_membership(member, generation)
        cache[workspace_id] = member
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
    if viewer.session is not None and viewer.session.workspace.slug != slug:
        raise NotFound("workspace not found")
    if len(slug) <= 64:  # no longer slug exists, and tortoise refuses to compare one with the column
        key = access_cache.membership_key(viewer.user.id, slug=slug)
        member = access_cache.cached_membership(key)
        if member is None:
            generation = access_cache.memberships.generation
            member = await Membership.get_or_none(workspace__slug=slug, user_id=viewer.user.id).select_related(
                "workspace")
            if member is not None:
                access_cache.remember_membership(member, generation, slug=slug)
    if member is None:
        raise NotFound("workspace not found")
    info.context.memberships[member.workspace_id] = member
    return await check_workspace(info, member.workspace, **checks)


async def role_in(info: Info, workspace_id: str) -> Role | None:
    m = await membership(info, workspace_id)
    return m.role if m else None
