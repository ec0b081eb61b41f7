"""Owner actions on deliveries: retry one now, recover failures (or everything), release what was held."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from tortoise.expressions import Q

from app.core import tracing
from app.core.errors import DeliveryErrorCode, FieldError
from app.delivery import fanout, updates
from app.delivery.queue import QueuedSend, enqueue_sends
from app.delivery.unit import Unit
from app.models import Delivery, DeliveryStatus, Event, FormIntegration, Integration, IntegrationScope
from app.services.result import Done

RETRYABLE = (DeliveryStatus.FAILED, DeliveryStatus.RETRYING, DeliveryStatus.SUCCEEDED, DeliveryStatus.HELD)
MAX_RECOVER = 10_000


async def _requeue(unit: Unit, rows: list[tuple[str, int]], from_statuses: list[DeliveryStatus], trigger: str,
                   **changes) -> int:
    """Moves the deliveries still in `from_statuses` to PENDING now; once the unit commits their
    PENDING state is announced and their jobs queued. Returns how many moved."""
    if not rows:
        return 0
    ids = [delivery_id for delivery_id, _ in rows]
    moved = await Delivery.filter(id__in=ids, status__in=from_statuses).update(
        status=DeliveryStatus.PENDING, next_attempt_at=datetime.now(UTC), **changes
    )
    if not moved:
        return 0
    runtime = unit.runtime
    trace = tracing.traceparent()  # tracing on: the jobs join the trace of the request that asked

    async def announce_and_queue() -> None:
        await updates.announce(runtime.redis, await Delivery.filter(id__in=ids).select_related("form"))
        if runtime.redis is not None:
            await enqueue_sends(runtime.redis, [QueuedSend(i, n + 1, trigger, traceparent=trace) for i, n in rows])

    unit.after_commit(announce_and_queue)
    return moved


async def retry_now(unit: Unit, delivery: Delivery) -> Done[Delivery]:
    """Re-sends the original payload now, whatever happened before (except while it is being sent)."""
    if delivery.status in (DeliveryStatus.SENDING, DeliveryStatus.PENDING):
        return Done.refused(FieldError("id", f"the delivery is {delivery.status.value} already",
                                       DeliveryErrorCode.INVALID_STATE))
    if not await _requeue(unit, [(delivery.id, delivery.attempt_count)], list(RETRYABLE), "manual"):
        return Done.refused(FieldError("id", "the delivery changed state; try again", DeliveryErrorCode.INVALID_STATE))
    await delivery.refresh_from_db()
    return Done(delivery)


def _of_forms(form_ids: Collection[str] | None) -> Q:
    """Objects of these forms, or of no form; everything when `form_ids` is None (no portal-session limit)."""
    return Q() if form_ids is None else Q(form_id__in=list(form_ids)) | Q(form_id__isnull=True)


async def recover(unit: Unit, integration: Integration, since: datetime, until: datetime | None,
                  statuses: Sequence[DeliveryStatus] = (DeliveryStatus.FAILED,), *,
                  form_ids: Collection[str] | None = None) -> Done[int]:
    """Re-queues every delivery of the integration in `statuses` (FAILED unless told) created in
    [since, until]; answers how many. PENDING and SENDING ones are on their way already: refused.
    With `form_ids` (a portal session limited to some forms), only those forms' deliveries and form-less ones."""
    wanted = list(dict.fromkeys(DeliveryStatus(s) for s in statuses))
    for i, status in enumerate(wanted):
        if status not in RETRYABLE:
            return Done.refused(FieldError(f"statuses.{i}", f"{status.value} deliveries are on their way already; "
                                                            f"expected {', '.join(s.value for s in RETRYABLE)}",
                                           DeliveryErrorCode.INVALID_STATE))
    if not wanted:
        return Done(0)
    until = until or datetime.now(UTC)
    rows = await Delivery.filter(
        _of_forms(form_ids), integration_id=integration.id, status__in=wanted, created_at__gte=since,
        created_at__lte=until,
    ).order_by("id").limit(MAX_RECOVER).values_list("id", "attempt_count")
    await _requeue(unit, list(rows), wanted, "recover")
    return Done(len(rows))


async def resend_all(unit: Unit, integration: Integration, since: datetime, until: datetime | None, *,
                     form_ids: Collection[str] | None = None) -> Done[int]:
    """Sends again every event of [since, until] the integration should have received as it is set up now
    (its event filter, and its forms' filters and conditions for a FORMS integration): the deliveries it
    has are re-queued, whatever became of them (unless on their way already), and events it has none of
    (published while it was switched off, or before it was attached) get one. At most MAX_RECOVER,
    oldest first; answers how many were queued. `form_ids` as in `recover`."""
    if not integration.enabled:
        return Done.refused(FieldError("integrationId", "the integration is switched off: switch it on first, "
                                                        "then resend", DeliveryErrorCode.INVALID_STATE))
    until = until or datetime.now(UTC)
    events = await Event.filter(_of_forms(form_ids), workspace_id=integration.workspace_id, created_at__gte=since,
                                created_at__lte=until).order_by("id").limit(MAX_RECOVER)
    attachments: dict[str, FormIntegration] = {}
    if integration.scope == IntegrationScope.FORMS:
        attachments = {a.form_id: a for a in await FormIntegration.filter(integration_id=integration.id, enabled=True)}
    wanted = [(event, recipient) for event in events
              if (recipient := fanout.recipient_for(integration, event, attachments.get(event.form_id))) is not None]
    if not wanted:
        return Done(0)
    existing = {
        row[0]: row for row in await Delivery.filter(
            integration_id=integration.id, event_id__in=[e.id for e, _ in wanted]
        ).order_by("id").values_list("event_id", "id", "attempt_count", "status")
    }
    requeue = [(row[1], row[2]) for row in existing.values() if row[3] in RETRYABLE]
    now = datetime.now(UTC)
    missing = [fanout.new_delivery(event, recipient, now) for event, recipient in wanted if event.id not in existing]
    queued = await _requeue(unit, requeue, list(RETRYABLE), "recover", last_error=None)
    if missing:
        await Delivery.bulk_create(missing)
        runtime = unit.runtime
        kinds = {integration.id: integration.type}
        unit.after_commit(lambda: fanout.queue_new(missing, runtime, None, kinds))
    return Done(queued + sum(1 for d in missing if d.status == DeliveryStatus.PENDING))


async def release_held(unit: Unit, integration: Integration) -> Done[int]:
    """After an owner re-enables or reconnects an integration, its HELD deliveries go out."""
    rows = await Delivery.filter(integration_id=integration.id, status=DeliveryStatus.HELD).values_list(
        "id", "attempt_count"
    )
    return Done(await _requeue(unit, list(rows), [DeliveryStatus.HELD], "recover", last_error=None))
