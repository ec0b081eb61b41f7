"""The batch load a worker runs before sending (`batch_sql.load_for_send`) reads its deliveries' events by
primary key, not by scanning the event table: with PostgreSQL's default cost of a random read (4, made for
disks) it would scan the whole table for every batch until the table is large, and a delivery would cost
more the more events are stored. Always on PostgreSQL, whichever database the rest of the run uses."""

from __future__ import annotations

import pytest

from app.delivery import batch_sql
from app.models import Delivery, Integration, Workspace
from tests.unit.conftest import open_database


@pytest.fixture
async def postgres():
    async with open_database("postgres") as ctx:
        yield ctx


async def test_a_batch_load_reads_events_by_primary_key_on_a_mid_sized_log(postgres):
    db = Delivery._choose_db(False)
    assert (await db.execute_query_dict("SHOW random_page_cost"))[0]["random_page_cost"] == "1.1"
    # 20,000 events with a delivery each, as a few minutes of a busy log.
    workspace = await Workspace.create(slug="load-plan", name="Load plan")
    integration = await Integration.create(workspace=workspace, type="webhook", name="hook")
    await db.execute_script(f"""
        INSERT INTO event (id, workspace_id, type, payload, created_at)
            SELECT 'evt_' || lpad(n::text, 8, '0'), '{workspace.id}', 'order.paid', '{{"n": 1}}', now()
            FROM generate_series(1, 20000) AS n;
        INSERT INTO delivery (id, workspace_id, event_id, integration_id, event_type, status, is_test,
            attempt_count, created_at, updated_at)
            SELECT 'del_' || lpad(n::text, 8, '0'), '{workspace.id}', 'evt_' || lpad(n::text, 8, '0'),
                '{integration.id}', 'order.paid', 'SUCCEEDED', false, 1, now(), now()
            FROM generate_series(1, 20000) AS n;
        ANALYZE;
    """)
    ids = [f"del_{n:08d}" for n in range(19_900, 19_964)]
    sql = Delivery.filter(id__in=ids).select_related(*batch_sql.SEND_RELATIONS).sql(params_inline=True)
    plan = "\n".join(row["QUERY PLAN"] for row in await db.execute_query_dict(f"EXPLAIN {sql}"))
    assert "Seq Scan on event" not in plan and "Seq Scan on delivery" not in plan, plan
    loaded = await batch_sql.load_for_send(ids)
    assert sorted(d.event.id for d in loaded) == [f"evt_{n:08d}" for n in range(19_900, 19_964)]
