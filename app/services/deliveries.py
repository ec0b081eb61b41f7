"""Owner actions on deliveries: retry one now, recover failures, release what was held."""

from __future__ import annotations

from datetime import UTC, datetime

from app.core.errors import DeliveryErrorCode, FieldError
from app.delivery import updates
from app.delivery.queue import QueuedSend, enqueue_sends
from app.delivery.unit import Unit
from app.models import Delivery, DeliveryStatus, Integration
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

    async def announce_and_queue() -> None:
        await updates.announce(runtime.redis, await Delivery.filter(id__in=ids).select_related("form"))
        if runtime.redis is not None:
            await enqueue_sends(runtime.redis, [QueuedSend(i, n + 1, trigger) for i, n in rows])

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


async def recover(unit: Unit, integration: Integration, since: datetime, until: datetime | None) -> Done[int]:
    """Re-queues every FAILED delivery of the integration created in [since, until]; answers how many."""
    until = until or datetime.now(UTC)
    rows = await Delivery.filter(
        integration_id=integration.id, status=DeliveryStatus.FAILED, created_at__gte=since, created_at__lte=until
    ).order_by("id").limit(MAX_RECOVER).values_list("id", "attempt_count")
    await _requeue(unit, list(rows), [DeliveryStatus.FAILED], "recover")
    return Done(len(rows))


async def release_held(unit: Unit, integration: Integration) -> Done[int]:
    """After an owner re-enables or reconnects an integration, its HELD deliveries go out."""
    rows = await Delivery.filter(integration_id=integration.id, status=DeliveryStatus.HELD).values_list(
        "id", "attempt_count"
    )
    return Done(await _requeue(unit, list(rows), [DeliveryStatus.HELD], "recover", last_error=None))
