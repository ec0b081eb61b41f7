from __future__ import annotations

import strawberry

from app import models
from app.core.ids import prefix_of
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import Forbidden, NotFound, UserError, user_errors
from app.schema.permissions import principal, require_ability, role_in, workspace_by_slug
from app.services import workspaces
from app.services.tokens import OPERATOR_ABILITY


@strawberry.input
class WorkspaceCreateInput:
    slug: str
    name: str
    plan: t.Plan | None = strawberry.field(
        default=None, description="instance operators only; others get the server's default plan")


@strawberry.type
class WorkspaceCreatePayload:
    workspace: t.Workspace | None = None
    errors: list[UserError]


@strawberry.input
class WorkspacePlanSetInput:
    workspace: str
    plan: t.Plan


@strawberry.type
class WorkspacePlanSetPayload:
    workspace: t.Workspace | None = None
    errors: list[UserError]


@strawberry.input
class MemberAddInput:
    workspace: str
    email: str
    role: t.Role | None = None
    name: str = ""


@strawberry.type
class MemberAddPayload:
    member: t.Member | None = None
    errors: list[UserError]


@strawberry.input
class MemberRemoveInput:
    workspace: str
    user_id: strawberry.ID


@strawberry.type
class MemberRemovePayload:
    removed_user_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.type
class WorkspaceMutations:
    @strawberry.mutation
    async def workspace_create(self, info: Info, input: WorkspaceCreateInput) -> WorkspaceCreatePayload:
        p = principal(info)
        if input.plan is not None and not p.can(OPERATOR_ABILITY):
            raise Forbidden(f"only an instance operator (a token with '{OPERATOR_ABILITY}') may choose the plan")
        plan = input.plan or workspaces.default_plan(info.context.runtime.settings)
        async with info.context.unit():
            done = await workspaces.create_workspace(p.user, input.slug, input.name, plan)
        return WorkspaceCreatePayload(workspace=t.Workspace.of(done.value) if done.ok else None,
                                      errors=user_errors(done.errors))

    @strawberry.mutation(description="Sets or changes a workspace's plan; instance operators only.")
    async def workspace_plan_set(self, info: Info, input: WorkspacePlanSetInput) -> WorkspacePlanSetPayload:
        require_ability(info, OPERATOR_ABILITY)
        ws = await models.Workspace.get_or_none(slug=input.workspace) if len(input.workspace) <= 64 else None
        if ws is None:
            raise NotFound("workspace not found")
        async with info.context.unit():
            done = await workspaces.set_plan(ws, models.Plan(input.plan))
        return WorkspacePlanSetPayload(workspace=t.Workspace.of(done.value) if done.ok else None,
                                       errors=user_errors(done.errors))

    @strawberry.mutation
    async def member_add(self, info: Info, input: MemberAddInput) -> MemberAddPayload:
        ws = await workspace_by_slug(info, input.workspace, admin=True)
        role = input.role or models.Role.MEMBER
        if role == models.Role.OWNER and await role_in(info, ws.id) != models.Role.OWNER:
            raise Forbidden("only owners may add owners")
        async with info.context.unit():
            done = await workspaces.add_member(ws, input.email, role, input.name)
        return MemberAddPayload(member=t.Member.of(done.value) if done.ok else None, errors=user_errors(done.errors))

    @strawberry.mutation
    async def member_remove(self, info: Info, input: MemberRemoveInput) -> MemberRemovePayload:
        ws = await workspace_by_slug(info, input.workspace, admin=True)
        target = None
        if prefix_of(input.user_id) == "usr":  # else no id of ours, maybe too long to look up
            target = await models.Membership.get_or_none(workspace=ws, user_id=input.user_id)
        if target and target.role == models.Role.OWNER and await role_in(info, ws.id) != models.Role.OWNER:
            raise Forbidden("only owners may remove owners")
        async with info.context.unit():
            done = await workspaces.remove_member(ws, input.user_id)
        return MemberRemovePayload(removed_user_id=done.value, errors=user_errors(done.errors))
