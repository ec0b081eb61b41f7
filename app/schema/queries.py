from __future__ import annotations

from typing import Annotated

import strawberry

from app import models
from app.core.ids import prefix_of
from app.integrations.registry import get_kind
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import NotFound
from app.schema.permissions import check_workspace, form_visible, principal, require_form_visible, workspace_by_slug
from app.services import event_catalog


async def load_integration(info: Info, integration_id: str, **checks) -> models.Integration:
    """The integration, if the viewer may see it; another workspace's answers NOT_FOUND."""
    principal(info)
    found = None
    if prefix_of(integration_id) == "int":  # anything else is no id of ours, maybe too long to look up
        found = await models.Integration.get_or_none(id=integration_id).select_related("workspace")
    await check_workspace(info, found.workspace if found else None, what="integration",
                          **({"ability": "integrations:read", "admin": True} | checks))
    return found


async def load_delivery(info: Info, delivery_id: str, **checks) -> models.Delivery:
    principal(info)
    found = None
    if prefix_of(delivery_id) == "del":  # anything else is no id of ours, maybe too long to look up
        found = await models.Delivery.get_or_none(id=delivery_id).select_related("workspace")
    await check_workspace(info, found.workspace if found else None, what="delivery",
                          **({"ability": "deliveries:read", "admin": True} | checks))
    await require_form_visible(info, found.form_id, "delivery")
    return found


async def _node(info: Info, node_id: str) -> t.Node:
    prefix = prefix_of(node_id)
    if prefix == "ws":
        ws = await models.Workspace.get_or_none(id=node_id)
        return t.Workspace.of(await check_workspace(info, ws))
    if prefix == "int":
        return t.Integration.of(await load_integration(info, node_id))
    if prefix == "del":
        return t.Delivery.of(await load_delivery(info, node_id))
    if prefix == "frm":
        form = await models.Form.get_or_none(id=node_id).select_related("workspace")
        if form is not None and not form_visible(info, form.slug):
            form = None
        await check_workspace(info, form.workspace if form else None, what="form")
        return t.Form.of(form)
    if prefix == "fin":
        att = await models.FormIntegration.get_or_none(id=node_id).select_related("integration__workspace")
        await check_workspace(info, att.integration.workspace if att else None, what="form integration",
                              ability="integrations:read", admin=True)
        await require_form_visible(info, att.form_id, "form integration")
        return t.FormIntegration.of(att)
    if prefix == "evt":
        event = await models.Event.get_or_none(id=node_id).select_related("workspace")
        await check_workspace(info, event.workspace if event else None, what="event",
                              ability="deliveries:read", admin=True)
        await require_form_visible(info, event.form_id, "event")
        return t.Event.of(event)
    if prefix == "att":
        att = await models.DeliveryAttempt.get_or_none(id=node_id).select_related("delivery__workspace")
        await check_workspace(info, att.delivery.workspace if att else None, what="attempt",
                              ability="deliveries:read", admin=True)
        await require_form_visible(info, att.delivery.form_id, "attempt")
        return t.DeliveryAttempt.of(att)
    if prefix == "tok" and principal(info).session is None:
        token = await models.ApiToken.get_or_none(id=node_id, user_id=principal(info).user.id)
        if token:
            return t.ApiToken.of(token)
    if prefix == "usr" and principal(info).session is None:
        me = principal(info).user
        # Two queries, not a membership→workspace→membership self-join: building that join renames
        # tortoise's shared Membership table to "membership2" for the whole process, which breaks the
        # join itself (ambiguous column) and every later Membership UPDATE on SQLite.
        mine = await models.Membership.filter(user_id=me.id).values_list("workspace_id", flat=True)
        shared = await models.Membership.filter(
            user_id=node_id, workspace_id__in=list(mine)
        ).select_related("user").first()
        if shared:
            return t.User.of(shared.user)
    raise NotFound("node not found")


@strawberry.type
class Query:
    @strawberry.field(description="Who is calling. Needs a valid credential (else UNAUTHENTICATED) and no ability.")
    async def viewer(self, info: Info) -> t.Viewer:
        p = principal(info)
        return t.Viewer(user=t.User.of(p.user), token=t.ApiToken.of(p.token) if p.token else None, model=p.user)

    @strawberry.field(description="A workspace you are a member of, by slug; any other slug answers NOT_FOUND. Needs "
                                  "a valid credential and no ability.")
    async def workspace(
        self, info: Info, slug: Annotated[str, strawberry.argument(description="The workspace's slug.")]
    ) -> t.Workspace | None:
        return t.Workspace.of(await workspace_by_slug(info, slug))

    @strawberry.field(description="An integration by ID. Needs integrations:read and the owner or admin role (else "
                                  "FORBIDDEN); another workspace's or an unknown ID answers NOT_FOUND.")
    async def integration(
        self, info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The integration's ID (`int_...`).")],
    ) -> t.Integration | None:
        return t.Integration.of(await load_integration(info, id))

    @strawberry.field(description="A delivery by ID. Needs deliveries:read and the owner or admin role (else "
                                  "FORBIDDEN); another workspace's or an unknown ID answers NOT_FOUND.")
    async def delivery(
        self, info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The delivery's ID (`del_...`).")],
    ) -> t.Delivery | None:
        return t.Delivery.of(await load_delivery(info, id))

    @strawberry.field(description="Any object by its global ID, with the access its own query needs: workspaces and "
                                  "forms need membership; integrations and attachments integrations:read, and events, "
                                  "deliveries and attempts deliveries:read, with the owner or admin role; tokens must "
                                  "be yours, users must share a workspace with you. Anything else answers NOT_FOUND.")
    async def node(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The object's global ID.")]
    ) -> t.Node | None:
        return await _node(info, id)

    @strawberry.field(description="Every integration type, whether this server can connect it, and the settings each "
                                  "takes. Needs no credential.")
    def integration_types(self, info: Info) -> list[t.IntegrationTypeInfo]:
        settings = info.context.runtime.settings
        out = []
        for type_enum in t.IntegrationType:
            kind = get_kind(type_enum.value)
            if kind is None:
                out.append(t.IntegrationTypeInfo(
                    type=type_enum, label=type_enum.name.replace("_", " ").title(), auth_kind="unknown",
                    available=False, unavailable_reason="not implemented on this server", config_fields=[]))
                continue
            reason = kind.unavailable_reason(settings)
            out.append(t.IntegrationTypeInfo(
                type=type_enum, label=kind.label, auth_kind=kind.auth, available=reason is None,
                unavailable_reason=reason,
                config_fields=[t.ConfigFieldInfo(name=f.name, label=f.label, kind=f.kind, required=f.required,
                                                 secret=f.secret, description=f.description)
                               for f in kind.config_fields],
            ))
        return out

    @strawberry.field(description="The event catalog as a workspace sees it: its registered types and the global "
                                  "ones, and the types seen in its events, by name, then Hookyard's own system events "
                                  "not seen yet. Needs membership (else NOT_FOUND) and no ability; without a "
                                  "workspace, the global catalog and the system events, for any valid credential.")
    async def event_types(
        self, info: Info,
        workspace: Annotated[str | None, strawberry.argument(
            description="The workspace's slug; leave it out for the global catalog only.")] = None,
    ) -> list[t.EventType]:
        if workspace is None:
            principal(info)
            entries = await event_catalog.list_types(None)
        else:
            entries = await event_catalog.list_types((await workspace_by_slug(info, workspace)).id)
        return [t.EventType.of(entry) for entry in entries]
