"""The small interface every integration type implements.

A type validates its config, builds the HTTP request(s) for an event and reads the
response. Types that need several calls (look up, then create) override `deliver`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from app.config import Settings
from app.core.errors import CommonErrorCode, FieldError, IntegrationErrorCode
from app.core.http import MASK, OutgoingRequest, mask_url
from app.core.retry import RETRY_AFTER_STATUSES, retry_after

HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")


@dataclass(frozen=True)
class ConfigField:
    name: str
    label: str
    kind: str  # url | string | boolean | headers | mapping | secret
    required: bool = False
    secret: bool = False
    description: str = ""


@dataclass
class Validated:
    """Result of validating connect/update input: the clean config and secrets, or errors."""

    config: dict[str, Any]
    secrets: dict[str, Any]
    errors: list[FieldError] = field(default_factory=list)
    generated_secret: str | None = None


@dataclass
class Outcome:
    success: bool
    error: str | None = None
    retry_after: float | None = None
    gone: bool = False  # the target says it will never accept again (410): disable at once
    needs_reauth: bool = False
    retryable: bool = True


@dataclass
class DeliveryContext:
    delivery_id: str
    event_type: str
    payload: Any
    timestamp: datetime
    is_test: bool
    config: dict[str, Any]
    secrets: dict[str, Any]
    workspace_slug: str
    integration_name: str
    form_slug: str | None = None
    settings: Settings | None = None
    workspace_name: str = ""  # shown next to workspace_slug where a message says where it comes from
    # Set by a type that refreshed OAuth tokens in `secrets`; the sender then stores them encrypted.
    secrets_changed: bool = False
    # What a plugin keeps between deliveries in this process (the runtime owns it), by plugin.
    shared: dict[str, Any] = field(default_factory=dict)


class RequestNotBuilt(Exception):
    """The request cannot be built from this event (its template failed): the delivery FAILS at once with
    this message and nothing is sent; retrying the same event cannot help."""


class Exchange(Protocol):
    """What a type's `deliver` gets to make calls: records every request for the log."""

    async def send(self, request: OutgoingRequest) -> tuple[int, dict[str, str], bytes]: ...


class IntegrationKind:
    type: ClassVar[str]
    label: ClassVar[str]
    auth: ClassVar[str] = "none"  # none | signing_secret | oauth2
    config_fields: ClassVar[tuple[ConfigField, ...]] = ()
    # The URL is a credential (chat webhooks): it is kept in the secrets, config.url holds it masked.
    url_is_secret: ClassVar[bool] = False
    # Whether `config.template` may reshape what this type sends (app.integrations.templates).
    supports_template: ClassVar[bool] = False

    def public_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config as queries return it (a row not yet migrated still has its secret URL in plain text)."""
        url = config.get("url")
        if self.url_is_secret and isinstance(url, str) and not is_masked(url):
            return {**config, "url": mask_url(url)}
        return config

    def validate(
        self, config: dict[str, Any], secrets: dict[str, Any], *, existing_secrets: dict[str, Any] | None,
        settings: Settings,
    ) -> Validated:
        raise NotImplementedError

    def unavailable_reason(self, settings: Settings) -> str | None:
        """Why this type cannot be connected on this server (e.g. its OAuth app is not configured)."""
        return None

    def needs_setup(self, config: dict[str, Any]) -> str | None:
        """What the account still has to choose before this (valid) config can deliver, or None when it can.
        While something is missing the integration is NEEDS_SETUP and its deliveries are HELD."""
        return None

    def build_request(self, ctx: DeliveryContext) -> OutgoingRequest:
        raise NotImplementedError

    def body_from_template(self, output: Any) -> Any:
        """What this type sends for a template's `output` (a JSON value); raises RequestNotBuilt when it cannot."""
        raise RequestNotBuilt(f"{self.label} integrations cannot use a template")

    def read_response(self, status: int, headers: dict[str, str], body: bytes) -> Outcome:
        return default_outcome(status, headers)

    async def deliver(self, ctx: DeliveryContext, exchange: Exchange) -> Outcome:
        """One request by default; multi-call types (OAuth CRMs) override this.

        Network errors propagate: the sender records them and schedules a retry.
        """
        try:
            request = self.build_request(ctx)
        except RequestNotBuilt as exc:
            return Outcome(success=False, error=str(exc), retryable=False)
        status, headers, body = await exchange.send(request)
        return self.read_response(status, headers, body)

    def sample_payload(self, event_type: str) -> dict[str, Any]:
        return sample_payload(event_type)


def is_masked(url: str) -> bool:
    """Whether `url` is already the masked form `mask_url` gives."""
    return MASK in url


def default_outcome(status: int, headers: dict[str, str] | None = None) -> Outcome:
    if 200 <= status < 300:
        return Outcome(success=True)
    wait = retry_after(headers) if status in RETRY_AFTER_STATUSES else None
    if status == 410:
        return Outcome(success=False, error="HTTP 410 Gone: the receiver asked to stop", gone=True, retryable=False)
    if 300 <= status < 400:
        return Outcome(success=False, error=f"HTTP {status}: redirects are not followed")
    return Outcome(success=False, error=f"HTTP {status}", retry_after=wait)


def sample_payload(event_type: str) -> dict[str, Any]:
    return {
        "id": "sample_1",
        "event": event_type,
        "title": "Sample submission",
        "url": "https://example.com/samples/1",
        "fields": {"name": "Ada Lovelace", "email": "ada@example.com", "rating": 5},
        "createdAt": "2026-01-01T12:00:00Z",
    }


MAX_CUSTOM_HEADERS = 20
MAX_HEADER_VALUE = 4096
MAX_HEADERS_TOTAL = 8 * 1024  # bytes of all custom names and values together


def header_value_problem(value: str) -> str | None:
    """Why `value` is not an RFC 9110 field-value that can be sent, or None when it is fine.

    Visible ASCII and obs-text (anything non-ASCII: it is sent UTF-8 encoded, bytes 0x80-0xFF),
    with spaces and tabs inside but not at either end; no control characters and no DEL.
    """
    for ch in value:
        if (ord(ch) < 0x20 and ch != "\t") or ch == "\x7f":
            return f"may not contain control characters (found U+{ord(ch):04X})"
    if value[:1] in (" ", "\t") or value[-1:] in (" ", "\t"):
        return "may not start or end with a space or tab"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid text (lone surrogate)"
    return None


def validate_headers(value: Any, path: str, blocked: frozenset[str]) -> tuple[dict[str, str], list[FieldError]]:
    """Custom request headers: RFC 9110 token names and field-values, at most 20, 8 KiB in all."""
    errors: list[FieldError] = []
    if value is None:
        return {}, errors
    if not isinstance(value, dict):
        return {}, [FieldError(path, "must be an object of header name to value", CommonErrorCode.INVALID)]
    if len(value) > MAX_CUSTOM_HEADERS:
        return {}, [FieldError(path, f"at most {MAX_CUSTOM_HEADERS} custom headers are allowed, "
                                     f"{len(value)} were given", CommonErrorCode.TOO_LONG)]
    clean: dict[str, str] = {}
    seen: set[str] = set()
    for name, header_value in value.items():
        sub = f"{path}.{name}"
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            errors.append(FieldError(sub, f"{name!r} is not a valid header name (letters, digits and "
                                          "!#$%&'*+-.^_`|~, at most 100)", IntegrationErrorCode.INVALID_HEADER))
            continue
        lowered = name.lower()
        if lowered in blocked or lowered.startswith("webhook-"):
            errors.append(FieldError(sub, f"the {name!r} header cannot be customized",
                                     IntegrationErrorCode.BLOCKED_HEADER))
            continue
        if lowered in seen:
            errors.append(FieldError(sub, f"the {name!r} header is given more than once (names ignore case)",
                                     IntegrationErrorCode.INVALID_HEADER))
            continue
        seen.add(lowered)
        if not isinstance(header_value, str):
            errors.append(FieldError(sub, f"the value of header {name!r} must be a string", CommonErrorCode.INVALID))
            continue
        if len(header_value) > MAX_HEADER_VALUE:
            errors.append(FieldError(sub, f"the value of header {name!r} is longer than {MAX_HEADER_VALUE} "
                                          "characters", CommonErrorCode.TOO_LONG))
            continue
        if problem := header_value_problem(header_value):
            errors.append(FieldError(sub, f"the value of header {name!r} {problem}",
                                     IntegrationErrorCode.INVALID_HEADER))
            continue
        clean[name] = header_value
    total = sum(len(k.encode()) + len(v.encode()) for k, v in clean.items())
    if total > MAX_HEADERS_TOTAL:
        errors.append(FieldError(path, f"custom headers take {total} bytes in all; at most {MAX_HEADERS_TOTAL} "
                                       "are allowed", CommonErrorCode.TOO_LONG))
    return clean, errors
