"""Ordered delivery, opt-in per integration (`config.ordering: ORDERED`).

An ordered integration's deliveries go out one at a time, in publish order, per lane: the value at
`config.orderingKey` in the payload (a path like `order.id`), or one lane for all when there is no key
(events without the value share the "" lane). Only the earliest unfinished delivery of a lane (PENDING,
SENDING, RETRYING or HELD) is sent: one that is retrying holds the ones behind it; one that finally fails
(or succeeds) lets the next go. A delivery held back waits as PENDING (RETRYING if it has failed before)
with `blocked_by` naming the one ahead; when that one finishes, the next of its lane is queued at once.
A sweep every `BLOCKED_RECHECK` seconds is the safety net.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.errors import CommonErrorCode, FieldError
from app.delivery import batch_sql, updates
from app.delivery.queue import QueuedSend, enqueue_sends
from app.delivery.runtime import Runtime
from app.integrations.field_mapping import validate_path, value_at
from app.models import Delivery, DeliveryStatus

ORDERING_KEY = "ordering"
KEY_PATH_KEY = "orderingKey"
ORDERED, UNORDERED = "ORDERED", "UNORDERED"
MAX_LANE_LENGTH = 200
# Unfinished: these hold the deliveries behind them in their lane.
UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRYING, DeliveryStatus.HELD)
BLOCKED_RECHECK = 60.0
BLOCKED_FIELDS = ("status", "next_attempt_at", "locked_until", "blocked_by", "updated_at")


def validate_ordering(config: Mapping[str, Any], path: str = "config") -> tuple[dict[str, Any], list[FieldError]]:
    """`ordering` (ORDERED / UNORDERED) and `orderingKey` (a payload path, only when ordered), checked."""
    clean: dict[str, Any] = {}
    errors: list[FieldError] = []
    ordering = config.get(ORDERING_KEY)
    if ordering not in (None, ORDERED, UNORDERED):
        errors.append(FieldError(f"{path}.{ORDERING_KEY}", "must be ORDERED or UNORDERED", CommonErrorCode.INVALID))
    elif ordering == ORDERED:
        clean[ORDERING_KEY] = ORDERED
    key = config.get(KEY_PATH_KEY)
    if key is not None:
        if ordering != ORDERED:
            errors.append(FieldError(f"{path}.{KEY_PATH_KEY}", "applies to ordered integrations only: set "
                                                               "`ordering: ORDERED` too", CommonErrorCode.INVALID))
        elif (problem := validate_path(key, f"{path}.{KEY_PATH_KEY}")) is not None:
            errors.append(problem)
        elif key.startswith("$"):
            errors.append(FieldError(f"{path}.{KEY_PATH_KEY}", "must be a path into the payload, like order.id",
                                     CommonErrorCode.INVALID))
        else:
            clean[KEY_PATH_KEY] = key
    return clean, errors


def is_ordered(config: Mapping[str, Any] | None) -> bool:
    return bool(config) and config.get(ORDERING_KEY) == ORDERED


def lane_of(config: Mapping[str, Any] | None, payload: Any) -> str | None:
    """The lane a new delivery goes out in: None for an unordered integration."""
    if not is_ordered(config):
        return None
    path = config.get(KEY_PATH_KEY)
    if not path:
        return ""
    value = value_at(payload, path)
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)[:MAX_LANE_LENGTH]


def _unfinished_probes(lanes: Sequence[tuple[str, str]], bind: batch_sql.Binder) -> str:
    """A query of the earliest delivery of each lane in each unfinished status (integration_id,
    ordering_key, id): one index probe each (the index ends in id), however long the lane's history."""
    probes = []
    for integration_id, lane in lanes:
        for status in UNFINISHED:
            probes.append(f'SELECT * FROM (SELECT "integration_id", "ordering_key", "id" FROM "delivery" '
                          f'WHERE "integration_id" = {bind(integration_id)} AND "ordering_key" = {bind(lane)} '
                          f'AND "status" = {bind(status.value)} ORDER BY "id" LIMIT 1) AS p{len(probes)}')
    return " UNION ALL ".join(probes)


async def first_of_lanes(lanes: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The earliest unfinished delivery of each (integration id, lane): one index probe per lane and
    unfinished status, however long the lane's backlog or history."""
    lanes = sorted(set(lanes))
    if not lanes:
        return {}
    db = Delivery._choose_db(False)
    bind = batch_sql.Binder(db)
    rows = await db.execute_query_dict(_unfinished_probes(lanes, bind), bind.values)
    first: dict[tuple[str, str], str] = {}
    for row in rows:
        key = (row["integration_id"], row["ordering_key"])
        if key not in first or row["id"] < first[key]:
            first[key] = row["id"]
    return first


async def queue_behind(deliveries: Sequence[Delivery], now: datetime) -> None:
    """Before new deliveries are inserted: those of ordered lanes that already have an unfinished delivery
    (in the database, or earlier in the same publish) wait behind it, unqueued, with `blocked_by` naming
    it; the first of a lane without one goes at once. The worker then never claims, checks and puts back
    the deliveries a lane is not ready for: each is queued once, when the one ahead of it finishes."""
    ordered = sorted((d for d in deliveries if d.ordering_key is not None and d.status == DeliveryStatus.PENDING),
                     key=lambda d: d.id)
    if not ordered:
        return
    heads = await first_of_lanes((d.integration_id, d.ordering_key) for d in ordered)
    for delivery in ordered:
        lane = (delivery.integration_id, delivery.ordering_key)
        ahead = heads.setdefault(lane, delivery.id)
        if ahead != delivery.id:
            delivery.blocked_by = ahead
            delivery.next_attempt_at = now + timedelta(seconds=BLOCKED_RECHECK)


def waiting_lanes(deliveries: Iterable[Delivery]) -> set[tuple[str, str]]:
    """The lanes of the new deliveries `queue_behind` made wait."""
    return {(d.integration_id, d.ordering_key) for d in deliveries
            if d.ordering_key is not None and d.blocked_by is not None}


async def hold_back(deliveries: Sequence[Delivery], runtime: Runtime,
                    trigger: str) -> tuple[list[Delivery], asyncio.Future | None]:
    """The claimed deliveries that may go now; those behind an earlier unfinished one of their lane go
    back to waiting (a test is sent when asked). Putting them back runs in the returned future, beside the
    sends: await it before the batch is done."""
    ordered = [d for d in deliveries if d.ordering_key is not None]
    if not ordered or trigger == "test":
        return list(deliveries), None
    first = await first_of_lanes((d.integration_id, d.ordering_key) for d in ordered)
    blocked = [d for d in ordered if first.get((d.integration_id, d.ordering_key), d.id) != d.id]
    if not blocked:
        return list(deliveries), None
    held = {d.id for d in blocked}
    writing = asyncio.ensure_future(_wait_behind(blocked, first, runtime))
    return [d for d in deliveries if d.id not in held], writing


async def _wait_behind(blocked: list[Delivery], first: dict[tuple[str, str], str], runtime: Runtime) -> None:
    now = datetime.now(UTC)
    for delivery in blocked:
        delivery.status = DeliveryStatus.RETRYING if delivery.attempt_count else DeliveryStatus.PENDING
        delivery.blocked_by = first[(delivery.integration_id, delivery.ordering_key)]
        delivery.next_attempt_at = now + timedelta(seconds=BLOCKED_RECHECK)
        delivery.locked_until = None
        delivery.updated_at = now
    await batch_sql.save_many(blocked, BLOCKED_FIELDS)
    await updates.announce(runtime.redis, blocked)
    # The one ahead may have finished between the check and the write, without seeing these waiting.
    await wake_lanes({(d.integration_id, d.ordering_key) for d in blocked}, runtime)


async def wake_lanes(lanes: Iterable[tuple[str, str]], runtime: Runtime) -> int:
    """Queues, now, the first delivery of each lane when it is one that waits behind another (in a worker's
    process, starts its attempt at once). Two statements: the lanes' heads, then one UPDATE of those still
    waiting behind another, by id, that makes them due and answers them.

    Every publish to an ordered lane, and every send of one that finishes, wakes its lane: many wake the
    same heads at once. On PostgreSQL a head another transaction holds is skipped, never waited for (FOR
    UPDATE SKIP LOCKED): that one is waking it, or changing it and waking its lane after. Waiting, two wakes
    locking the same heads in different orders deadlocked, and held each other's publish a second (the
    deadlock timeout) before one failed."""
    first = await first_of_lanes(lanes)
    if not first:
        return 0
    db = Delivery._choose_db(True)
    bind = batch_sql.Binder(db)
    now = datetime.now(UTC)
    stamp = Delivery._meta.fields_map["next_attempt_at"].to_db_value(now, None)
    assignments = f'"blocked_by" = NULL, "next_attempt_at" = {bind(stamp)}, "updated_at" = {bind(stamp)}'
    ids = ", ".join(bind(i) for i in first.values())
    waiting = batch_sql.statuses_sql(DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
    # Found by id, then checked: `"status" || ''` keeps the planner off the status indexes, which would
    # read a lane's whole backlog (see batch_sql.claim).
    wakeable = f'"id" IN ({ids}) AND "blocked_by" IS NOT NULL AND ("status" || \'\') IN ({waiting})'
    if bind.postgres:
        wakeable = f'"id" IN (SELECT "id" FROM "delivery" WHERE {wakeable} FOR UPDATE SKIP LOCKED)'
    rows = await db.execute_query_dict(
        f'UPDATE "delivery" SET {assignments} WHERE {wakeable} RETURNING "id", "attempt_count"', bind.values)
    if not rows:
        return 0
    if runtime.start_sends is not None:  # a worker's process: no round trip through the queue
        runtime.start_sends([row["id"] for row in rows])
    elif runtime.redis is not None:
        stamp_ms = int(now.timestamp() * 1000)
        await enqueue_sends(runtime.redis, [QueuedSend(row["id"], row["attempt_count"] + 1, retake=f"o{stamp_ms}")
                                            for row in rows])
    return len(rows)


def finished_lanes(deliveries: Iterable[Delivery]) -> set[tuple[str, str]]:
    """The lanes of ordered deliveries that just finished (succeeded or finally failed)."""
    return {(d.integration_id, d.ordering_key) for d in deliveries
            if d.ordering_key is not None and d.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)}
