from __future__ import annotations

from datetime import datetime

import strawberry

from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import NotFound, UserError, user_errors
from app.schema.permissions import require_ability
from app.services import tokens


@strawberry.input
class ApiTokenCreateInput:
    name: str
    abilities: list[str] | None = None
    expires_at: datetime | None = None


@strawberry.type
class ApiTokenCreatePayload:
    api_token: t.ApiToken | None = None
    token: str | None = strawberry.field(default=None, description="shown once; store it now")
    errors: list[UserError]


@strawberry.input
class ApiTokenRevokeInput:
    id: strawberry.ID


@strawberry.type
class ApiTokenRevokePayload:
    revoked_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.type
class TokenMutations:
    @strawberry.mutation
    async def api_token_create(self, info: Info, input: ApiTokenCreateInput) -> ApiTokenCreatePayload:
        p = require_ability(info, "tokens:write")
        done = await tokens.issue_token(p, input.name, input.abilities, input.expires_at)
        if not done.ok:
            return ApiTokenCreatePayload(errors=user_errors(done.errors))
        return ApiTokenCreatePayload(api_token=t.ApiToken.of(done.value.token), token=done.value.plain, errors=[])

    @strawberry.mutation
    async def api_token_revoke(self, info: Info, input: ApiTokenRevokeInput) -> ApiTokenRevokePayload:
        p = require_ability(info, "tokens:write")
        done = await tokens.revoke_token(p, input.id)
        if not done.ok:
            raise NotFound("token not found")
        return ApiTokenRevokePayload(revoked_id=done.value.id, errors=[])
