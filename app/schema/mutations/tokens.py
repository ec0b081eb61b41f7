from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from app import auth, models
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import NotFound, UserError, user_error
from app.schema.permissions import require_ability


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
        abilities = list(dict.fromkeys(input.abilities if input.abilities is not None else p.abilities))
        for i, ability in enumerate(abilities):
            if ability not in auth.ABILITIES:
                return ApiTokenCreatePayload(errors=user_error(
                    f"abilities.{i}", f"unknown ability {ability!r}; expected one of {', '.join(auth.ABILITIES)}"))
            if not p.can(ability):
                return ApiTokenCreatePayload(errors=user_error(
                    f"abilities.{i}", f"a token cannot grant {ability!r}, which it does not have", "NOT_ALLOWED"))
        if not input.name.strip() or len(input.name) > 200:
            return ApiTokenCreatePayload(errors=user_error("name", "is required (at most 200 characters)",
                                                           "REQUIRED"))
        expires = input.expires_at
        if expires is not None:
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            if expires <= datetime.now(UTC):
                return ApiTokenCreatePayload(errors=user_error("expiresAt", "must be in the future", "OUT_OF_RANGE"))
        if p.token.expires_at and (expires is None or expires > p.token.expires_at):
            expires = p.token.expires_at  # a token never outlives the one that made it
        token, plain = await auth.create_token(p.user, name=input.name.strip(), abilities=abilities,
                                               expires_at=expires)
        return ApiTokenCreatePayload(api_token=t.ApiToken.of(token), token=plain, errors=[])

    @strawberry.mutation
    async def api_token_revoke(self, info: Info, input: ApiTokenRevokeInput) -> ApiTokenRevokePayload:
        p = require_ability(info, "tokens:write")
        token = await models.ApiToken.get_or_none(id=input.id, user_id=p.user.id)
        if token is None:
            raise NotFound("token not found")
        if token.revoked_at is None:
            token.revoked_at = datetime.now(UTC)
            await token.save(update_fields=["revoked_at"])
        return ApiTokenRevokePayload(revoked_id=token.id, errors=[])
