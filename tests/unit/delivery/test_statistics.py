"""The worker's statistics refresh: on PostgreSQL, a busy table that changed a lot since it was last analyzed
(autovacuum off or behind) is analyzed, and a batch's load is then planned by primary key; a table analyzed
since is left alone. Always on PostgreSQL, whichever database the rest of the run uses."""

from __future__ import annotations

import asyncpg
import pytest

from app.delivery import batch_sql, statistics
from app.models import Delivery, Integration, Workspace
from tests.unit.conftest import open_database
from tests.waiting import eventually


@pytest.fixture
async def postgres():
    async with open_database("postgres") as ctx:
        yield ctx


async def _flushed(db) -> None:
    """This backend's table counters, published now rather than within the second (PostgreSQL 15+)."""
    try:
        await db.execute_query("SELECT pg_stat_force_next_flush()")
    except (asyncpg.UndefinedFunctionError, Exception):
        pass


async def _load_plan(ids: list[str]) -> str:
    sql = Delivery.filter(id__in=ids).select_related(*batch_sql.SEND_RELATIONS).sql(params_inline=True)
    return "\n".join(row["QUERY PLAN"] for row in await statistics._db().execute_query_dict(f"EXPLAIN {sql}"))


async def test_a_table_grown_since_it_was_analyzed_is_analyzed_and_the_load_plan_follows(postgres):
    db = statistics._db()
    workspace = await Workspace.create(slug="stats", name="Stats")
    integration = await Integration.create(workspace=workspace, type="webhook", name="hook")
    await db.execute_script("ANALYZE")  # as a new install: the tables analyzed while (nearly) empty
    await db.execute_script(f"""
        INSERT INTO event (id, workspace_id, type, payload, created_at)
            SELECT 'evt_' || lpad(n::text, 8, '0'), '{workspace.id}', 'order.paid', '{{"n": 1}}', now()
            FROM generate_series(1, 30000) AS n;
        INSERT INTO delivery (id, workspace_id, event_id, integration_id, event_type, status, is_test,
            attempt_count, created_at, updated_at)
            SELECT 'del_' || lpad(n::text, 8, '0'), '{workspace.id}', 'evt_' || lpad(n::text, 8, '0'),
                '{integration.id}', 'order.paid', 'SUCCEEDED', false, 1, now(), now()
            FROM generate_series(1, 30000) AS n;
    """)
    await _flushed(db)
    ids = [f"del_{n:08d}" for n in range(29_900, 29_932)]

    async def stale() -> list[str] | None:
        found = await statistics.stale_tables()
        return found if {"delivery", "event"} <= set(found) else None

    await eventually(stale, timeout=10, what="the grown tables to count as stale")
    assert await statistics.refresh() == ["delivery", "event"]
    analyzed = await db.execute_query_dict("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT "
                                           "NULL AND n_mod_since_analyze = 0 AND relname IN ('delivery', 'event')")
    assert sorted(row["relname"] for row in analyzed) == ["delivery", "event"]
    plan = await _load_plan(ids)
    assert "Seq Scan on event" not in plan and "Seq Scan on delivery" not in plan, plan
    await _flushed(db)
    assert await statistics.refresh() == []  # nothing changed since

