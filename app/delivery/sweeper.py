"""Re-queues deliveries that are due but not moving, and purges old ones.

The database is the truth: after a Redis flush or restart, or a worker killed
mid-send, this finds every delivery that should be on its way and queues it again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q

from app.delivery import retention
from app.delivery.queue import QueuedSend, enqueue_sends
from app.delivery.runtime import Runtime
from app.models import Delivery, DeliveryStatus

BATCH = 1000


async def sweep(runtime: Runtime, *, grace_seconds: float | None = None) -> int:
    """Queues every due PENDING/RETRYING delivery and every SENDING one whose lease ran out."""
    if runtime.redis is None:
        return 0
    now = datetime.now(UTC)
    grace = runtime.settings.stuck_after_seconds if grace_seconds is None else grace_seconds
    due_before = now - timedelta(seconds=grace)
    condition = (
        Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING]) & Q(next_attempt_at__lte=due_before)
    ) | (Q(status=DeliveryStatus.SENDING) & Q(locked_until__lt=now))
    queued, last_id = 0, ""
    while True:
        rows = await Delivery.filter(condition, id__gt=last_id).order_by("id").limit(BATCH).values_list(
            "id", "attempt_count", "status", "locked_until"
        )
        if not rows:
            return queued
        queued += await enqueue_sends(runtime.redis, [_resend(*row) for row in rows])
        last_id = rows[-1][0]


def _resend(delivery_id: str, attempts: int, status: DeliveryStatus, locked_until: datetime | None) -> QueuedSend:
    """The job for a due delivery keeps its attempt's id, so sweeping it again rewrites the same job.
    A send taken back from a worker whose lease ran out gets an id of its own (one per lost lease): the
    lost worker's arq in-progress key for the old id would hold the job back until it expires."""
    retake = None
    if status == DeliveryStatus.SENDING and locked_until is not None:
        retake = f"r{int(locked_until.timestamp())}"
    return QueuedSend(delivery_id, attempts + 1, retake=retake)


async def purge(runtime: Runtime, *, older_than_days: float | None = None) -> int:
    """Deletes finished deliveries (with their attempts) older than the retention age, then orphaned
    events, in small batches that never hold sends back (see app.delivery.retention)."""
    days = runtime.settings.retention_days if older_than_days is None else older_than_days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    return (await retention.purge_finished(cutoff)).deliveries
