from __future__ import annotations

from typing import Annotated

import strawberry

from app import models
from app.core.ids import prefix_of
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import Forbidden, NotFound, UserError, user_errors
from app.schema.permissions import refuse_portal_session, require_ability, role_in, workspace_by_slug
from app.services import access_cache, workspaces
from app.services.tokens import OPERATOR_ABILITY


@strawberry.input(description="A new workspace.")
class WorkspaceCreateInput:
    slug: str = strawberry.field(
        description="Its short name: 1-63 lowercase letters, digits or dashes, starting with a letter or digit "
                    "(INVALID_SLUG), unique on the server (TAKEN).")
    name: str = strawberry.field(description="A display name of 1-200 characters (REQUIRED, TOO_LONG).")
    plan: t.Plan | None = strawberry.field(
        default=None, description="Instance operators only (FORBIDDEN for others); others get the server's default "
                                  "plan (HOOKYARD_DEFAULT_PLAN).")


@strawberry.type(description="The result of `workspaceCreate`.")
class WorkspaceCreatePayload:
    workspace: t.Workspace | None = strawberry.field(
        default=None, description="The new workspace; null when creating it was refused.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.input(description="A workspace and the plan to give it.")
class WorkspacePlanSetInput:
    workspace: str = strawberry.field(description="The workspace's slug; any workspace on the server.")
    plan: t.Plan = strawberry.field(description="The plan to set.")


@strawberry.type(description="The result of `workspacePlanSet`.")
class WorkspacePlanSetPayload:
    workspace: t.Workspace | None = strawberry.field(default=None, description="The workspace with its new plan.")
    errors: list[UserError] = strawberry.field(description="Always empty; an unknown workspace is NOT_FOUND.")


@strawberry.input(description="Who to add to a workspace, or whose role to change.")
class MemberAddInput:
    workspace: str = strawberry.field(description="The workspace's slug.")
    email: str = strawberry.field(
        description="The person's email address (else INVALID); a user is created for an address new to the server.")
    role: t.Role | None = strawberry.field(
        default=None, description="Their role, MEMBER when left out; only owners may give OWNER (else FORBIDDEN). For "
                                  "someone already a member this changes their role (LAST_OWNER when it would "
                                  "leave no owner).")
    name: str = strawberry.field(
        default="", description="A display name for a user created now, at most 200 characters (TOO_LONG).")


@strawberry.type(description="The result of `memberAdd`.")
class MemberAddPayload:
    member: t.Member | None = strawberry.field(default=None, description="The membership; null when refused.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.input(description="Who to remove from a workspace.")
class MemberRemoveInput:
    workspace: str = strawberry.field(description="The workspace's slug.")
    user_id: strawberry.ID = strawberry.field(
        description="The member's user ID (`usr_...`); NOT_FOUND when not a member, LAST_OWNER for the last owner.")


@strawberry.type(description="The result of `memberRemove`.")
class MemberRemovePayload:
    removed_user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The user ID of the removed member; null when refused.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.type
class WorkspaceMutations:
    @strawberry.mutation(description="Creates a workspace with you as its owner. Needs an API token (not a portal "
                                     "session), with no particular ability; choosing the plan needs "
                                     "instance:operator (else FORBIDDEN).")
    async def workspace_create(
        self, info: Info, input: Annotated[WorkspaceCreateInput, strawberry.argument(description="The workspace.")]
    ) -> WorkspaceCreatePayload:
        p = refuse_portal_session(info, "create workspaces")
        if input.plan is not None and not p.can(OPERATOR_ABILITY):
            raise Forbidden(f"only an instance operator (a token with '{OPERATOR_ABILITY}') may choose the plan")
        plan = input.plan or workspaces.default_plan(info.context.runtime.settings)
        async with info.context.unit():
            done = await workspaces.create_workspace(p.user, input.slug, input.name, plan)
        return WorkspaceCreatePayload(workspace=t.Workspace.of(done.value) if done.ok else None,
                                      errors=user_errors(done.errors))

    @strawberry.mutation(description="Sets or changes a workspace's plan. Needs an API token (not a portal session) "
                                     "with instance:operator (else FORBIDDEN); an unknown slug is NOT_FOUND.")
    async def workspace_plan_set(
        self, info: Info,
        input: Annotated[WorkspacePlanSetInput, strawberry.argument(description="The workspace and plan.")],
    ) -> WorkspacePlanSetPayload:
        refuse_portal_session(info, "change plans")
        require_ability(info, OPERATOR_ABILITY)
        ws = await models.Workspace.get_or_none(slug=input.workspace) if len(input.workspace) <= 64 else None
        if ws is None:
            raise NotFound("workspace not found")
        async with info.context.unit():
            done = await workspaces.set_plan(ws, models.Plan(input.plan))
        access_cache.forget_memberships()  # again once committed: a request may have read the old row meanwhile
        return WorkspacePlanSetPayload(workspace=t.Workspace.of(done.value) if done.ok else None,
                                       errors=user_errors(done.errors))

    @strawberry.mutation(description="Adds a person to a workspace, or changes a member's role. Needs an API token "
                                     "(not a portal session) of an owner or admin, and of an owner to add an owner or "
                                     "change an owner's role (else FORBIDDEN), with no particular ability; a workspace "
                                     "you are not in is NOT_FOUND.")
    async def member_add(
        self, info: Info, input: Annotated[MemberAddInput, strawberry.argument(description="The person and role.")]
    ) -> MemberAddPayload:
        refuse_portal_session(info, "change members")
        ws = await workspace_by_slug(info, input.workspace, admin=True)
        role = input.role or models.Role.MEMBER
        if await role_in(info, ws.id) != models.Role.OWNER:
            if role == models.Role.OWNER:
                raise Forbidden("only owners may add owners")
            email = (input.email or "").strip().lower()
            if await models.Membership.filter(workspace=ws, user__email=email, role=models.Role.OWNER).exists():
                raise Forbidden("only owners may change an owner's role")
        async with info.context.unit():
            done = await workspaces.add_member(ws, input.email, role, input.name)
        access_cache.forget_memberships()  # again once committed: a request may have read the old row meanwhile
        return MemberAddPayload(member=t.Member.of(done.value) if done.ok else None, errors=user_errors(done.errors))

    @strawberry.mutation(description="Removes a member from a workspace. Needs an API token (not a portal session) "
                                     "of an owner or admin, and of an owner to remove an owner (else FORBIDDEN), with "
                                     "no particular ability; a workspace you are not in is NOT_FOUND.")
    async def member_remove(
        self, info: Info, input: Annotated[MemberRemoveInput, strawberry.argument(description="The member.")]
    ) -> MemberRemovePayload:
        refuse_portal_session(info, "change members")
        ws = await workspace_by_slug(info, input.workspace, admin=True)
        target = None
        if prefix_of(input.user_id) == "usr":  # else no id of ours, maybe too long to look up
            target = await models.Membership.get_or_none(workspace=ws, user_id=input.user_id)
        if target and target.role == models.Role.OWNER and await role_in(info, ws.id) != models.Role.OWNER:
            raise Forbidden("only owners may remove owners")
        async with info.context.unit():
            done = await workspaces.remove_member(ws, input.user_id)
        access_cache.forget_memberships()  # again once committed: a request may have read the old row meanwhile
        return MemberRemovePayload(removed_user_id=done.value, errors=user_errors(done.errors))
