"""Generic webhooks, signed per the Standard Webhooks spec."""

from __future__ import annotations

from typing import Any

import orjson

from app.config import Settings
from app.core import signing
from app.core.errors import CommonErrorCode, FieldError
from app.core.http import USER_AGENT
from app.integrations.base import (
    ConfigField,
    DeliveryContext,
    IntegrationKind,
    OutgoingRequest,
    Validated,
    validate_headers,
)
from app.integrations.templates import TEMPLATE_KEY, TemplateFailed, output_for, type_name
from app.integrations.urls import validate_target_url

BLOCKED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Authorization", "Content-Type", "Content-Length", "Host", "Cookie", "X-CSRF-Token",
        "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP", "X-Webhook-Signature",
    )
)
MIN_SECRET_LENGTH = 12
MAX_SECRET_LENGTH = 256


def _pop_secret_input(config: dict, secrets: dict) -> tuple[str | None, str | None]:
    """A signing secret may be given as config.secret or secrets.secret / secrets.signingSecret."""
    for where, store, key in (
        ("secrets.signingSecret", secrets, "signingSecret"),
        ("secrets.secret", secrets, "secret"),
        ("config.secret", config, "secret"),
        ("config.signingSecret", config, "signingSecret"),
    ):
        if key in store:
            return where, store.pop(key)
    return None, None


def _pop_headers_input(config: dict, secrets: dict) -> tuple[str | None, Any]:
    for where, store in (("secrets.headers", secrets), ("config.headers", config)):
        if "headers" in store:
            return where, store.pop("headers")
    return None, None


def validate_signing_secret(value: Any, path: str) -> FieldError | None:
    if not isinstance(value, str):
        return FieldError(path, "must be a string", CommonErrorCode.INVALID)
    if len(value) < MIN_SECRET_LENGTH:
        return FieldError(path, f"must be at least {MIN_SECRET_LENGTH} characters", CommonErrorCode.TOO_SHORT)
    if len(value) > MAX_SECRET_LENGTH:
        return FieldError(path, f"must be at most {MAX_SECRET_LENGTH} characters", CommonErrorCode.TOO_LONG)
    if any(ch.isspace() for ch in value):
        return FieldError(path, "may not contain whitespace", CommonErrorCode.INVALID)
    return None


class WebhookKind(IntegrationKind):
    type = "WEBHOOK"
    label = "Webhook"
    auth = "signing_secret"
    supports_template = True
    config_fields = (
        ConfigField("url", "Endpoint URL", "url", required=True, description="HTTPS URL that receives POSTs"),
        ConfigField("verify_ssl", "Verify TLS certificate", "boolean", description="default true"),
        ConfigField("headers", "Custom headers", "headers", secret=True, description="write-only values"),
        ConfigField("secret", "Signing secret", "secret", secret=True,
                    description="whsec_ secret; generated when omitted; at least 12 characters"),
    )

    def validate(self, config, secrets, *, existing_secrets, settings: Settings) -> Validated:
        config, secrets = dict(config), dict(secrets)
        errors: list[FieldError] = []
        secret_path, secret_value = _pop_secret_input(config, secrets)
        headers_path, headers_value = _pop_headers_input(config, secrets)
        clean: dict[str, Any] = {}

        url, url_error = validate_target_url(config.pop("url", None), "config.url", settings)
        if url_error:
            errors.append(url_error)
        clean["url"] = url
        verify = config.pop("verify_ssl", config.pop("verifySsl", True))
        if not isinstance(verify, bool):
            errors.append(FieldError("config.verify_ssl", "must be true or false", CommonErrorCode.INVALID))
        clean["verify_ssl"] = bool(verify)
        for unknown in config:
            errors.append(FieldError(f"config.{unknown}", f"unknown config field {unknown!r}",
                                     CommonErrorCode.UNKNOWN_FIELD))
        for unknown in secrets:
            errors.append(FieldError(f"secrets.{unknown}", f"unknown secret {unknown!r}",
                                     CommonErrorCode.UNKNOWN_FIELD))

        new_secrets = dict(existing_secrets or {})
        generated = None
        if secret_value is not None:
            err = validate_signing_secret(secret_value, secret_path)
            if err:
                errors.append(err)
            else:
                new_secrets["signing_secret"] = secret_value
        elif "signing_secret" not in new_secrets:
            generated = signing.generate_secret()
            new_secrets["signing_secret"] = generated

        if headers_path is not None:
            headers, header_errors = validate_headers(headers_value, headers_path, BLOCKED_HEADERS)
            errors.extend(header_errors)
            new_secrets["headers"] = headers
        clean["header_names"] = sorted((new_secrets.get("headers") or {}).keys())
        return Validated(config=clean, secrets=new_secrets, errors=errors, generated_secret=generated)

    def body_from_template(self, output: Any) -> Any:
        if not isinstance(output, dict | list):
            raise TemplateFailed(f"a webhook template must answer a JSON object or array, not {type_name(output)}")
        return output

    def build_request(self, ctx: DeliveryContext) -> OutgoingRequest:
        body: Any
        if ctx.config.get(TEMPLATE_KEY) is not None:
            body = output_for(self, ctx)  # signed like the built-in body: the signature covers what is sent
        else:
            body = {
                "type": ctx.event_type,
                "timestamp": ctx.timestamp.isoformat().replace("+00:00", "Z"),
                "data": ctx.payload,
            }
            if ctx.is_test:
                body["test"] = True
        raw = orjson.dumps(body)
        custom = dict(ctx.secrets.get("headers") or {})
        headers = {
            **custom,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signing.webhook_headers(active_secrets(ctx.secrets, ctx.timestamp), ctx.delivery_id,
                                      int(ctx.timestamp.timestamp()), raw),
        }
        return OutgoingRequest(
            method="POST",
            url=ctx.config["url"],
            headers=headers,
            body=raw,
            secret_headers=frozenset(h.lower() for h in custom) | {"webhook-signature"},
            verify_ssl=ctx.config.get("verify_ssl", True),
        )


def active_secrets(secrets: dict, now) -> list[str]:
    """The current signing secret, then the previous one while its grace period lasts."""
    out = [secrets["signing_secret"]]
    previous, until = secrets.get("previous_signing_secret"), secrets.get("previous_expires_at")
    if previous and until and now.timestamp() < float(until):
        out.append(previous)
    return out
