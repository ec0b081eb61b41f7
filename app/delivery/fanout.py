"""Publishing an event: one transaction writes the event and a delivery per recipient."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.delivery import filters, logic, updates
from app.delivery.queue import QueuedSend, add_sends
from app.delivery.runtime import Runtime
from app.integrations.base import FieldError
from app.models import (
    Delivery,
    DeliveryStatus,
    Event,
    Form,
    FormIntegration,
    Integration,
    IntegrationScope,
    IntegrationStatus,
    Workspace,
)

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_IDEMPOTENCY_KEY = 200
HELD_STATUSES = (IntegrationStatus.DISABLED, IntegrationStatus.NEEDS_REAUTH)
# What choosing recipients reads; not the config, secrets and names every publish would decode.
RECIPIENT_FIELDS = ("id", "events", "scope", "status")


@dataclass
class Published:
    event: Event | None
    deliveries: list[Delivery] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)
    created: bool = False


@dataclass(frozen=True)
class Recipient:
    integration: Integration
    attachment: FormIntegration | None


def validate_event(type_name: Any, payload: Any, idempotency_key: Any) -> list[FieldError]:
    errors = []
    if not isinstance(type_name, str) or not filters.is_valid_event_name(type_name):
        errors.append(FieldError("type", "must be an event name like 'session.completed'", "INVALID"))
    if not isinstance(payload, dict):
        errors.append(FieldError("payload", "must be a JSON object", "INVALID"))
    elif len(orjson.dumps(payload)) > MAX_PAYLOAD_BYTES:
        errors.append(FieldError("payload", f"is larger than {MAX_PAYLOAD_BYTES // 1024} KiB", "TOO_LONG"))
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key
                                        or len(idempotency_key) > MAX_IDEMPOTENCY_KEY):
        errors.append(FieldError("idempotencyKey", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters", "INVALID"))
    return errors


async def recipients(workspace_id: str, event_type: str, form: Form | None, payload: Any,
                     exclude_integration_id: str | None = None) -> list[Recipient]:
    """Every enabled integration whose filter matches and whose scope lets the event in."""
    candidates = [
        i for i in await Integration.filter(workspace_id=workspace_id, enabled=True).only(*RECIPIENT_FIELDS)
        if i.id != exclude_integration_id and filters.matches(i.events, event_type)
    ]
    scoped = [i for i in candidates if i.scope == IntegrationScope.FORMS]
    attachments: dict[str, FormIntegration] = {}
    if scoped and form is not None:
        for att in await FormIntegration.filter(form_id=form.id, integration_id__in=[i.id for i in scoped],
                                                enabled=True):
            attachments[att.integration_id] = att
    out = []
    for integration in candidates:
        if integration.scope == IntegrationScope.WORKSPACE:
            out.append(Recipient(integration, None))
            continue
        att = attachments.get(integration.id)
        if att and filters.matches(att.events, event_type) and logic.evaluate(att.logic, payload):
            out.append(Recipient(integration, att))
    return out


def _new_delivery(event: Event, recipient: Recipient, now: datetime) -> Delivery:
    held = recipient.integration.status in HELD_STATUSES
    return Delivery(
        workspace_id=event.workspace_id,
        event_id=event.id,
        integration_id=recipient.integration.id,
        form_id=event.form_id,
        attachment_id=recipient.attachment.id if recipient.attachment else None,
        event_type=event.type,
        status=DeliveryStatus.HELD if held else DeliveryStatus.PENDING,
        next_attempt_at=None if held else now,
        created_at=now,
        updated_at=now,
    )


async def publish_event(
    workspace: Workspace,
    type_name: str,
    payload: Any,
    *,
    runtime: Runtime | None,
    form_slug: str | None = None,
    idempotency_key: str | None = None,
    exclude_integration_id: str | None = None,
) -> Published:
    errors = validate_event(type_name, payload, idempotency_key)
    form = None
    if form_slug is not None:
        form = await Form.get_or_none(workspace=workspace, slug=form_slug)
        if form is None:
            errors.append(FieldError("formSlug", f"no form {form_slug!r} in this workspace", "NOT_FOUND"))
    if errors:
        return Published(event=None, errors=errors)
    if idempotency_key and (existing := await _existing(workspace, idempotency_key)):
        return existing

    targets = await recipients(workspace.id, type_name, form, payload, exclude_integration_id)
    now = datetime.now(UTC)
    try:
        async with in_transaction():
            event = await Event.create(workspace=workspace, form=form, type=type_name, payload=payload,
                                       idempotency_key=idempotency_key, created_at=now)
            deliveries = [_new_delivery(event, r, now) for r in targets]
            if deliveries:
                await Delivery.bulk_create(deliveries)
    except IntegrityError:
        if idempotency_key and (existing := await _existing(workspace, idempotency_key)):
            return existing
        raise
    await after_commit(deliveries, runtime, form_slug)
    return Published(event=event, deliveries=deliveries, created=True)


async def after_commit(deliveries: list[Delivery], runtime: Runtime | None, form_slug: str | None) -> None:
    """Queues the new deliveries; if Redis is down the sweeper finds them in the database."""
    if runtime is None or runtime.redis is None:
        return
    pending = [d for d in deliveries if d.status == DeliveryStatus.PENDING]
    if not deliveries:
        return
    try:
        # One round trip, in order: PENDING goes out before the jobs, so no subscriber sees SENDING first.
        async with runtime.redis.pipeline(transaction=False) as pipe:
            for d in deliveries:
                pipe.publish(updates.CHANNEL, updates.encode_update(d, None, form_slug))
            add_sends(pipe, [QueuedSend(d.id, d.attempt_count + 1) for d in pending],
                      serializer=runtime.redis.job_serializer, batch=True)
            await pipe.execute()
    except (OSError, RedisError):
        pass  # the database holds them; the sweeper re-queues when Redis is back


async def _existing(workspace: Workspace, key: str) -> Published | None:
    event = await Event.get_or_none(workspace=workspace, idempotency_key=key)
    if event is None:
        return None
    deliveries = await Delivery.filter(event_id=event.id).order_by("id")
    return Published(event=event, deliveries=deliveries, created=False)
