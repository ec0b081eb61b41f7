from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import NotFound, UserError, user_errors
from app.schema.permissions import refuse_portal_session, require_ability
from app.services import tokens


@strawberry.input(description="A new API token for yourself.")
class ApiTokenCreateInput:
    name: str = strawberry.field(description="What the token is for, 1-200 characters (else REQUIRED).")
    abilities: list[str] | None = strawberry.field(
        default=None, description="What it may do, each an ability the calling token has (INVALID for an unknown "
                                  "one, NOT_ALLOWED for one it lacks); the calling token's abilities when left out.")
    expires_at: datetime | None = strawberry.field(
        default=None, description="When it stops working, in the future (else OUT_OF_RANGE; UTC when it has no "
                                  "offset); never later than the calling token's own expiry.")


@strawberry.type(description="The result of `apiTokenCreate`.")
class ApiTokenCreatePayload:
    api_token: t.ApiToken | None = strawberry.field(default=None, description="The new token; null when refused.")
    token: str | None = strawberry.field(
        default=None, description="The token itself (`hyk_...`), shown only this once: store it now.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.input(description="Which of your API tokens to revoke.")
class ApiTokenRevokeInput:
    id: strawberry.ID = strawberry.field(description="The token's ID (`tok_...`).")


@strawberry.type(description="The result of `apiTokenRevoke`.")
class ApiTokenRevokePayload:
    revoked_id: strawberry.ID | None = strawberry.field(default=None, description="The ID of the revoked token.")
    errors: list[UserError] = strawberry.field(description="Always empty; a token that is not yours is NOT_FOUND.")


@strawberry.type
class TokenMutations:
    @strawberry.mutation(description="Creates an API token for your user, with at most the calling token's "
                                     "abilities and lifetime. Needs an API token (not a portal session) with "
                                     "tokens:write (else FORBIDDEN).")
    async def api_token_create(
        self, info: Info, input: Annotated[ApiTokenCreateInput, strawberry.argument(description="The new token.")]
    ) -> ApiTokenCreatePayload:
        refuse_portal_session(info, "create tokens")
        p = require_ability(info, "tokens:write")
        done = await tokens.issue_token(p, input.name, input.abilities, input.expires_at)
        if not done.ok:
            return ApiTokenCreatePayload(errors=user_errors(done.errors))
        return ApiTokenCreatePayload(api_token=t.ApiToken.of(done.value.token), token=done.value.plain, errors=[])

    @strawberry.mutation(description="Revokes one of your user's API tokens at once (revoking it again is no "
                                     "error); its live subscriptions are closed shortly after. Needs an API token "
                                     "(not a portal session) with tokens:write (else FORBIDDEN); another user's token "
                                     "is NOT_FOUND.")
    async def api_token_revoke(
        self, info: Info, input: Annotated[ApiTokenRevokeInput, strawberry.argument(description="The token.")]
    ) -> ApiTokenRevokePayload:
        refuse_portal_session(info, "revoke tokens")
        p = require_ability(info, "tokens:write")
        done = await tokens.revoke_token(p, input.id)
        if not done.ok:
            raise NotFound("token not found")
        return ApiTokenRevokePayload(revoked_id=done.value.id, errors=[])
