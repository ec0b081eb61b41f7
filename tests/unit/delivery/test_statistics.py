"""How the send path is planned on PostgreSQL as the log grows: a batch's load (`batch_sql.load_for_send`)
reads its deliveries and their events by primary key, never by scanning the tables, and the worker's
statistics refresh analyzes a busy table that changed a lot since it was last analyzed (autovacuum off or
behind), then leaves it alone. Always on PostgreSQL, whichever database the rest of the run uses."""

from __future__ import annotations

import pytest

from app.delivery import batch_sql, statistics
from app.models import Delivery, Integration, Workspace
from tests.unit.conftest import open_database
from tests.waiting import eventually


@pytest.fixture
async def postgres():
    async with open_database("postgres") as ctx:
        yield ctx


async def _grow_log(slug: str, n: int) -> None:
    """`n` events with a delivery each (ids evt_/del_ and the number, 8 digits), as minutes of a busy log."""
    workspace = await Workspace.create(slug=slug, name=slug)
    integration = await Integration.create(workspace=workspace, type="webhook", name="hook")
    await statistics._db().execute_script(f"""
        INSERT INTO event (id, workspace_id, type, payload, created_at)
            SELECT 'evt_' || lpad(n::text, 8, '0'), '{workspace.id}', 'order.paid', '{{"n": 1}}', now()
            FROM generate_series(1, {n}) AS n;
        INSERT INTO delivery (id, workspace_id, event_id, integration_id, event_type, status, is_test,
            attempt_count, created_at, updated_at)
            SELECT 'del_' || lpad(n::text, 8, '0'), '{workspace.id}', 'evt_' || lpad(n::text, 8, '0'),
                '{integration.id}', 'order.paid', 'SUCCEEDED', false, 1, now(), now()
            FROM generate_series(1, {n}) AS n;
    """)


async def _load_plan(ids: list[str]) -> str:
    sql = Delivery.filter(id__in=ids).select_related(*batch_sql.SEND_RELATIONS).sql(params_inline=True)
    return "\n".join(row["QUERY PLAN"] for row in await statistics._db().execute_query_dict(f"EXPLAIN {sql}"))


async def test_a_batch_load_reads_events_by_primary_key_on_a_mid_sized_log(postgres):
    db = statistics._db()
    assert (await db.execute_query_dict("SHOW random_page_cost"))[0]["random_page_cost"] == "1.1"
    await _grow_log("load-plan", 20_000)
    await db.execute_script("ANALYZE")
    ids = [f"del_{n:08d}" for n in range(19_900, 19_964)]
    plan = await _load_plan(ids)
    assert "Seq Scan on event" not in plan and "Seq Scan on delivery" not in plan, plan
    loaded = await batch_sql.load_for_send(ids)
    assert sorted(d.event.id for d in loaded) == [f"evt_{n:08d}" for n in range(19_900, 19_964)]


async def _flushed(db) -> None:
    """This backend's table counters, published now rather than within the second (PostgreSQL 15+)."""
    try:
        await db.execute_query("SELECT pg_stat_force_next_flush()")
    except Exception:  # an older server: the counters arrive within the second (see `eventually` below)
        pass


async def test_a_table_grown_since_it_was_analyzed_is_analyzed_once(postgres):
    db = statistics._db()
    await db.execute_script("ANALYZE")  # as a new install: the tables analyzed while (nearly) empty
    await _grow_log("stats", 30_000)
    await _flushed(db)

    async def stale() -> list[str] | None:
        found = await statistics.stale_tables()
        return found if {"delivery", "event"} <= set(found) else None

    await eventually(stale, timeout=10, what="the grown tables to count as stale")
    assert await statistics.refresh() == ["delivery", "event"]
    analyzed = await db.execute_query_dict("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT "
                                           "NULL AND n_mod_since_analyze = 0 AND relname IN ('delivery', 'event')")
    assert sorted(row["relname"] for row in analyzed) == ["delivery", "event"]
    plan = await _load_plan([f"del_{n:08d}" for n in range(29_900, 29_932)])
    assert "Seq Scan on event" not in plan and "Seq Scan on delivery" not in plan, plan
    await _flushed(db)
    assert await statistics.refresh() == []  # nothing changed since
