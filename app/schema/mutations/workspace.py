from __future__ import annotations

import strawberry

from app import models
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import Forbidden, UserError, user_errors
from app.schema.permissions import principal, role_in, workspace_by_slug
from app.services import workspaces


@strawberry.input
class WorkspaceCreateInput:
    slug: str
    name: str
    plan: t.Plan | None = None


@strawberry.type
class WorkspaceCreatePayload:
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
        async with info.context.unit():
            done = await workspaces.create_workspace(p.user, input.slug, input.name, input.plan or models.Plan.FREE)
        return WorkspaceCreatePayload(workspace=t.Workspace.of(done.value) if done.ok else None,
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
        target = await models.Membership.get_or_none(workspace=ws, user_id=input.user_id)
        if target and target.role == models.Role.OWNER and await role_in(info, ws.id) != models.Role.OWNER:
            raise Forbidden("only owners may remove owners")
        async with info.context.unit():
            done = await workspaces.remove_member(ws, input.user_id)
        return MemberRemovePayload(removed_user_id=done.value, errors=user_errors(done.errors))
