"""Owner actions on account-level integrations: connect, update, rotate the secret, test, disconnect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.core import signing
from app.core.errors import CommonErrorCode, FieldError, IntegrationErrorCode
from app.core.secret_box import SecretBox
from app.delivery import filters
from app.delivery.runtime import Runtime
from app.delivery.sender import attempt_delivery
from app.delivery.unit import Unit
from app.integrations.base import IntegrationKind
from app.integrations.registry import get_kind
from app.integrations.templates import split_template, with_template
from app.models import Delivery, DeliveryStatus, Event, Integration, IntegrationScope, IntegrationStatus, Workspace
from app.services import event_catalog
from app.services.deliveries import release_held
from app.services.result import Done
from app.services.validation import split_common, validate_event_filters, validate_name, with_common

MAX_GRACE_SECONDS = 7 * 24 * 3600


@dataclass
class Connected:
    integration: Integration
    secret: str | None  # the generated signing secret, shown once


@dataclass
class TestSent:
    success: bool
    response_code: int | None
    duration_ms: int | None
    error_message: str | None
    delivery: Delivery


def _as_dict(value: Any, path: str) -> tuple[dict, list[FieldError]]:
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        return {}, [FieldError(path, "must be a JSON object")]
    return value, []


async def connect(
    unit: Unit,
    workspace: Workspace,
    *,
    type_name: str,
    name: str,
    config: Any,
    secrets: Any = None,
    events: list[str] | None = None,
    scope: IntegrationScope | None = None,
    enabled: bool | None = None,
) -> Done[Connected]:
    settings, box = unit.runtime.settings, unit.runtime.box
    kind = get_kind(type_name)
    if kind is None:
        return Done.refused(FieldError("type", f"unknown integration type {type_name!r}",
                                       IntegrationErrorCode.UNKNOWN_TYPE))
    if reason := kind.unavailable_reason(settings):
        return Done.refused(FieldError("type", reason, IntegrationErrorCode.TYPE_UNAVAILABLE))
    errors: list[FieldError] = []
    if err := validate_name(name, "name"):
        errors.append(err)
    config_dict, e1 = _as_dict(config, "config")
    secrets_dict, e2 = _as_dict(secrets, "secrets")
    event_filters, e3 = validate_event_filters(["*"] if events is None else events, "events")
    config_dict, common, e4 = split_common(config_dict)  # every type has them: the kinds never see them
    config_dict, template, e5 = split_template(kind, config_dict)
    errors += e1 + e2 + e3 + e4 + e5
    validated = kind.validate(config_dict, secrets_dict, existing_secrets=None, settings=settings)
    errors += validated.errors
    if errors:
        return Done.refused(*errors)
    ready = kind.needs_setup(validated.config) is None
    integration = await Integration.create(
        workspace=workspace,
        status=IntegrationStatus.ACTIVE if ready else IntegrationStatus.NEEDS_SETUP,
        type=kind.type,
        name=name.strip(),
        config=with_template(with_common(validated.config, common), template),
        secrets_encrypted=box.seal(validated.secrets),
        events=event_filters,
        scope=scope or IntegrationScope.WORKSPACE,
        enabled=True if enabled is None else enabled,
    )
    return Done(Connected(integration, validated.generated_secret))


def secret_names(integration: Integration, box: SecretBox) -> list[str]:
    """Which secrets are set, never their values."""
    stored = box.open(integration.secrets_encrypted)
    names = [k for k in ("url", "signing_secret", "access_token", "refresh_token") if stored.get(k)]
    names += [f"headers.{h}" for h in sorted((stored.get("headers") or {}).keys())]
    return names


def public_config(integration: Integration) -> dict[str, Any]:
    """The integration's config as queries show it: a URL that is a credential masked (it is stored so)."""
    return get_kind(integration.type).public_config(dict(integration.config or {}))


async def update(
    unit: Unit,
    integration: Integration,
    *,
    name: str | None = None,
    config: Any = None,
    secrets: Any = None,
    events: list[str] | None = None,
    scope: IntegrationScope | None = None,
    enabled: bool | None = None,
) -> Done[Integration]:
    """Changes what was given; turning a DISABLED integration back on releases its HELD deliveries."""
    settings, box = unit.runtime.settings, unit.runtime.box
    kind = get_kind(integration.type)
    errors: list[FieldError] = []
    if name is not None and (err := validate_name(name, "name")):
        errors.append(err)
    config_dict, e1 = _as_dict(config, "config")
    secrets_dict, e2 = _as_dict(secrets, "secrets")
    errors += e1 + e2
    event_filters = None
    if events is not None:
        event_filters, e3 = validate_event_filters(events, "events")
        errors += e3
    validated = None
    if config is not None or secrets is not None:
        merged = {k: v for k, v in (integration.config or {}).items() if k != "header_names"}
        if kind.url_is_secret and config_dict.get("url") == public_config(integration).get("url"):
            # The masked URL a query returned, sent back unchanged: the stored URL stays (the kind
            # finds the real one in the secrets, or in the config of a row not yet migrated).
            config_dict.pop("url")
        merged.update(config_dict)  # `timeoutSeconds: null` goes back to the server's default
        merged, common, e4 = split_common(merged)
        merged, template, e5 = split_template(kind, merged)  # `template: null` goes back to the built-in body
        e4 += e5
        validated = kind.validate(merged, secrets_dict, existing_secrets=box.open(integration.secrets_encrypted),
                                  settings=settings)
        errors += e4 + validated.errors
    if errors:
        return Done.refused(*errors)
    if name is not None:
        integration.name = name.strip()
    if validated is not None:
        integration.config = with_template(with_common(validated.config, common), template)
        integration.secrets_encrypted = box.seal(validated.secrets)
    if event_filters is not None:
        integration.events = event_filters
    if scope is not None:
        integration.scope = scope
    if enabled is not None:
        integration.enabled = enabled
        if enabled and integration.status in (IntegrationStatus.DISABLED, IntegrationStatus.FAILING):
            integration.status = IntegrationStatus.ACTIVE
            integration.failing_since = None
    _settle_setup(kind, integration)
    await integration.save()
    if integration.enabled and integration.status == IntegrationStatus.ACTIVE:
        await release_held(unit, integration)
    return Done(integration)


def _settle_setup(kind: IntegrationKind, integration: Integration) -> None:
    """NEEDS_SETUP while the config lacks what the account chooses after connecting (a spreadsheet);
    ACTIVE once it is there, so the caller releases what was held meanwhile."""
    missing = kind.needs_setup(integration.config or {}) is not None
    if missing and integration.status in (IntegrationStatus.ACTIVE, IntegrationStatus.FAILING):
        integration.status = IntegrationStatus.NEEDS_SETUP
        integration.failing_since = None
    elif not missing and integration.status == IntegrationStatus.NEEDS_SETUP:
        integration.status = IntegrationStatus.ACTIVE


async def rotate_secret(unit: Unit, integration: Integration, grace_period_seconds: int) -> Done[str]:
    """A new signing secret (answered once); the old one keeps signing too until the grace ends."""
    kind = get_kind(integration.type)
    if kind is None or kind.auth != "signing_secret":
        return Done.refused(FieldError("id", "only webhook integrations have a signing secret",
                                       CommonErrorCode.NOT_SUPPORTED))
    if grace_period_seconds < 0 or grace_period_seconds > MAX_GRACE_SECONDS:
        return Done.refused(FieldError("gracePeriodSeconds", f"must be between 0 and {MAX_GRACE_SECONDS}",
                                       CommonErrorCode.OUT_OF_RANGE))
    box = unit.runtime.box
    stored = box.open(integration.secrets_encrypted)
    new_secret = signing.generate_secret()
    if grace_period_seconds and stored.get("signing_secret"):
        stored["previous_signing_secret"] = stored["signing_secret"]
        stored["previous_expires_at"] = datetime.now(UTC).timestamp() + grace_period_seconds
    else:
        stored.pop("previous_signing_secret", None)
        stored.pop("previous_expires_at", None)
    stored["signing_secret"] = new_secret
    integration.secrets_encrypted = box.seal(stored)
    await integration.save(update_fields=["secrets_encrypted", "updated_at"])
    return Done(new_secret)


async def disconnect(unit: Unit, integration: Integration) -> Done[str]:
    """Deletes the integration; its attachments and delivery history go with it."""
    integration_id = integration.id
    await integration.delete()
    return Done(integration_id)


async def prepare_test(unit: Unit, integration: Integration, event_type: str | None) -> Done[Delivery]:
    """`integrationTest`, first half: the sample event and its test delivery, written in the unit."""
    event_type = event_type or "integration.test"
    if missing := get_kind(integration.type).needs_setup(integration.config or {}):
        return Done.refused(FieldError("id", f"this integration is not set up yet: {missing}",
                                       CommonErrorCode.NOT_SUPPORTED))
    if not filters.is_valid_event_name(event_type):
        return Done.refused(FieldError("event", "must be an event name like 'session.completed'"))
    # A type in the event catalog sends its example, marked `"test": true`; any other, the generic sample.
    example = await event_catalog.test_payload(integration.workspace_id, event_type)
    if not example.ok:
        return Done.refused(*example.errors)
    payload = example.value or get_kind(integration.type).sample_payload(event_type)
    now = datetime.now(UTC)
    event = await Event.create(workspace_id=integration.workspace_id, type=event_type, payload=payload,
                               created_at=now)
    return Done(await Delivery.create(
        workspace_id=integration.workspace_id, event=event, integration=integration, event_type=event_type,
        status=DeliveryStatus.PENDING, is_test=True, next_attempt_at=now,
    ))


async def send_test(runtime: Runtime, delivery: Delivery) -> Done[TestSent]:
    """`integrationTest`, second half, once the test delivery is committed: send it now and say how it went.
    No transaction is held while the request is out."""
    result = await attempt_delivery(delivery.id, runtime, trigger="test")
    done = result.delivery if result else await Delivery.get(id=delivery.id)
    return Done(TestSent(success=done.status == DeliveryStatus.SUCCEEDED, response_code=done.response_code,
                         duration_ms=done.duration_ms, error_message=done.last_error, delivery=done))
