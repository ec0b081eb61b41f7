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
    INVALID_TEMPLATE = "INVALID_TEMPLATE"


class EventErrorCode(StrEnum):
    INVALID_EVENT_FILTER = "INVALID_EVENT_FILTER"
    EMPTY_EVENT_FILTER = "EMPTY_EVENT_FILTER"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    INVALID_SCHEMA = "INVALID_SCHEMA"


class AttachmentErrorCode(StrEnum):
    INVALID_LOGIC = "INVALID_LOGIC"


class DeliveryErrorCode(StrEnum):
    INVALID_STATE = "INVALID_STATE"


ErrorCode = (CommonErrorCode | WorkspaceErrorCode | IntegrationErrorCode | EventErrorCode | AttachmentErrorCode
             | DeliveryErrorCode)
ERROR_CODE_ENUMS: tuple[type[StrEnum], ...] = (
    CommonErrorCode, WorkspaceErrorCode, IntegrationErrorCode, EventErrorCode, AttachmentErrorCode, DeliveryErrorCode,
)

# What each code means: the descriptions of GraphQL's `UserErrorCode` values. Every code needs one
# (tests/unit/schema/test_descriptions.py).
ERROR_CODE_DESCRIPTIONS: dict[StrEnum, str] = {
    CommonErrorCode.INVALID: "The value is not valid here; the message says why. The code when no more specific one "
                             "applies.",
    CommonErrorCode.REQUIRED: "The value is missing or blank.",
    CommonErrorCode.TOO_SHORT: "The value is shorter than allowed, such as a webhook signing secret under 12 "
                               "characters.",
    CommonErrorCode.TOO_LONG: "The value or list is longer or larger than allowed; the message gives the limit.",
    CommonErrorCode.TAKEN: "Something with this value exists already: a workspace or form slug in use, or an "
                           "integration already attached to the form.",
    CommonErrorCode.NOT_FOUND: "The value names nothing the caller can see, such as a form slug, a member or a token.",
    CommonErrorCode.OUT_OF_RANGE: "A number or date-time is outside the allowed range, such as an expiry in the past, "
                                  "`until` before `since` or a timeout outside 1-30 seconds.",
    CommonErrorCode.UNKNOWN_FIELD: "The config or secrets object holds a key the integration type does not know.",
    CommonErrorCode.NOT_ALLOWED: "The caller may not set this, such as an ability its own token lacks or the tokens of "
                                 "an OAuth integration.",
    CommonErrorCode.NOT_SUPPORTED: "The integration's type does not support this, such as rotating the secret of an "
                                   "integration that is not a webhook.",
    WorkspaceErrorCode.INVALID_SLUG: "A slug must be 1-63 lowercase letters, digits or dashes, starting with a letter "
                                     "or digit.",
    WorkspaceErrorCode.LAST_OWNER: "The change would leave the workspace without an owner.",
    IntegrationErrorCode.UNKNOWN_TYPE: "The integration type is not one this server implements.",
    IntegrationErrorCode.TYPE_UNAVAILABLE: "The integration type is not set up on this server, such as an OAuth type "
                                           "whose client id and secret are not configured.",
    IntegrationErrorCode.INVALID_URL: "The URL is malformed, not absolute http(s), or points at an address deliveries "
                                      "may not reach (such as loopback or a private network).",
    IntegrationErrorCode.INSECURE_URL: "The URL must use https://; plain http is only allowed for the server's "
                                       "allowed networks.",
    IntegrationErrorCode.BLOCKED_HEADER: "This HTTP header is set by Hookyard (or by the HTTP client) and cannot be "
                                         "customized.",
    IntegrationErrorCode.INVALID_HEADER: "A custom header's name or value is not valid, or a name is given twice "
                                         "(names ignore case).",
    IntegrationErrorCode.INVALID_PATH: "A field mapping is not a payload path such as `post.author.email`, or an "
                                       "unknown special `$` path.",
    IntegrationErrorCode.INVALID_TEMPLATE: "The payload template (`config.template`) is not a valid JMESPath "
                                           "expression, calls an unknown function, or (in templatePreview) failed "
                                           "for the given event; the message says where.",
    EventErrorCode.INVALID_EVENT_FILTER: "An event filter is not an event name, `*`, or a prefix wildcard such as "
                                         "`session.*`.",
    EventErrorCode.EMPTY_EVENT_FILTER: "An empty event list would deliver nothing: leave `events` out to receive "
                                       "every event, or set `enabled: false`.",
    EventErrorCode.INVALID_PAYLOAD: "The payload (or a catalog example) does not match its event type's JSON Schema: "
                                    "one error per mismatch, `field` is `payload/` (or `example/`) then the JSON "
                                    "pointer of the value at fault, such as `payload/user/email`.",
    EventErrorCode.INVALID_SCHEMA: "The event type's schema is not a JSON Schema Hookyard accepts (malformed, too "
                                   "large or deep, a `$ref` outside the schema, a risky `pattern`); `field` is "
                                   "`schema/` then the JSON pointer of the part at fault.",
    AttachmentErrorCode.INVALID_LOGIC: "The attachment's conditions (`logic`) are not valid; `field` points at the "
                                       "wrong part.",
    DeliveryErrorCode.INVALID_STATE: "The delivery cannot be retried now: it is pending or being sent already, or it "
                                     "changed state meanwhile.",
}


@dataclass(frozen=True)
class FieldError:
    field: str | None  # a path into the input such as `config.url` or `events.1`
    message: str
    code: ErrorCode = CommonErrorCode.INVALID

    def __post_init__(self) -> None:
        if not isinstance(self.code, ERROR_CODE_ENUMS):
            raise TypeError(f"error code {self.code!r} is not one of the typed error codes")
