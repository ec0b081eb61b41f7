"""portalSessionCreate / portalSessionRevoke, and the `portalSession` query a portal asks about itself."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app import models
from app.schema.context import Info
from app.schema.errors import NotFound, UserError, user_errors
from app.schema.permissions import principal, refuse_portal_session, require_ability, workspace_by_slug
from app.services import portal_sessions
from app.services.portal_sessions import SessionRequest


@strawberry.type(description="A short-lived browser credential for one workspace, made by the host product's "
                             "backend for its customer and used by the embedded portal.")
class PortalSession:
    id: strawberry.ID = strawberry.field(description="The session's id (`pss_...`); revoke it with "
                                                     "portalSessionRevoke.")
    workspace: str = strawberry.field(description="The slug of the one workspace the session may act in.")
    abilities: list[str] = strawberry.field(description="What the session may do: a subset of its maker's "
                                                        "abilities, never tokens:write.")
    allowed_origins: list[str] = strawberry.field(description="Origins that may frame the portal for this session "
                                                              "and call /graphql with its token (CORS).")
    form_slugs: list[str] | None = strawberry.field(description="The forms the session is limited to; null when it "
                                                               "sees every form of the workspace.")
    theme: JSON = strawberry.field(description="CSS custom properties the portal applies, as {name: value}; "
                                               "`accent` becomes --hy-accent.")
    expires_at: datetime = strawberry.field(description="When the session stops working (at most 24 hours after "
                                                        "it was made, and never after the token that made it).")
    revoked_at: datetime | None = strawberry.field(description="When it was revoked; null while it is not.")
    created_at: datetime = strawberry.field(description="When it was made.")

    @classmethod
    def of(cls, m: models.PortalSession, workspace_slug: str) -> PortalSession:
        return cls(id=m.id, workspace=workspace_slug, abilities=list(m.abilities),
                   allowed_origins=list(m.allowed_origins or []),
                   form_slugs=list(m.form_slugs) if m.form_slugs is not None else None, theme=m.theme or {},
                   expires_at=m.expires_at, revoked_at=m.revoked_at, created_at=m.created_at)


@strawberry.input(description="What a portal session may do, for how long and from where.")
class PortalSessionCreateInput:
    workspace: str = strawberry.field(description="Slug of the workspace the session is for; the token must be "
                                                  "an owner or admin there.")
    abilities: list[str] | None = strawberry.field(
        default=None, description="Abilities for the session, each one the token has: integrations:read, "
                                  "integrations:write, forms:write, events:publish, deliveries:read, "
                                  "deliveries:write. Default: integrations:read/write and deliveries:read/write "
                                  "(those the token has). NOT_ALLOWED for tokens:write or one the token lacks.")
    expires_in_seconds: int | None = strawberry.field(
        default=None, description="Lifetime in seconds, 60 to 86400 (24 h); default 3600 (1 h). OUT_OF_RANGE "
                                  "otherwise.")
    allowed_origins: list[str] | None = strawberry.field(
        default=None, description="Origins (https://app.example.com) of the host pages that embed the portal: "
                                  "they may frame it and call /graphql with this token. At most 10; INVALID for "
                                  "anything that is not scheme://host[:port].")
    form_slugs: list[str] | None = strawberry.field(
        default=None, description="Limit the session to these forms of the workspace (NOT_FOUND for one that "
                                  "does not exist); null for every form.")
    theme: JSON | None = strawberry.field(
        default=None, description="CSS custom properties for the portal as {name: value}, e.g. "
                                  '{"accent": "#0a7d5a", "radius": "10px"}; at most 40, plain values only '
                                  "(INVALID for url(), ; and the like).")


@strawberry.type(description="The result of portalSessionCreate.")
class PortalSessionCreatePayload:
    session: PortalSession | None = strawberry.field(default=None, description="The session; null on errors.")
    token: str | None = strawberry.field(
        default=None, description="The session token (`hyp_...`), shown once: hand it to the browser only, in "
                                  "the portal URL's fragment. Stored hashed.")
    portal_url: str | None = strawberry.field(
        default=None, description="The portal's address for this session, token in the fragment: the src of "
                                  "the iframe (or pass it to portal-embed.js).")
    errors: list[UserError] = strawberry.field(description="Why the session was not made; empty on success.")


@strawberry.input(description="Which portal session to revoke.")
class PortalSessionRevokeInput:
    id: strawberry.ID = strawberry.field(description="The session's id (`pss_...`).")


@strawberry.type(description="The result of portalSessionRevoke.")
class PortalSessionRevokePayload:
    revoked_id: strawberry.ID | None = strawberry.field(default=None, description="The id of the revoked session.")
    errors: list[UserError] = strawberry.field(description="Always empty: an unknown session is NOT_FOUND.")


def _session_origins(info: Info):
    """The API process's CORS origin cache (app.web.cors.SessionOrigins), when there is one."""
    state = getattr(getattr(info.context.request, "app", None), "state", None)
    return getattr(state, "session_origins", None)


@strawberry.type
class PortalSessionMutations:
    @strawberry.mutation(description="Makes a portal session for the host product's customer. Needs an API token "
                                     "(not a session) with tokens:write that is an owner or admin of the "
                                     "workspace; a workspace it cannot see is NOT_FOUND.")
    async def portal_session_create(
        self, info: Info, input: Annotated[PortalSessionCreateInput, strawberry.argument(
            description="The session's workspace, abilities, lifetime, origins, forms and theme.")],
    ) -> PortalSessionCreatePayload:
        p = refuse_portal_session(info, "create portal sessions")
        ws = await workspace_by_slug(info, input.workspace, ability="tokens:write", admin=True)
        request = SessionRequest(abilities=input.abilities, expires_in_seconds=input.expires_in_seconds,
                                 allowed_origins=input.allowed_origins, form_slugs=input.form_slugs,
                                 theme=input.theme)
        async with info.context.unit():
            done = await portal_sessions.create_session(p, ws, request, info.context.runtime.settings.base_url)
        if not done.ok:
            return PortalSessionCreatePayload(errors=user_errors(done.errors))
        issued = done.value
        origins = _session_origins(info)
        if origins is not None:  # this process's CORS allows them at once
            origins.learn(issued.session.allowed_origins)
        return PortalSessionCreatePayload(session=PortalSession.of(issued.session, ws.slug), token=issued.plain,
                                          portal_url=issued.portal_url, errors=[])

    @strawberry.mutation(description="Revokes a portal session its token's user made; its live subscriptions "
                                     "close with 4403 within the live access check interval. Needs tokens:write; "
                                     "another user's session is NOT_FOUND.")
    async def portal_session_revoke(
        self, info: Info, input: Annotated[PortalSessionRevokeInput, strawberry.argument(
            description="The session to revoke.")],
    ) -> PortalSessionRevokePayload:
        refuse_portal_session(info, "revoke portal sessions")
        p = require_ability(info, "tokens:write")
        done = await portal_sessions.revoke_session(p.user.id, input.id)
        if not done.ok:
            raise NotFound("portal session not found")
        origins = _session_origins(info)
        if origins is not None:  # this process's CORS reads the live sessions' origins again
            origins.forget()
        return PortalSessionRevokePayload(revoked_id=done.value.id, errors=[])


@strawberry.type
class PortalSessionQueries:
    @strawberry.field(description="The portal session making this request (its workspace, forms, theme and "
                                  "expiry), for the portal to set itself up; null for an API token. "
                                  "UNAUTHENTICATED without credentials.")
    async def portal_session(self, info: Info) -> PortalSession | None:
        p = principal(info)
        if p.session is None:
            return None
        return PortalSession.of(p.session, p.session.workspace.slug)
