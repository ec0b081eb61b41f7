"""Publishing an event: the event and a delivery per recipient, written in the caller's unit of work;
the jobs are queued (and PENDING announced) in one Redis round trip once it commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.core.errors import CommonErrorCode, FieldError
from app.delivery import filters, logic, updates
from app.delivery.health import SystemEvent
from app.delivery.queue import QueuedSend, add_sends
from app.delivery.runtime import Runtime
from app.delivery.unit import Unit
from app.models import (
    HOLDING_STATUSES,
    Delivery,
    DeliveryStatus,
    Event,
    Form,
    FormIntegration,
    Integration,
    IntegrationScope,
)

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_IDEMPOTENCY_KEY = 200
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
        errors.append(FieldError("type", "must be an event name like 'session.completed'", CommonErrorCode.INVALID))
    if not isinstance(payload, dict):
        errors.append(FieldError("payload", "must be a JSON object", CommonErrorCode.INVALID))
    elif not _encodable(payload):
        errors.append(FieldError("payload", "holds a number outside the 64-bit range JSON receivers can read"))
    elif len(orjson.dumps(payload)) > MAX_PAYLOAD_BYTES:
        errors.append(FieldError("payload", f"is larger than {MAX_PAYLOAD_BYTES // 1024} KiB",
                                 CommonErrorCode.TOO_LONG))
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key
                                        or len(idempotency_key) > MAX_IDEMPOTENCY_KEY):
        errors.append(FieldError("idempotencyKey", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters"))
    return errors


def _encodable(payload: Any) -> bool:
    try:
        orjson.dumps(payload)
    except orjson.JSONEncodeError:
        return False
    return True


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
    held = recipient.integration.status in HOLDING_STATUSES
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
    unit: Unit,
    workspace_id: str,
    type_name: str,
    payload: Any,
    *,
    form_slug: str | None = None,
    idempotency_key: str | None = None,
    exclude_integration_id: str | None = None,
) -> Published:
    """Writes the event and a delivery per recipient in the unit's transaction; the jobs are queued,
    and the PENDING updates announced, once it commits."""
    errors = validate_event(type_name, payload, idempotency_key)
    form = None
    if form_slug is not None:
        if len(form_slug) <= 64:  # no longer slug exists, and tortoise refuses to compare one with the column
            form = await Form.get_or_none(workspace_id=workspace_id, slug=form_slug)
        if form is None:
            errors.append(FieldError("formSlug", f"no form {form_slug!r} in this workspace", CommonErrorCode.NOT_FOUND))
    if errors:
        return Published(event=None, errors=errors)
    if idempotency_key and (existing := await _existing(workspace_id, idempotency_key)):
        return existing

    targets = await recipients(workspace_id, type_name, form, payload, exclude_integration_id)
    now = datetime.now(UTC)
    if idempotency_key:
        try:
            async with in_transaction():  # a savepoint: losing the race to the same key is not an error
                event, deliveries = await _write(workspace_id, form, type_name, payload, idempotency_key, targets, now)
        except IntegrityError:
            if existing := await _existing(workspace_id, idempotency_key):
                return existing
            raise
    else:
        event, deliveries = await _write(workspace_id, form, type_name, payload, None, targets, now)
    unit.after_commit(lambda: queue_new(deliveries, unit.runtime, form_slug))
    return Published(event=event, deliveries=deliveries, created=True)


async def publish_system_events(unit: Unit, events: list[SystemEvent]) -> None:
    for event in events:
        payload = dict(event.payload)
        form_slug = None
        if event.form_id:
            form = await Form.get_or_none(id=event.form_id)
            form_slug = payload["formSlug"] = form.slug if form else None
        await publish_event(unit, event.workspace_id, event.type, payload, form_slug=form_slug,
                            exclude_integration_id=event.exclude_integration_id)


async def _write(workspace_id: str, form: Form | None, type_name: str, payload: Any, idempotency_key: str | None,
                 targets: list[Recipient], now: datetime) -> tuple[Event, list[Delivery]]:
    event = await Event.create(workspace_id=workspace_id, form=form, type=type_name, payload=payload,
                               idempotency_key=idempotency_key, created_at=now)
    deliveries = [_new_delivery(event, r, now) for r in targets]
    if deliveries:
        await Delivery.bulk_create(deliveries)
    return event, deliveries


async def queue_new(deliveries: list[Delivery], runtime: Runtime, form_slug: str | None) -> None:
    """Queues the new deliveries; if Redis is down the sweeper finds them in the database."""
    if runtime.redis is None or not deliveries:
        return
    pending = [d for d in deliveries if d.status == DeliveryStatus.PENDING]
    try:
        # One round trip, in order: PENDING goes out before the jobs, so no subscriber sees SENDING first.
        async with runtime.redis.pipeline(transaction=False) as pipe:
            for d in deliveries:
                pipe.publish(updates.CHANNEL, updates.DeliveryUpdate.of(d, None, form_slug).encode())
            add_sends(pipe, [QueuedSend(d.id, d.attempt_count + 1) for d in pending],
                      serializer=runtime.redis.job_serializer, batch=True)
            await pipe.execute()
    except (OSError, RedisError):
        pass  # the database holds them; the sweeper re-queues when Redis is back


async def _existing(workspace_id: str, key: str) -> Published | None:
    event = await Event.get_or_none(workspace_id=workspace_id, idempotency_key=key)
    if event is None:
        return None
    deliveries = await Delivery.filter(event_id=event.id).order_by("id")
    return Published(event=event, deliveries=deliveries, created=False)
