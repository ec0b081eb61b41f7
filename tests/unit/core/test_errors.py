"""Typed field error codes, and GraphQL's `UserErrorCode` built from exactly those codes."""

from __future__ import annotations

from collections import Counter

import pytest

from app.core.errors import (
    ERROR_CODE_ENUMS,
    CommonErrorCode,
    FieldError,
    IntegrationErrorCode,
)
from app.schema.errors import UserErrorCode, user_errors

ALL_CODES = [code for area in ERROR_CODE_ENUMS for code in area]


def test_a_field_error_takes_a_typed_code_and_defaults_to_invalid() -> None:
    error = FieldError("config.url", "not a URL", IntegrationErrorCode.INVALID_URL)
    assert error.code is IntegrationErrorCode.INVALID_URL
    assert FieldError(None, "wrong").code is CommonErrorCode.INVALID


@pytest.mark.parametrize("code", ["INVALID", "INVALID_URL", "SOMETHING_NEW", None, 1])
def test_a_field_error_refuses_a_code_that_is_not_an_enum_member(code) -> None:
    """Even a string equal to a real code's value: every code a client can see must be declared."""
    with pytest.raises(TypeError, match="not one of the typed error codes"):
        FieldError("name", "bad", code)


def test_no_two_areas_declare_the_same_code() -> None:
    names = Counter(code.name for code in ALL_CODES)
    assert [name for name, count in names.items() if count > 1] == []
    assert all(code.name == code.value for code in ALL_CODES)


def test_the_graphql_enum_is_exactly_the_union_of_the_typed_codes() -> None:
    graphql_codes = {member.name: member.value for member in UserErrorCode}
    assert graphql_codes == {code.name: code.value for code in ALL_CODES}


@pytest.mark.parametrize("code", ALL_CODES, ids=lambda code: f"{type(code).__name__}.{code.name}")
def test_every_typed_code_reaches_the_client(code) -> None:
    [error] = user_errors([FieldError("input.x", "message", code)])
    assert (error.field, error.message, error.code) == ("input.x", "message", UserErrorCode(code.value))

