"""Field errors with typed codes: what a use-case answers when the input is wrong.

Each area has its own code enum (Saleor-style); codes every area uses are in `CommonErrorCode`.
A code is always an enum member, never a free string, so GraphQL's `UserErrorCode` (the union
of these enums) can name every code a client may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CommonErrorCode(StrEnum):
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    TOO_SHORT = "TOO_SHORT"
    TOO_LONG = "TOO_LONG"
    TAKEN = "TAKEN"
    NOT_FOUND = "NOT_FOUND"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    NOT_ALLOWED = "NOT_ALLOWED"
    NOT_SUPPORTED = "NOT_SUPPORTED"


class WorkspaceErrorCode(StrEnum):
    INVALID_SLUG = "INVALID_SLUG"
    LAST_OWNER = "LAST_OWNER"


class IntegrationErrorCode(StrEnum):
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    TYPE_UNAVAILABLE = "TYPE_UNAVAILABLE"
    INVALID_URL = "INVALID_URL"
    INSECURE_URL = "INSECURE_URL"
    BLOCKED_HEADER = "BLOCKED_HEADER"
    INVALID_HEADER = "INVALID_HEADER"
    INVALID_PATH = "INVALID_PATH"


class EventErrorCode(StrEnum):
    INVALID_EVENT_FILTER = "INVALID_EVENT_FILTER"
    EMPTY_EVENT_FILTER = "EMPTY_EVENT_FILTER"


class AttachmentErrorCode(StrEnum):
    INVALID_LOGIC = "INVALID_LOGIC"


class DeliveryErrorCode(StrEnum):
    INVALID_STATE = "INVALID_STATE"


ErrorCode = (CommonErrorCode | WorkspaceErrorCode | IntegrationErrorCode | EventErrorCode | AttachmentErrorCode
             | DeliveryErrorCode)
ERROR_CODE_ENUMS: tuple[type[StrEnum], ...] = (
    CommonErrorCode, WorkspaceErrorCode, IntegrationErrorCode, EventErrorCode, AttachmentErrorCode, DeliveryErrorCode,
)


@dataclass(frozen=True)
class FieldError:
    field: str | None  # a path into the input such as `config.url` or `events.1`
    message: str
    code: ErrorCode = CommonErrorCode.INVALID

    def __post_init__(self) -> None:
        if not isinstance(self.code, ERROR_CODE_ENUMS):
            raise TypeError(f"error code {self.code!r} is not one of the typed error codes")
