"""Keeping PostgreSQL's planner statistics of the busy tables fresh when nothing else does.

The send path's statements are planned from these statistics. PostgreSQL's autovacuum refreshes them as
tables change; where it is switched off (some CI and test servers) or far behind, the planner goes on
believing that a delivery or event table of millions of rows holds the few it held when it was created,
and plans a batch's load as scans of whole tables, so every delivery costs more as the log grows. Every
minute the worker looks at how much each table changed since it was last analyzed and runs ANALYZE on
those that changed by more than STALE_FRACTION (and MIN_CHANGES rows); with autovacuum working, that is
never. ANALYZE reads a fixed-size sample: it takes well under a second on tables of millions of rows.
"""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from app.core.logging import get_logger
from app.models import Delivery

TABLES = ("delivery", "event", "delivery_attempt")
MIN_CHANGES = 1000
STALE_FRACTION = 0.2

log = get_logger("app.delivery.statistics")


def _db() -> BaseDBAsyncClient:
    return Delivery._choose_db(True)


async def stale_tables() -> list[str]:
    """The busy tables changed by more than STALE_FRACTION of their rows since they were last analyzed."""
    db = _db()
    if db.capabilities.dialect != "postgres":  # SQLite plans without such statistics
        return []
    rows = await db.execute_query_dict(
        "SELECT relname, n_live_tup, n_mod_since_analyze FROM pg_stat_user_tables "
        "WHERE schemaname = current_schema() AND relname = ANY($1::text[]) ORDER BY relname", [list(TABLES)])
    return [row["relname"] for row in rows
            if row["n_mod_since_analyze"] > max(MIN_CHANGES, STALE_FRACTION * row["n_live_tup"])]


async def refresh() -> list[str]:
    """ANALYZE for each stale table (see the module); returns the tables analyzed."""
    stale = await stale_tables()
    for table in stale:
        await _db().execute_script(f'ANALYZE "{table}"')  # a name from TABLES, never user input
    if stale:
        log.info("planner statistics refreshed", tables=stale)
    return stale
