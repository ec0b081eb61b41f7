"""Top-level GraphQL errors with an `extensions.code`, and the payload `UserError` type."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, EnumMeta

import strawberry
from graphql import GraphQLError

from app.core.errors import ERROR_CODE_DESCRIPTIONS, ERROR_CODE_ENUMS, FieldError


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


def described_enum(cls: EnumMeta, *, description: str, values: Mapping[str, str], name: str | None = None):
    """`strawberry.enum(cls)` with a description for the type and one for each value (by member name), for
    enums whose members cannot carry `strawberry.enum_value` (the models' enums, built ones). A value left out
    has none, which tests/unit/schema/test_descriptions.py reports."""
    enum = strawberry.enum(cls, name=name, description=description)
    for value in enum.__strawberry_definition__.values:
        value.description = values.get(value.name)
    return enum


# Every code a use-case can answer with: the union of the typed per-area enums of app.core.errors.
UserErrorCode = described_enum(
    Enum("UserErrorCode", {code.name: code.value for area in ERROR_CODE_ENUMS for code in area}),
    name="UserErrorCode",
    description="Why a mutation refused its input: the `code` of a `UserError` in a payload's `errors`.",
    values={code.name: text for code, text in ERROR_CODE_DESCRIPTIONS.items()},
)


@strawberry.type(description="A problem with a mutation's input. Mutations answer these in their payload's `errors` "
                             "(changing nothing) rather than as GraphQL errors.")
class UserError:
    field: str | None = strawberry.field(description="The input field at fault, as a path such as `config.url` or "
                                                     "`events.1`; null when the error concerns the input as a whole.")
    message: str = strawberry.field(description="What is wrong, in plain English.")
    code: UserErrorCode = strawberry.field(description="The kind of problem, stable for programs to check.")


def user_errors(errors: list[FieldError]) -> list[UserError]:
    return [UserError(field=e.field, message=e.message, code=UserErrorCode(e.code.value)) for e in errors]
