"""Deleting old finished deliveries (with their attempts), then the old events no delivery refers to any more.

In small batches, oldest first, each its own short transaction, so a purge of millions of rows never holds
locks or a snapshot for long and sends go on meanwhile (bench/log_growth.py measures their stalls). The
batches walk the `created_at` indexes by (created_at, id) keyset: a batch reads only the rows it deletes
(and the unfinished ones it steps over), however many were deleted before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app.models import Delivery, DeliveryAttempt, DeliveryStatus, Event

# Only deliveries that are done: PENDING, SENDING, RETRYING and HELD ones are still on their way.
FINISHED = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)
BATCH = 500
# Between batches: sends (in the same worker process, and on the same database) go first. A day of a
# 1M-delivery log (~33k rows) then takes ~7 s and sends wait ~40 ms at worst (bench/log_growth.py).
PAUSE = 0.02


@dataclass
class Purged:
    deliveries: int = 0
    attempts: int = 0
    events: int = 0


def _after(qs: QuerySet, last: tuple[str, datetime] | None) -> QuerySet:
    """The rows after `last` (id, created_at) in (created_at, id) order."""
    if last is None:
        return qs
    last_id, last_at = last
    return qs.filter(Q(created_at__gt=last_at) | Q(created_at=last_at, id__gt=last_id), created_at__gte=last_at)


async def purge_finished(cutoff: datetime, *, batch: int = BATCH, pause: float = PAUSE,
                         progress: Callable[[Purged], None] | None = None) -> Purged:
    """Deletes SUCCEEDED and FAILED deliveries created before `cutoff`, with their attempts, then the
    events created before it that no delivery refers to; `pause` seconds between batches."""
    purged, last = Purged(), None
    finished = list(FINISHED)
    while True:
        rows = await (_after(Delivery.filter(created_at__lt=cutoff, status__in=finished), last)
                      .order_by("created_at", "id").limit(batch).values_list("id", "created_at"))
        if not rows:
            break
        last = rows[-1]
        async with in_transaction():
            # The status is checked again as the rows go: one retried meanwhile stays, with its attempts.
            gone = list(await Delivery.filter(id__in=[r[0] for r in rows], status__in=finished).select_for_update()
                        .values_list("id", flat=True))
            if gone:
                purged.attempts += await DeliveryAttempt.filter(delivery_id__in=gone).delete()
                purged.deliveries += await Delivery.filter(id__in=gone).delete()
        if progress:
            progress(purged)
        await asyncio.sleep(pause)
    last = None
    while True:
        rows = await (_after(Event.filter(created_at__lt=cutoff, deliveries__id__isnull=True), last)
                      .order_by("created_at", "id").limit(batch).values_list("id", "created_at"))
        if not rows:
            break
        last = rows[-1]
        purged.events += await Event.filter(id__in=[r[0] for r in rows], deliveries__id__isnull=True).delete()
        if progress:
            progress(purged)
        await asyncio.sleep(pause)
    return purged
