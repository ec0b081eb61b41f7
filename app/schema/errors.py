"""Top-level GraphQL errors with an `extensions.code`, and the payload `UserError` type."""

from __future__ import annotations

from enum import Enum

import strawberry
from graphql import GraphQLError

from app.core.errors import ERROR_CODE_ENUMS, FieldError


class ApiError(GraphQLError):
    code = "INTERNAL"

    def __init__(self, message: str):
        super().__init__(message, extensions={"code": self.code})


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    code = "FORBIDDEN"


class NotFound(ApiError):
    code = "NOT_FOUND"


class PlanRequired(ApiError):
    code = "PLAN_REQUIRED"


class BadInput(ApiError):
    code = "BAD_USER_INPUT"


# Every code a use-case can answer with: the union of the typed per-area enums of app.core.errors.
UserErrorCode = strawberry.enum(
    Enum("UserErrorCode", {code.name: code.value for area in ERROR_CODE_ENUMS for code in area}),
    name="UserErrorCode",
)


@strawberry.type
class UserError:
    field: str | None
    message: str
    code: UserErrorCode


def user_errors(errors: list[FieldError]) -> list[UserError]:
    return [UserError(field=e.field, message=e.message, code=UserErrorCode(e.code.value)) for e in errors]
