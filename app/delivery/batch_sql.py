"""The statements a worker runs per batch of sends (and a publish per event), built once per shape and reused.

Tortoise rebuilds a query's SQL on every call, which for a four-way join costs more CPU
than the database spends running it. These helpers keep the SQL text per batch size
(ids are padded to a few size buckets, so PostgreSQL sees a handful of prepared
statements, not one per size) and only bind new values. Values are converted by the
model fields exactly as Tortoise converts them, so SQLite and PostgreSQL both work.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Integration
from app.models.queries import parameterized

SEND_RELATIONS = ("event", "integration", "workspace", "form")
# SQL text by (connection, dialect, bucket size). Module-level on purpose: it is derived from the model
# and the dialect only, never from data or settings, holds a handful of entries, and is the same for
# every runtime in the process.
_load_sql: dict[tuple[str, str, int], tuple[str, list]] = {}
# The record statement by (connection, delivery fields written): see `record`.
_record_sql: dict[tuple[str, tuple[str, ...]], tuple[str, list[str]]] = {}
# The publish's insert by connection: see `insert_published`.
_publish_sql: dict[str, tuple[str, list[str], list[str]]] = {}
# A publish's recipients by (connection, dialect, columns): see `enabled_integrations`.
_recipients_sql: dict[tuple[str, str, tuple[str, ...]], str] = {}


def _bucket(n: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return size


def _padded(ids: Sequence[str]) -> list[str]:
    """`ids` repeated at the end up to the bucket size (`IN` ignores the repeats)."""
    ids = list(ids)
    return ids + [ids[-1]] * (_bucket(len(ids)) - len(ids))


def statuses_sql(*statuses: DeliveryStatus) -> str:
    """The statuses as SQL literals for an IN list (enum constants, never user input)."""
    return ", ".join(f"'{status.value}'" for status in statuses)


class Binder:
    """Parameter marks for SQL written by hand, on either database: call it with each value where its
    mark goes; `values` holds them in the order the marks appear."""

    def __init__(self, db: BaseDBAsyncClient):
        self.postgres = db.capabilities.dialect == "postgres"
        self.values: list = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.postgres else "?"


def _db() -> BaseDBAsyncClient:
    return Delivery._choose_db(True)


def on_postgres() -> bool:
    return _db().capabilities.dialect == "postgres"


async def _execute_many(db: BaseDBAsyncClient, sql: str, rows: list[list[Any]]) -> None:
    """asyncpg's `executemany`, which runs every row or none (one implicit transaction), without the
    BEGIN and COMMIT round trips Tortoise's `execute_many` adds outside a transaction; its errors
    translated to Tortoise's, as for Tortoise's own statements."""

    async def run(_client: BaseDBAsyncClient) -> None:
        async with db.acquire_connection() as connection:
            await connection.executemany(sql, rows)

    await db._translate_exceptions(run)


async def claim(ids: Sequence[str], now: datetime, lease: datetime, due_before: datetime, force: bool) -> list[str]:
    """Moves the due (or, forced, any unfinished) deliveries among `ids` and those whose send lease ran
    out to SENDING in one conditional UPDATE; returns the ids this caller now owns. On PostgreSQL a row
    another transaction holds is skipped (FOR UPDATE SKIP LOCKED), never waited for."""
    if not ids:
        return []
    db = _db()
    padded = _padded(ids)
    fields = Delivery._meta.fields_map
    bind = Binder(db)
    assignments = (f'"status" = {bind(fields["status"].to_db_value(DeliveryStatus.SENDING, None))}, '
                   f'"locked_until" = {bind(fields["locked_until"].to_db_value(lease, None))}, '
                   f'"updated_at" = {bind(fields["updated_at"].to_db_value(now, None))}')
    # The rows are found by id (the primary key) and only then checked. `"status" || ''` is not an
    # indexed column, so no plan can start from the status indexes instead: their statistics say PENDING
    # is rare (most of the log has succeeded) while a burst has thousands waiting, and such a plan reads
    # every one of them (and their dead versions) per claim.
    status = '("status" || \'\')'
    id_marks = ", ".join(bind(i) for i in padded)  # bound first: SQLite's marks are by position
    if force:
        ready = f'{status} IN ({statuses_sql(DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.FAILED)})'
    else:
        due = bind(fields["next_attempt_at"].to_db_value(due_before, None))
        ready = (f'{status} IN ({statuses_sql(DeliveryStatus.PENDING, DeliveryStatus.RETRYING)}) '
                 f'AND ("next_attempt_at" IS NULL OR "next_attempt_at" <= {due})')
    expired = bind(fields["locked_until"].to_db_value(now, None))
    claimable = (f'"id" IN ({id_marks}) AND (({ready}) OR ({status} = {statuses_sql(DeliveryStatus.SENDING)} '
                 f'AND "locked_until" < {expired}))')
    if bind.postgres:
        # Rows another worker is claiming this instant are skipped, not waited for: claims never contend.
        sql = (f'UPDATE "delivery" SET {assignments} WHERE "id" IN (SELECT "id" FROM "delivery" WHERE {claimable} '
               f'FOR UPDATE SKIP LOCKED) RETURNING "id"')
    else:  # SQLite runs one writer at a time
        sql = f'UPDATE "delivery" SET {assignments} WHERE {claimable} RETURNING "id"'
    rows = await db.execute_query_dict(sql, bind.values)
    return [row["id"] for row in rows]


async def load_for_send(ids: Sequence[str]) -> list[Delivery]:
    """`Delivery.filter(id__in=ids).select_related(event, integration, workspace, form)`, SQL built once."""
    if not ids:
        return []
    db = _db()
    padded = _padded(ids)
    key = (db.connection_name, db.capabilities.dialect, len(padded))
    cached = _load_sql.get(key)
    if cached is None:
        query = Delivery.filter(id__in=padded).select_related(*SEND_RELATIONS)
        sql, params = parameterized(query)
        if params != padded:  # not the shape assumed here: let Tortoise run it
            return await Delivery.filter(id__in=list(ids)).select_related(*SEND_RELATIONS)
        cached = _load_sql[key] = (sql, query._select_related_idx)
    sql, related = cached
    _, rows = await db.execute_query(sql, padded)
    return _instances(rows, related)


async def enabled_integrations(workspace_id: str, columns: Sequence[str]) -> list[Integration]:
    """`Integration.filter(workspace_id=..., enabled=True).only(*columns)`, SQL built once: every publish
    reads its workspace's integrations, and Tortoise building that query cost as much CPU as running it."""
    db = Integration._choose_db()
    key = (db.connection_name, db.capabilities.dialect, tuple(columns))
    sql = _recipients_sql.get(key)
    if sql is None:
        query = Integration.filter(workspace_id=workspace_id, enabled=True).only(*columns)
        sql, params = parameterized(query)
        if params != [workspace_id, True]:  # not the shape assumed here: let Tortoise run it
            return await Integration.filter(workspace_id=workspace_id, enabled=True).only(*columns)
        _recipients_sql[key] = sql
    _, rows = await db.execute_query(sql, [workspace_id, True])
    return [Integration._init_from_db(**dict(row)) for row in rows]


def _instances(rows: Sequence[Any], related: list) -> list[Delivery]:
    """The rows of the load as deliveries with their related objects, as Tortoise's `execute_select` makes
    them, except that the deliveries of a batch to the same integration share one Integration (and one
    Workspace, one Form): a batch is mostly a few integrations' sends, and building (and decoding the
    config of) the same integration once per delivery was most of the load's CPU. The event is built
    per delivery: a kind gets its payload and must not see another delivery's changes to it."""
    if not rows:
        return []
    shared: dict[tuple[Any, Any], Any] = {}
    deliveries = []
    keys = list(rows[0].keys())
    _, main_width, *_, root = related[0]
    main_keys = keys[:main_width]
    # Per related object, once per load: its columns' place in the row, their names without the table's
    # prefix, and where it hangs.
    parts = []
    start = main_width
    for model, width, *_, full_path in related[1:]:
        *parent, attr = full_path
        parts.append((model, start, start + width, [k.split(".", 1)[1] for k in keys[start:start + width]],
                      tuple(parent), f"_{attr}", (*parent, attr)))
        start += width
    for row in rows:
        values = tuple(row)
        delivery = Delivery._init_from_db(**dict(zip(main_keys, values[:main_width], strict=True)))
        instances: dict[tuple, Any] = {root: delivery}
        for model, first, end, names, parent, attr, path in parts:
            columns = values[first:end]
            obj = None
            if any(columns):
                data = dict(zip(names, columns, strict=True))
                if model is Event:
                    obj = model._init_from_db(**data)
                else:
                    key = (model, data.get(model._meta.db_pk_column))
                    obj = shared.get(key)
                    if obj is None:
                        obj = shared[key] = model._init_from_db(**data)
            owner = instances.get(parent)
            if owner is not None:
                object.__setattr__(owner, attr, obj)
            if obj is not None:
                instances[path] = obj
        deliveries.append(delivery)
    return deliveries


async def save_many(deliveries: Sequence[Delivery], fields: Sequence[str],
                    db: BaseDBAsyncClient | None = None) -> None:
    """`save(update_fields=...)` for many rows: Tortoise's own cached UPDATE, executed many times in
    one round trip (`bulk_update` would build a CASE per column and row instead), all rows or none. On
    PostgreSQL outside a transaction, asyncpg's `executemany` alone: no BEGIN and COMMIT round trips."""
    outside = db is None
    db = db or _db()
    executor = db.executor_class(model=Delivery, db=db)
    sql = executor.get_update_sql(list(fields), None)
    field_map = Delivery._meta.fields_map
    pk = Delivery._meta.pk
    rows = [[*(field_map[name].to_db_value(getattr(d, name), d) for name in fields), pk.to_db_value(d.pk, d)]
            for d in deliveries]
    if outside and db.capabilities.dialect == "postgres":
        await _execute_many(db, sql, rows)
    else:
        await db.execute_many(sql, rows)


async def record(attempts: Sequence[DeliveryAttempt], deliveries: Sequence[Delivery], fields: Sequence[str]) -> None:
    """Inserts each delivery's attempt and writes the delivery's `fields`, all of them or none.

    On PostgreSQL that is one statement per delivery (the attempt's INSERT in a WITH, the delivery's
    UPDATE), all sent with one `executemany`, which asyncpg runs as one implicit transaction: one round
    trip, no BEGIN and COMMIT of their own. Elsewhere: Tortoise's INSERT of the attempts and `save_many`,
    in a transaction."""
    db = _db()
    if db.capabilities.dialect != "postgres":
        await record_in_transaction(attempts, deliveries, fields)
        return
    fields = tuple(fields)
    cached = _record_sql.get((db.connection_name, fields))
    if cached is None:
        cached = _record_sql[(db.connection_name, fields)] = _record_statement(db, fields)
    sql, columns = cached
    attempt_fields = DeliveryAttempt._meta.fields_map
    delivery_fields = Delivery._meta.fields_map
    pk = Delivery._meta.pk
    rows = [[*(attempt_fields[name].to_db_value(getattr(attempt, name), attempt) for name in columns),
             *(delivery_fields[name].to_db_value(getattr(delivery, name), delivery) for name in fields),
             pk.to_db_value(delivery.pk, delivery)]
            for attempt, delivery in zip(attempts, deliveries, strict=True)]
    await _execute_many(db, sql, rows)
    for attempt in attempts:
        attempt._saved_in_db = True


async def record_in_transaction(attempts: Sequence[DeliveryAttempt], deliveries: Sequence[Delivery],
                                fields: Sequence[str]) -> None:
    """`record` as two statements (Tortoise's INSERT of the attempts, `save_many`) in a transaction."""
    async with in_transaction() as connection:
        await DeliveryAttempt.bulk_create(list(attempts), using_db=connection)
        await save_many(deliveries, fields, connection)


def _record_statement(db: BaseDBAsyncClient, fields: tuple[str, ...]) -> tuple[str, list[str]]:
    """`WITH attempt AS (INSERT ...) UPDATE "delivery" ...`: Tortoise's own INSERT and UPDATE, the
    UPDATE's parameters numbered after the INSERT's."""
    inserts = db.executor_class(model=DeliveryAttempt, db=db)
    columns = list(inserts.regular_columns)
    update = db.executor_class(model=Delivery, db=db).get_update_sql(list(fields), None)
    update = re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + len(columns)}", update)
    return f"WITH attempt AS ({inserts.insert_query}) {update}", columns


async def insert_published(published: Sequence[tuple[Event, Sequence[Delivery]]]) -> None:
    """PostgreSQL: inserts events and their deliveries, every event with at least one, all or none, in one
    round trip: one statement per delivery, the first of each event inserting the event too (in a WITH),
    all sent with one `executemany` (one implicit transaction). A publish needs no BEGIN and COMMIT."""
    db = _db()
    cached = _publish_sql.get(db.connection_name)
    if cached is None:
        cached = _publish_sql[db.connection_name] = await _publish_statement(db)
    sql, event_columns, delivery_columns = cached
    event_fields, delivery_fields = Event._meta.fields_map, Delivery._meta.fields_map
    nothing = [None] * len(event_columns)
    rows = []
    for event, deliveries in published:
        if not deliveries:
            raise ValueError("insert_published: an event without deliveries")
        event_values = [event_fields[name].to_db_value(getattr(event, name), event) for name in event_columns]
        for n, delivery in enumerate(deliveries):
            rows.append([*(event_values if n == 0 else nothing), n == 0,
                         *(delivery_fields[name].to_db_value(getattr(delivery, name), delivery)
                           for name in delivery_columns)])
    await _execute_many(db, sql, rows)
    for event, deliveries in published:
        event._saved_in_db = True
        for delivery in deliveries:
            delivery._saved_in_db = True


async def _publish_statement(db: BaseDBAsyncClient) -> tuple[str, list[str], list[str]]:
    """`WITH new_event AS (INSERT INTO "event" ... SELECT ... WHERE <first>) INSERT INTO "delivery" ...`.
    The event's values are cast to their columns' types (read from the catalog): in a SELECT, unlike in
    VALUES, PostgreSQL cannot tell a parameter's type from the column it goes to."""
    events = db.executor_class(model=Event, db=db)
    deliveries = db.executor_class(model=Delivery, db=db)
    event_columns, delivery_columns = list(events.regular_columns), list(deliveries.regular_columns)
    projection = Event._meta.fields_db_projection
    _, rows = await db.execute_query(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped", [Event._meta.db_table])
    types = {row["attname"]: row["type"] for row in rows}
    names = ", ".join(f'"{projection[c]}"' for c in event_columns)
    values = ", ".join(f"${n + 1}::{types[projection[c]]}" for n, c in enumerate(event_columns))
    first = len(event_columns) + 1
    insert = re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + first}", deliveries.insert_query)
    sql = (f'WITH new_event AS (INSERT INTO "{Event._meta.db_table}" ({names}) SELECT {values} '
           f'WHERE ${first}::boolean) {insert}')
    return sql, event_columns, delivery_columns
