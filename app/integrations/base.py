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
from app.core.http import OutgoingRequest, mask_url
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
    # Set by a type that refreshed OAuth tokens in `secrets`; the sender then stores them encrypted.
    secrets_changed: bool = False
    # What a plugin keeps between deliveries in this process (the runtime owns it), by plugin.
    shared: dict[str, Any] = field(default_factory=dict)


class Exchange(Protocol):
    """What a type's `deliver` gets to make calls: records every request for the log."""

    async def send(self, request: OutgoingRequest) -> tuple[int, dict[str, str], bytes]: ...


class IntegrationKind:
    type: ClassVar[str]
    label: ClassVar[str]
    auth: ClassVar[str] = "none"  # none | signing_secret | oauth2
    config_fields: ClassVar[tuple[ConfigField, ...]] = ()
    # config.url holds a credential (chat webhooks): queries show it masked, see public_config.
    url_is_secret: ClassVar[bool] = False

    def public_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config as queries return it."""
        if self.url_is_secret and isinstance(config.get("url"), str):
            return {**config, "url": mask_url(config["url"])}
        return config

    def validate(
        self, config: dict[str, Any], secrets: dict[str, Any], *, existing_secrets: dict[str, Any] | None,
        settings: Settings,
    ) -> Validated:
        raise NotImplementedError

    def unavailable_reason(self, settings: Settings) -> str | None:
        """Why this type cannot be connected on this server (e.g. its OAuth app is not configured)."""
        return None

    def build_request(self, ctx: DeliveryContext) -> OutgoingRequest:
        raise NotImplementedError

    def read_response(self, status: int, headers: dict[str, str], body: bytes) -> Outcome:
        return default_outcome(status, headers)

    async def deliver(self, ctx: DeliveryContext, exchange: Exchange) -> Outcome:
        """One request by default; multi-call types (OAuth CRMs) override this.

        Network errors propagate: the sender records them and schedules a retry.
        """
        status, headers, body = await exchange.send(self.build_request(ctx))
        return self.read_response(status, headers, body)

    def sample_payload(self, event_type: str) -> dict[str, Any]:
        return sample_payload(event_type)


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


def validate_headers(value: Any, path: str, blocked: frozenset[str]) -> tuple[dict[str, str], list[FieldError]]:
    errors: list[FieldError] = []
    if value is None:
        return {}, errors
    if not isinstance(value, dict):
        return {}, [FieldError(path, "must be an object of header name to value", CommonErrorCode.INVALID)]
    clean: dict[str, str] = {}
    for name, header_value in value.items():
        sub = f"{path}.{name}"
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            errors.append(FieldError(sub, f"{name!r} is not a valid header name", CommonErrorCode.INVALID))
            continue
        lowered = name.lower()
        if lowered in blocked or lowered.startswith("webhook-"):
            errors.append(FieldError(sub, f"the {name!r} header cannot be customized", IntegrationErrorCode.BLOCKED_HEADER))
            continue
        if not isinstance(header_value, str):
            errors.append(FieldError(sub, "header values must be strings", CommonErrorCode.INVALID))
            continue
        if "\r" in header_value or "\n" in header_value:
            errors.append(FieldError(sub, "header values may not contain CR or LF", CommonErrorCode.INVALID))
            continue
        if len(header_value) > 4096:
            errors.append(FieldError(sub, "header value is longer than 4096 characters", CommonErrorCode.TOO_LONG))
            continue
        clean[name] = header_value
    return clean, errors
