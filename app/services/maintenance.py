"""Housekeeping the operator runs by hand: purging old finished deliveries and exporting deliveries.

Both work in batches (keyset pages by id) and report progress through an optional callback, so a
big table never sits in memory and a command line can draw a progress bar."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import orjson

from app.delivery import retention
from app.delivery.retention import FINISHED, Purged
from app.models import Delivery

BATCH = retention.BATCH
EXPORT_FORMATS = ("jsonl", "csv")
# What GraphQL's `Delivery` type shows, by the same names: never the integration's secrets (the
# request log was masked when it was written) nor the worker's lease.
EXPORT_FIELDS = ("id", "workspace_id", "integration_id", "event_id", "form_id", "event_type", "status", "is_test",
                 "attempt_count", "next_attempt_at", "response_code", "duration_ms", "error_message", "request",
                 "response", "created_at", "updated_at", "delivered_at")
_COLUMNS = tuple("last_error" if f == "error_message" else f for f in EXPORT_FIELDS)

Progress = Callable[[int, int], None]  # (done so far, total)


async def purge_finished(older_than: timedelta, *, batch: int = BATCH, progress: Progress | None = None,
                         now: datetime | None = None) -> Purged:
    """Deletes SUCCEEDED and FAILED deliveries created more than `older_than` ago, with their attempts,
    then the events older than that which no delivery refers to any more (in short transactions of
    `batch` deliveries: see app.delivery.retention)."""
    cutoff = (now or datetime.now(UTC)) - older_than
    total = await Delivery.filter(created_at__lt=cutoff, status__in=list(FINISHED)).count()
    if progress:
        progress(0, total)

    def report(purged: Purged) -> None:
        if progress:
            progress(min(purged.deliveries, total), total)

    return await retention.purge_finished(cutoff, batch=batch, progress=report)


def _time_range(since: datetime, until: datetime | None) -> dict[str, Any]:
    return {"created_at__gte": since, **({"created_at__lte": until} if until is not None else {})}


async def count_deliveries(since: datetime, until: datetime | None = None) -> int:
    return await Delivery.filter(**_time_range(since, until)).count()


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def delivery_rows(since: datetime, until: datetime | None = None, *,
                        batch: int = BATCH) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of deliveries created in [since, until], oldest id first, as EXPORT_FIELDS dicts."""
    last_id = ""
    while True:
        rows = await (Delivery.filter(id__gt=last_id, **_time_range(since, until)).order_by("id").limit(batch)
                      .values_list(*_COLUMNS))
        if not rows:
            return
        last_id = rows[-1][0]
        yield [{field: _jsonable(value) for field, value in zip(EXPORT_FIELDS, row, strict=True)} for row in rows]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


async def export_deliveries(out: TextIO, fmt: str, since: datetime, until: datetime | None = None, *,
                            batch: int = BATCH, progress: Progress | None = None) -> int:
    """Writes the deliveries created in [since, until] to `out` as JSON lines or CSV (with a header row);
    answers how many."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    total = await count_deliveries(since, until)
    if progress:
        progress(0, total)
    writer = None
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(EXPORT_FIELDS)
    written = 0
    async for rows in delivery_rows(since, until, batch=batch):
        for row in rows:
            if writer is not None:
                writer.writerow([_cell(row[field]) for field in EXPORT_FIELDS])
            else:
                out.write(orjson.dumps(row).decode() + "\n")
        written += len(rows)
        if progress:
            progress(min(written, max(total, written)), max(total, written))
    return written
