"""Top-level GraphQL errors with an `extensions.code`, and the payload `UserError` type."""

from __future__ import annotations

from enum import Enum

import strawberry
from graphql import GraphQLError

from app.integrations.base import FieldError


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


@strawberry.enum
class UserErrorCode(Enum):
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    TOO_SHORT = "TOO_SHORT"
    TOO_LONG = "TOO_LONG"
    TAKEN = "TAKEN"
    NOT_FOUND = "NOT_FOUND"
    INVALID_SLUG = "INVALID_SLUG"
    INVALID_URL = "INVALID_URL"
    INSECURE_URL = "INSECURE_URL"
    BLOCKED_HEADER = "BLOCKED_HEADER"
    INVALID_EVENT_FILTER = "INVALID_EVENT_FILTER"
    INVALID_LOGIC = "INVALID_LOGIC"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    TYPE_UNAVAILABLE = "TYPE_UNAVAILABLE"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    LAST_OWNER = "LAST_OWNER"
    NOT_ALLOWED = "NOT_ALLOWED"
    INVALID_STATE = "INVALID_STATE"


@strawberry.type
class UserError:
    field: str | None
    message: str
    code: UserErrorCode


def user_errors(errors: list[FieldError]) -> list[UserError]:
    return [UserError(field=e.field, message=e.message, code=UserErrorCode(e.code)) for e in errors]


def user_error(field: str | None, message: str, code: str = "INVALID") -> list[UserError]:
    return [UserError(field=field, message=message, code=UserErrorCode(code))]
