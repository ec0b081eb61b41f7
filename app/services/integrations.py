"""Connecting, changing and removing account-level integrations and their form attachments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from app.config import get_settings
from app.delivery import signing
from app.delivery.logic import validate_logic
from app.integrations.base import FieldError
from app.integrations.registry import get_kind
from app.models import Form, FormIntegration, Integration, IntegrationScope, IntegrationStatus, Workspace
from app.secrets_box import decrypt_json, encrypt_json
from app.services.validation import validate_event_filters, validate_name

MAX_GRACE_SECONDS = 7 * 24 * 3600


def _as_dict(value: Any, path: str) -> tuple[dict, list[FieldError]]:
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        return {}, [FieldError(path, "must be a JSON object", "INVALID")]
    return value, []


async def connect(
    workspace: Workspace,
    *,
    type_name: str,
    name: str,
    config: Any,
    secrets: Any = None,
    events: list[str] | None = None,
    scope: IntegrationScope | None = None,
    enabled: bool | None = None,
) -> tuple[Integration | None, str | None, list[FieldError]]:
    settings = get_settings()
    kind = get_kind(type_name)
    if kind is None:
        return None, None, [FieldError("type", f"unknown integration type {type_name!r}", "UNKNOWN_TYPE")]
    if reason := kind.unavailable_reason(settings):
        return None, None, [FieldError("type", reason, "TYPE_UNAVAILABLE")]
    errors: list[FieldError] = []
    if err := validate_name(name, "name"):
        errors.append(err)
    config_dict, e1 = _as_dict(config, "config")
    secrets_dict, e2 = _as_dict(secrets, "secrets")
    filters, e3 = validate_event_filters(["*"] if events is None else events, "events")
    errors += e1 + e2 + e3
    validated = kind.validate(config_dict, secrets_dict, existing_secrets=None, settings=settings)
    errors += validated.errors
    if errors:
        return None, None, errors
    integration = await Integration.create(
        workspace=workspace,
        type=kind.type,
        name=name.strip(),
        config=validated.config,
        secrets_encrypted=encrypt_json(validated.secrets),
        events=filters,
        scope=scope or IntegrationScope.WORKSPACE,
        enabled=True if enabled is None else enabled,
    )
    return integration, validated.generated_secret, []


def secret_names(integration: Integration) -> list[str]:
    """Which secrets are set, never their values."""
    stored = decrypt_json(integration.secrets_encrypted)
    names = [k for k in ("signing_secret", "access_token", "refresh_token") if stored.get(k)]
    names += [f"headers.{h}" for h in sorted((stored.get("headers") or {}).keys())]
    return names


def public_config(integration: Integration) -> dict[str, Any]:
    """The integration's config as queries show it: credentials in URLs masked."""
    return get_kind(integration.type).public_config(dict(integration.config or {}))


async def update(
    integration: Integration,
    *,
    name: str | None = None,
    config: Any = None,
    secrets: Any = None,
    events: list[str] | None = None,
    scope: IntegrationScope | None = None,
    enabled: bool | None = None,
) -> list[FieldError]:
    settings = get_settings()
    kind = get_kind(integration.type)
    errors: list[FieldError] = []
    if name is not None and (err := validate_name(name, "name")):
        errors.append(err)
    config_dict, e1 = _as_dict(config, "config")
    secrets_dict, e2 = _as_dict(secrets, "secrets")
    errors += e1 + e2
    filters = None
    if events is not None:
        filters, e3 = validate_event_filters(events, "events")
        errors += e3
    validated = None
    if config is not None or secrets is not None:
        merged = {k: v for k, v in (integration.config or {}).items() if k != "header_names"}
        if kind.url_is_secret and config_dict.get("url") == public_config(integration).get("url"):
            config_dict.pop("url")  # the masked URL a query returned, sent back unchanged
        merged.update(config_dict)
        validated = kind.validate(
            merged, secrets_dict, existing_secrets=decrypt_json(integration.secrets_encrypted), settings=settings
        )
        errors += validated.errors
    if errors:
        return errors
    if name is not None:
        integration.name = name.strip()
    if validated is not None:
        integration.config = validated.config
        integration.secrets_encrypted = encrypt_json(validated.secrets)
    if filters is not None:
        integration.events = filters
    if scope is not None:
        integration.scope = scope
    if enabled is not None:
        integration.enabled = enabled
        if enabled and integration.status in (IntegrationStatus.DISABLED, IntegrationStatus.FAILING):
            integration.status = IntegrationStatus.ACTIVE
            integration.failing_since = None
    await integration.save()
    return []


async def rotate_secret(integration: Integration, grace_period_seconds: int) -> tuple[str | None, list[FieldError]]:
    kind = get_kind(integration.type)
    if kind is None or kind.auth != "signing_secret":
        return None, [FieldError("id", "only webhook integrations have a signing secret", "NOT_SUPPORTED")]
    if grace_period_seconds < 0 or grace_period_seconds > MAX_GRACE_SECONDS:
        return None, [
            FieldError("gracePeriodSeconds", f"must be between 0 and {MAX_GRACE_SECONDS}", "OUT_OF_RANGE")
        ]
    stored = decrypt_json(integration.secrets_encrypted)
    new_secret = signing.generate_secret()
    if grace_period_seconds and stored.get("signing_secret"):
        stored["previous_signing_secret"] = stored["signing_secret"]
        stored["previous_expires_at"] = datetime.now(UTC).timestamp() + grace_period_seconds
    else:
        stored.pop("previous_signing_secret", None)
        stored.pop("previous_expires_at", None)
    stored["signing_secret"] = new_secret
    integration.secrets_encrypted = encrypt_json(stored)
    await integration.save(update_fields=["secrets_encrypted", "updated_at"])
    return new_secret, []


async def disconnect(integration: Integration) -> str:
    """Deletes the integration; its attachments and delivery history go with it."""
    integration_id = integration.id
    await integration.delete()
    return integration_id


def _attachment_fields(
    events: list[str] | None, logic: Any
) -> tuple[list[str] | None, list[FieldError]]:
    errors: list[FieldError] = []
    filters = None
    if events is not None:
        filters, errs = validate_event_filters(events, "events")
        errors += errs
    if logic is not None:
        errors += [FieldError(path, message, "INVALID_LOGIC") for path, message in validate_logic(logic, "logic")]
    return filters, errors


async def attach(
    form: Form,
    integration: Integration,
    *,
    events: list[str] | None,
    enabled: bool | None,
    notify_on_failure: bool | None,
    logic: Any,
) -> tuple[FormIntegration | None, list[FieldError]]:
    filters, errors = _attachment_fields(events, logic)
    if await FormIntegration.exists(form=form, integration=integration):
        errors.append(FieldError("integrationId", "this integration is already attached to the form", "TAKEN"))
    if errors:
        return None, errors
    async with in_transaction():
        attachment = await FormIntegration.create(
            form=form,
            integration=integration,
            events=filters if filters is not None else ["*"],
            enabled=True if enabled is None else enabled,
            notify_on_failure=bool(notify_on_failure),
            logic=logic or None,
        )
        if integration.scope != IntegrationScope.FORMS:
            integration.scope = IntegrationScope.FORMS
            await integration.save(update_fields=["scope", "updated_at"])
    return attachment, []


async def update_attachment(
    attachment: FormIntegration,
    *,
    events: list[str] | None,
    enabled: bool | None,
    notify_on_failure: bool | None,
    logic: Any,
    clear_logic: bool = False,
) -> list[FieldError]:
    filters, errors = _attachment_fields(events, logic)
    if errors:
        return errors
    if filters is not None:
        attachment.events = filters
    if enabled is not None:
        attachment.enabled = enabled
    if notify_on_failure is not None:
        attachment.notify_on_failure = notify_on_failure
    if logic is not None or clear_logic:
        attachment.logic = logic or None
    await attachment.save()
    return []


async def detach(attachment: FormIntegration) -> str:
    """Removes the attachment only; the integration keeps scope FORMS (it then receives nothing)."""
    attachment_id = attachment.id
    await attachment.delete()
    return attachment_id


async def after_update(integration: Integration) -> None:
    """An owner turning an integration back on releases what was held while it was disabled."""
    from app.delivery.health import release_held
    from app.delivery.runtime import get_runtime

    if integration.enabled and integration.status == IntegrationStatus.ACTIVE:
        await release_held(integration, get_runtime())
