"""Publishing an event: the event and a delivery per recipient, written in the caller's unit of work;
the jobs are queued (and PENDING announced) in one Redis round trip once it commits."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.core import tracing
from app.core.errors import CommonErrorCode, FieldError
from app.core.logging import get_logger
from app.delivery import batch_sql, event_schemas, filters, logic, metrics, ordering, pacing, throttle, updates
from app.delivery.health import SystemEvent
from app.delivery.queue import QueuedSend
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
from app.models.rows import new_row

log = get_logger("app.delivery.fanout")

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_IDEMPOTENCY_KEY = 200
# What choosing recipients reads; not the secrets and names every publish would decode (the config for
# the ordering lane).
RECIPIENT_FIELDS = ("id", "type", "events", "scope", "status", "config")


@dataclass
class Published:
    event: Event | None
    deliveries: list[Delivery] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)
    created: bool = False


@dataclass(frozen=True)
class EventInput:
    """An event to publish, unchecked. `path` prefixes the fields of its errors (`events.3.`)."""

    type: Any
    payload: Any
    form_slug: str | None = None
    idempotency_key: Any = None
    path: str = ""


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
    elif (size := event_schemas.encoded_size(payload)) is None:
        errors.append(FieldError("payload", event_schemas.NOT_ENCODABLE))
    elif size > MAX_PAYLOAD_BYTES:
        errors.append(FieldError("payload", f"is larger than {MAX_PAYLOAD_BYTES // 1024} KiB",
                                 CommonErrorCode.TOO_LONG))
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key
                                        or len(idempotency_key) > MAX_IDEMPOTENCY_KEY):
        errors.append(FieldError("idempotencyKey", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters"))
    return errors


def recipient_for(integration: Integration, event: Event, attachment: FormIntegration | None) -> Recipient | None:
    """The integration as a recipient of `event`, were it published now; None when it would not get it.
    `attachment` is the integration's (enabled) attachment to the event's form, if any."""
    if not filters.matches(integration.events, event.type):
        return None
    return _admitted(integration, event.type, event.payload, attachment)


def _admitted(integration: Integration, event_type: str, payload: Any,
              attachment: FormIntegration | None) -> Recipient | None:
    """The scope step, for an integration whose own filter matches the type."""
    if integration.scope == IntegrationScope.WORKSPACE:
        return Recipient(integration, None)
    if attachment and filters.matches(attachment.events, event_type) and logic.evaluate(attachment.logic, payload):
        return Recipient(integration, attachment)
    return None


@dataclass
class Audience:
    """Who may hear a publish: the workspace's enabled integrations whose filter matches one of its types,
    and their enabled attachments to its forms. Loaded once (`load_audience`, two queries at most) and
    matched in memory per event (`recipients`), however many events the publish has."""

    integrations: list[Integration]
    attachments: dict[tuple[str, str], FormIntegration]  # (form id, integration id) -> attachment
    _by_type: dict[str, list[Integration]] = field(default_factory=dict)

    def recipients(self, event_type: str, form_id: str | None, payload: Any) -> list[Recipient]:
        """Every integration whose filter matches and whose scope lets the event in."""
        matching = self._by_type.get(event_type)
        if matching is None:
            matching = self._by_type[event_type] = [i for i in self.integrations
                                                    if filters.matches(i.events, event_type)]
        out = []
        for integration in matching:
            attachment = self.attachments.get((form_id, integration.id)) if form_id is not None else None
            if (recipient := _admitted(integration, event_type, payload, attachment)) is not None:
                out.append(recipient)
        return out


async def load_audience(workspace_id: str, event_types: Collection[str], form_ids: Collection[str],
                        exclude_integration_id: str | None = None) -> Audience:
    integrations = [
        i for i in await batch_sql.enabled_integrations(workspace_id, RECIPIENT_FIELDS)
        if i.id != exclude_integration_id and any(filters.matches(i.events, t) for t in event_types)
    ]
    scoped = [i.id for i in integrations if i.scope == IntegrationScope.FORMS]
    attachments: dict[tuple[str, str], FormIntegration] = {}
    if scoped and form_ids:
        for att in await FormIntegration.filter(form_id__in=list(form_ids), integration_id__in=scoped, enabled=True):
            attachments[(att.form_id, att.integration_id)] = att
    return Audience(integrations, attachments)


async def recipients(workspace_id: str, event_type: str, form: Form | None, payload: Any,
                     exclude_integration_id: str | None = None) -> list[Recipient]:
    """Every enabled integration whose filter matches and whose scope lets the event in."""
    audience = await load_audience(workspace_id, (event_type,), (form.id,) if form else (), exclude_integration_id)
    return audience.recipients(event_type, form.id if form else None, payload)


def new_delivery(event: Event, recipient: Recipient, now: datetime) -> Delivery:
    held = recipient.integration.status in HOLDING_STATUSES
    return new_row(
        Delivery,
        workspace_id=event.workspace_id,
        event_id=event.id,
        integration_id=recipient.integration.id,
        form_id=event.form_id,
        attachment_id=recipient.attachment.id if recipient.attachment else None,
        event_type=event.type,
        ordering_key=ordering.lane_of(recipient.integration.config, event.payload),
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
    published = await publish_events(unit, workspace_id, [EventInput(type_name, payload, form_slug, idempotency_key)],
                                     exclude_integration_id=exclude_integration_id)
    return published[0]


@dataclass
class _Planned:
    """An event of a publish that passed every check: what `_write` inserts."""

    index: int
    event: Event
    recipients: list[Recipient]
    deliveries: list[Delivery] = field(default_factory=list)
    checked: event_schemas.Checked | None = None


async def publish_events(unit: Unit, workspace_id: str, items: Sequence[EventInput], *,
                         exclude_integration_id: str | None = None) -> list[Published]:
    """Publishes several events in the unit's transaction: one `Published` per item, in order. An item
    with errors (its fields prefixed with its `path`) is not published; the others are.

    Whatever the number of items: one query for their forms, one for the idempotency keys seen before
    (and one for those events' deliveries), the catalog check per item (cached per type), one load of
    the recipients matched in memory, one insert of the events and one of their deliveries (in a
    savepoint when keys are involved: if a concurrent publish took a key meanwhile, the items are
    written one savepoint each and the loser answers the winner's event), and, once the unit commits,
    one Redis round trip for every job and PENDING update."""
    results: list[Published | None] = [None] * len(items)
    errors: list[list[FieldError]] = [
        [_at(item.path, e) for e in validate_event(item.type, item.payload, item.idempotency_key)] for item in items
    ]
    slugs = {item.form_slug for item in items if item.form_slug is not None}
    # No longer slug exists, and tortoise refuses to compare one with the column.
    wanted = [slug for slug in slugs if len(slug) <= 64]
    forms = {f.slug: f for f in await Form.filter(workspace_id=workspace_id, slug__in=wanted)} if wanted else {}
    for item, found in zip(items, errors, strict=True):
        if item.form_slug is not None and item.form_slug not in forms:
            found.append(FieldError(item.path + "formSlug", f"no form {item.form_slug!r} in this workspace",
                                    CommonErrorCode.NOT_FOUND))
    keys = {item.idempotency_key for item, found in zip(items, errors, strict=True)
            if item.idempotency_key and not found}
    existing = await _existing_many(workspace_id, keys) if keys else {}

    planned: list[_Planned] = []
    pending: dict[str, int] = {}  # idempotency key -> index of the item of this publish that creates its event
    duplicates: list[tuple[int, int]] = []  # (item, the earlier item with its key)
    for index, (item, found) in enumerate(zip(items, errors, strict=True)):
        key = item.idempotency_key
        if found:
            results[index] = Published(event=None, errors=found)
        elif key and key in existing:
            results[index] = existing[key]
        elif key and key in pending:
            duplicates.append((index, pending[key]))
        else:
            # The event catalog's schema for the type, if any: STRICT refuses a mismatch, LENIENT records it.
            checked = await event_schemas.check_payload(workspace_id, item.type, item.payload)
            if checked is not None and checked.refused:
                results[index] = Published(event=None, errors=[_at(item.path, e) for e in checked.errors()])
                continue
            form = forms.get(item.form_slug) if item.form_slug is not None else None
            event = Event(workspace_id=workspace_id, form=form, type=item.type, payload=item.payload,
                          idempotency_key=key or None,
                          schema_errors=checked.recorded() if checked is not None else None)
            planned.append(_Planned(index, event, [], checked=checked))
            if key:
                pending[key] = index

    if planned:
        audience = await load_audience(workspace_id, {p.event.type for p in planned},
                                       {p.event.form_id for p in planned if p.event.form_id},
                                       exclude_integration_id)
        now = datetime.now(UTC)
        for plan in planned:
            plan.event.created_at = now
            plan.recipients = audience.recipients(plan.event.type, plan.event.form_id, plan.event.payload)
            plan.deliveries = [new_delivery(plan.event, r, now) for r in plan.recipients]
        await ordering.queue_behind([d for p in planned for d in p.deliveries], now)
        booked = await pacing.book([(d, throttle.limits_of(r.integration.type, r.integration.config))
                                    for p in planned for d, r in zip(p.deliveries, p.recipients, strict=True)],
                                   unit.runtime, now)
        if booked:  # a publish that fails from here leaves no empty slots for later sends to wait behind
            unit.after_rollback(lambda: pacing.unbook(booked, unit.runtime))
        written = await _write(workspace_id, planned)
        for plan in planned:
            results[plan.index] = written.get(plan.index) or Published(event=plan.event, deliveries=plan.deliveries,
                                                                       created=True)
    for index, first in duplicates:  # the same key twice in one publish: the later ones answer the first's event
        earlier = results[first]
        results[index] = Published(event=earlier.event, deliveries=earlier.deliveries, created=False)

    created = [p for p in planned if results[p.index].created]
    for plan in created:
        if plan.event.schema_errors:
            event_schemas.log_recorded(workspace_id, plan.event.id, plan.event.type, plan.checked)
    deliveries = [d for p in created for d in p.deliveries]
    if deliveries or created:
        kinds = {r.integration.id: r.integration.type for p in created for r in p.recipients}
        form_slugs = {f.id: f.slug for f in forms.values()}
        trace = tracing.traceparent()  # the publish's span: the jobs' spans join its trace
        runtime = unit.runtime
        unit.after_commit(lambda: queue_new(deliveries, runtime, None, kinds, trace, form_slugs=form_slugs))
    return results  # type: ignore[return-value]  # every index is filled


def _at(path: str, error: FieldError) -> FieldError:
    return replace(error, field=path + error.field) if path and error.field is not None else error


async def publish_system_events(unit: Unit, events: list[SystemEvent]) -> None:
    for event in events:
        payload = dict(event.payload)
        form_slug = None
        if event.form_id:
            form = await Form.get_or_none(id=event.form_id)
            form_slug = payload["formSlug"] = form.slug if form else None
        await publish_event(unit, event.workspace_id, event.type, payload, form_slug=form_slug,
                            exclude_integration_id=event.exclude_integration_id)


async def _write(workspace_id: str, planned: list[_Planned]) -> dict[int, Published]:
    """Inserts the planned events and their deliveries; answers the items that lost their idempotency key
    to a concurrent publish (by index), which then answer the event that won."""
    if not any(p.event.idempotency_key for p in planned):
        await _insert(planned)
        return {}
    try:
        async with in_transaction():  # a savepoint: losing the race to a key is not an error
            await _insert(planned)
        return {}
    except IntegrityError:
        pass
    # Some key was taken meanwhile: one savepoint per keyed event, so the others still go in.
    lost: dict[int, Published] = {}
    for plan in planned:
        key = plan.event.idempotency_key
        if not key:
            await _insert([plan])
            continue
        try:
            async with in_transaction():
                await _insert([plan])
        except IntegrityError:
            if (existing := await _existing(workspace_id, key)) is None:
                raise
            lost[plan.index] = existing
    return lost


async def _insert(planned: list[_Planned]) -> None:
    """The events and their deliveries, all or none, in a transaction or not (`eventPublish` runs in none):
    on PostgreSQL, events that all have deliveries go in one round trip (`batch_sql.insert_published`)."""
    if all(p.deliveries for p in planned) and batch_sql.on_postgres():
        await batch_sql.insert_published([(p.event, p.deliveries) for p in planned])
        return
    if len(planned) == 1 and not planned[0].deliveries:
        await planned[0].event.save()  # one statement
        return
    async with in_transaction():  # a savepoint when the caller's unit has a transaction
        await Event.bulk_create([p.event for p in planned])
        deliveries = [d for p in planned for d in p.deliveries]
        if deliveries:
            await Delivery.bulk_create(deliveries)


async def queue_new(deliveries: list[Delivery], runtime: Runtime, form_slug: str | None,
                    kinds: dict[str, str] | None = None, trace: str | None = None, *,
                    form_slugs: Mapping[str, str] | None = None) -> None:
    """Queues the new deliveries (and counts them: `kinds` maps integration ids to types); if Redis
    is down the sweeper finds them in the database. Their updates name `form_slug`, or with `form_slugs`
    (form id -> slug, deliveries of several forms) each one's own."""
    metrics.count_created(deliveries, kinds or {})
    if runtime.redis is None or not deliveries:
        return
    pending = [d for d in deliveries if d.status == DeliveryStatus.PENDING and d.blocked_by is None]
    now = datetime.now(UTC)
    try:  # one round trip, shared with the other publishes of this process in flight (see queue_group)
        await runtime.queue_group.put(
            [updates.DeliveryUpdate.of(
                d, None, form_slugs.get(d.form_id) if form_slugs is not None and d.form_id else form_slug)
             for d in deliveries],
            [QueuedSend(d.id, d.attempt_count + 1, traceparent=trace, run_at=pacing.booked_run_at(d, now))
             for d in pending])
    except (OSError, RedisError):
        pass  # the database holds them; the sweeper re-queues when Redis is back
    if lanes := ordering.waiting_lanes(deliveries):
        # The one they wait behind may have finished while this publish was being written, too early to
        # see them: the first of each such lane goes now (else the sweeper's recheck finds it).
        try:
            await ordering.wake_lanes(lanes, runtime)
        except Exception as exc:  # published all the same: the recheck queues them
            log.warning("ordered lanes not woken after a publish", error=type(exc).__name__,
                        recheck_seconds=ordering.BLOCKED_RECHECK)


async def _existing(workspace_id: str, key: str) -> Published | None:
    return (await _existing_many(workspace_id, {key})).get(key)


async def _existing_many(workspace_id: str, keys: Collection[str]) -> dict[str, Published]:
    """The events the workspace already has with these idempotency keys, with their deliveries: two queries."""
    events = await Event.filter(workspace_id=workspace_id, idempotency_key__in=list(keys))
    if not events:
        return {}
    found: dict[str, list[Delivery]] = {e.id: [] for e in events}
    for delivery in await Delivery.filter(event_id__in=list(found)).order_by("id"):
        found[delivery.event_id].append(delivery)
    return {e.idempotency_key: Published(event=e, deliveries=found[e.id], created=False) for e in events}
