"""Manual retry and recovery of deliveries."""

from __future__ import annotations

from datetime import UTC, datetime

from app.delivery import updates
from app.delivery.queue import QueuedSend, enqueue_sends
from app.delivery.runtime import Runtime
from app.integrations.base import FieldError
from app.models import Delivery, DeliveryStatus

RETRYABLE = (DeliveryStatus.FAILED, DeliveryStatus.RETRYING, DeliveryStatus.SUCCEEDED, DeliveryStatus.HELD)
MAX_RECOVER = 10_000


async def retry_now(delivery: Delivery, runtime: Runtime) -> tuple[bool, list[FieldError]]:
    """Re-sends the original payload now, whatever happened before (except while it is being sent)."""
    if delivery.status in (DeliveryStatus.SENDING, DeliveryStatus.PENDING):
        return False, [FieldError("id", f"the delivery is {delivery.status.value} already", "INVALID_STATE")]
    now = datetime.now(UTC)
    changed = await Delivery.filter(id=delivery.id, status__in=list(RETRYABLE)).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now
    )
    if not changed:
        return False, [FieldError("id", "the delivery changed state; try again", "INVALID_STATE")]
    await delivery.refresh_from_db()
    await updates.announce(runtime.redis, await Delivery.filter(id=delivery.id).select_related("form"))
    await enqueue_sends(runtime.redis, [QueuedSend(delivery.id, delivery.attempt_count + 1, "manual")])
    return True, []


async def recover(integration_id: str, since: datetime, until: datetime | None, runtime: Runtime) -> int:
    """Re-queues every FAILED delivery of the integration created in [since, until]."""
    until = until or datetime.now(UTC)
    rows = await Delivery.filter(
        integration_id=integration_id, status=DeliveryStatus.FAILED, created_at__gte=since, created_at__lte=until
    ).order_by("id").limit(MAX_RECOVER).values_list("id", "attempt_count")
    if not rows:
        return 0
    now = datetime.now(UTC)
    ids = [r[0] for r in rows]
    await Delivery.filter(id__in=ids, status=DeliveryStatus.FAILED).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now
    )
    await updates.announce(runtime.redis, await Delivery.filter(id__in=ids).select_related("form"))
    await enqueue_sends(runtime.redis, [QueuedSend(i, n + 1, "recover") for i, n in rows])
    return len(rows)
