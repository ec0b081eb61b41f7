"""Owner actions on form attachments: attach an integration to a form, change or remove that."""

from __future__ import annotations

from typing import Any

from app.core.errors import AttachmentErrorCode, CommonErrorCode, FieldError
from app.delivery.logic import validate_logic
from app.delivery.unit import Unit
from app.models import Form, FormIntegration, Integration, IntegrationScope
from app.services.result import Done
from app.services.validation import validate_event_filters


def _attachment_fields(events: list[str] | None, logic: Any) -> tuple[list[str] | None, list[FieldError]]:
    errors: list[FieldError] = []
    event_filters = None
    if events is not None:
        event_filters, errs = validate_event_filters(events, "events")
        errors += errs
    if logic is not None:
        errors += [FieldError(path, message, AttachmentErrorCode.INVALID_LOGIC)
                   for path, message in validate_logic(logic, "logic")]
    return event_filters, errors


async def attach(
    unit: Unit,
    form: Form,
    integration: Integration,
    *,
    events: list[str] | None,
    enabled: bool | None,
    notify_on_failure: bool | None,
    logic: Any,
) -> Done[FormIntegration]:
    """Attaching switches the integration to scope FORMS: it then hears only its forms' events."""
    event_filters, errors = _attachment_fields(events, logic)
    if await FormIntegration.exists(form=form, integration=integration):
        errors.append(FieldError("integrationId", "this integration is already attached to the form",
                                 CommonErrorCode.TAKEN))
    if errors:
        return Done.refused(*errors)
    attachment = await FormIntegration.create(
        form=form,
        integration=integration,
        events=event_filters if event_filters is not None else ["*"],
        enabled=True if enabled is None else enabled,
        notify_on_failure=bool(notify_on_failure),
        logic=logic or None,
    )
    if integration.scope != IntegrationScope.FORMS:
        integration.scope = IntegrationScope.FORMS
        await integration.save(update_fields=["scope", "updated_at"])
    return Done(attachment)


async def update_attachment(
    unit: Unit,
    attachment: FormIntegration,
    *,
    events: list[str] | None,
    enabled: bool | None,
    notify_on_failure: bool | None,
    logic: Any,
    clear_logic: bool = False,
) -> Done[FormIntegration]:
    event_filters, errors = _attachment_fields(events, logic)
    if errors:
        return Done.refused(*errors)
    if event_filters is not None:
        attachment.events = event_filters
    if enabled is not None:
        attachment.enabled = enabled
    if notify_on_failure is not None:
        attachment.notify_on_failure = notify_on_failure
    if logic is not None or clear_logic:
        attachment.logic = logic or None
    await attachment.save()
    return Done(attachment)


async def detach(unit: Unit, attachment: FormIntegration) -> Done[str]:
    """Removes the attachment only; the integration keeps scope FORMS (it then receives nothing)."""
    attachment_id = attachment.id
    await attachment.delete()
    return Done(attachment_id)
