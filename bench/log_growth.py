"""Cost as the log grows: the delivery log's pages, the send path's SQL and the purge at 10k, 100k and 1M
deliveries on PostgreSQL.

The target: on PostgreSQL with 10k, 100k and 1M deliveries (and their attempts), the delivery log's first
page, each filter (integration, form, status, event, date range) and the next page by cursor, each with
`totalCount`, stay within 2x of their time at 10k; the statements a send runs (publish's inserts, claim,
load, the attempts and the new state) cost the same PostgreSQL CPU per delivery whatever is stored
already; and purging a day of the 1M-row log does not stall concurrent sends.

The bench creates a throw-away PostgreSQL database (dropped at the end unless --keep), migrates it with
the app's migrations, makes a workspace with 20 integrations and 5 forms through the ORM, then grows the
event, delivery and delivery_attempt tables with server-side SQL (INSERT ... SELECT generate_series):
two deliveries per event over the last 30 days, ids made like app.core.ids makes them (`del_` + 10
base-32 characters of milliseconds + 16 more, so they sort by time), a skewed spread over integrations,
forms and event types, mostly SUCCEEDED (some FAILED, and RETRYING/HELD/PENDING ones in the last day),
1-3 attempts each. After ANALYZE, at each size it times, median of --runs runs after a warm-up:

- the delivery log through the real GraphQL schema, in-process (no HTTP), as the workspace's owner:
  `workspace.deliveries(first: 50)` with `totalCount`, each filter, the next page by cursor and a page
  from a cursor in the middle of the log; `EXPLAIN (ANALYZE, BUFFERS)` of every statement these run at
  the largest size (statements caught from Tortoise's SQL log);
- the send path's statements through the app's own functions, in batches of 10 like a worker: the
  publish's `Event`/`Delivery` inserts, `batch_sql.claim`, `batch_sql.load_for_send`, the attempts'
  insert and `batch_sql.save_many`; wall time and the PostgreSQL backends' CPU (from /proc) per delivery;
  and the sweeper's query for due deliveries (`sweeper.sweep`'s, without Redis);
- at the largest size, the purge of the oldest day (`sweeper.purge`, as the worker's cron runs it) while
  a second task publishes, claims and records sends one at a time: the purge's duration and the sends'
  stalls; with --purge-variants the next days again with other batch sizes and no pause between batches.

Exits 1 when a log query's median at the largest size is over 2x its median at the smallest.

    .venv/bin/python bench/log_growth.py [--sizes 10000,100000,1000000] [--runs 7] [--sends 300]
        [--database-url postgres://postgres@127.0.0.1:5432/test] [--keep] [--no-purge] [--purge-variants]
        [--count-cap N] [--explain-out bench/log_growth_explain.md]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.config import Settings  # noqa: E402
from app.delivery import batch_sql, sweeper  # noqa: E402
from app.delivery.runtime import Runtime  # noqa: E402
from app.models import Delivery, DeliveryAttempt, DeliveryStatus, Event  # noqa: E402
from app.models.database import close_db, init_db, migrate  # noqa: E402
from app.models.integration import Form, Integration  # noqa: E402
from app.models.workspace import ApiToken, Membership, Plan, Role, User, Workspace  # noqa: E402
from app.schema import build_schema, relay  # noqa: E402
from app.schema.context import Context  # noqa: E402
from app.services.tokens import ALL_ABILITIES, Principal  # noqa: E402
from bench.throughput import _cpu_of, pg_dsn, with_database  # noqa: E402

DAYS = 30
INTEGRATIONS = 20
FORMS = 5
PAGE = 50
SEND_BATCH = 10
SENDS = 300  # deliveries sent per size for the send path's figures
TARGET_RATIO = 2.0
# (name, cumulative share): a few common types, a long tail.
EVENT_TYPES = [("form.submitted", 0.40), ("session.completed", 0.60), ("session.started", 0.75),
               ("user.created", 0.85), ("invoice.paid", 0.93), ("invoice.failed", 0.97),
               ("user.deleted", 0.99), ("subscription.renewed", 1.0)]

FIELDS = "id status eventType attemptCount responseCode createdAt"
QUERY = f"""query($slug: String!, $filter: DeliveryFilterInput, $after: String) {{
  workspace(slug: $slug) {{ deliveries(first: {PAGE}, filter: $filter, after: $after) {{
    totalCount{{extra}} pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ {FIELDS} }} }} }} }} }}"""

# Base-32 (Crockford) like app.core.ids, server-side: `n` characters of `v`, most significant first.
B32_SQL = """CREATE OR REPLACE FUNCTION bench_b32(v bigint, n int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', ((v >> (5 * (n - 1 - i))) & 31)::int + 1, 1), ''
                    ORDER BY i) FROM generate_series(0, n - 1) AS i $$"""


def _type_case(column: str) -> str:
    arms = " ".join(f"WHEN {column} < {share} THEN '{name}'" for name, share in EVENT_TYPES[:-1])
    return f"CASE {arms} ELSE '{EVENT_TYPES[-1][0]}' END"


# Events $1..$2 (row numbers), spread uniformly over [$3, $3 + 30 days); $4 workspace, $5 form ids,
# $6 integration ids (literals put in by grow()). Two deliveries per event (to two integrations, skewed
# towards the first ones), 1-3 attempts each.
GROW_SQL = f"""
CREATE TEMP TABLE stage_e AS
SELECT g, ts, 'evt_' || bench_b32(ms, 10) || '000000' || bench_b32(g, 10) AS eid, ms,
       CASE WHEN r_form < 0.8 THEN ($5::text[])[1 + floor(power(r_form / 0.8, 1.5) * {FORMS})::int] END AS form_id,
       {_type_case('r_type')} AS type, r_int, r_int2, r_status, r_tries
FROM (SELECT g, ts, (extract(epoch FROM ts) * 1000)::bigint AS ms, r_type, r_form, r_int, r_int2, r_status, r_tries
      FROM (SELECT g, $3::timestamptz + random() * interval '{DAYS} days' AS ts, random() AS r_type,
                   random() AS r_form, random() AS r_int, random() AS r_int2, random() AS r_status,
                   random() AS r_tries
            FROM generate_series($1::bigint, $2::bigint - 1) AS g) r) s;
INSERT INTO event (id, workspace_id, form_id, type, payload, idempotency_key, schema_errors, created_at)
SELECT eid, $4, form_id, type,
       jsonb_build_object('sessionId', 's_' || g, 'user', jsonb_build_object('email', 'user' || g || '@example.com',
                          'name', 'User ' || g), 'answers', jsonb_build_object('q1', 'yes', 'q2', 'no', 'q3', 'maybe')),
       NULL, NULL, ts
FROM stage_e;
CREATE TEMP TABLE stage_d AS
SELECT s.g, s.ts, s.eid, s.form_id, s.type, d.k, d.id, d.integration_id, d.status,
       CASE WHEN d.status = 'FAILED' THEN 3 WHEN d.status = 'PENDING' THEN 0
            WHEN s.r_tries < 0.15 OR d.status = 'RETRYING' THEN 2 ELSE 1 END AS tries
FROM stage_e s CROSS JOIN LATERAL (
  SELECT k, 'del_' || bench_b32(s.ms, 10) || '000000' || bench_b32(s.g * 2 + k, 10) AS id,
         ($6::text[])[1 + CASE k WHEN 0 THEN floor(power(s.r_int, 2) * {INTEGRATIONS})::int
                                 ELSE (floor(power(s.r_int, 2) * {INTEGRATIONS})::int + 1
                                       + floor(s.r_int2 * ({INTEGRATIONS} - 1))::int) % {INTEGRATIONS}
                          END] AS integration_id,
         CASE WHEN s.ts < now() - interval '1 day'
              THEN CASE WHEN (s.r_status + k * 0.37)::numeric % 1 < 0.93 THEN 'SUCCEEDED' ELSE 'FAILED' END
              ELSE CASE WHEN (s.r_status + k * 0.37)::numeric % 1 < 0.90 THEN 'SUCCEEDED'
                        WHEN (s.r_status + k * 0.37)::numeric % 1 < 0.95 THEN 'FAILED'
                        WHEN (s.r_status + k * 0.37)::numeric % 1 < 0.98 THEN 'RETRYING'
                        WHEN (s.r_status + k * 0.37)::numeric % 1 < 0.99 THEN 'HELD' ELSE 'PENDING' END
         END AS status
  FROM generate_series(0, 1) AS k) d;
INSERT INTO delivery (id, workspace_id, event_id, integration_id, form_id, attachment_id, event_type, status, is_test,
                      attempt_count, next_attempt_at, locked_until, response_code, duration_ms, last_error, request,
                      response, created_at, updated_at, delivered_at, ordering_key, blocked_by)
SELECT id, $4, eid, integration_id, form_id, NULL, type, status, false, tries,
       CASE WHEN status IN ('RETRYING', 'PENDING') THEN now() + interval '1 hour' + (g % 60) * interval '1 minute' END,
       NULL,
       CASE status WHEN 'SUCCEEDED' THEN 200 WHEN 'FAILED' THEN 500 WHEN 'RETRYING' THEN 503 END,
       CASE WHEN status <> 'PENDING' THEN 40 + (g % 200)::int END,
       CASE WHEN status IN ('FAILED', 'RETRYING') THEN 'HTTP 5xx from the receiver' END,
       jsonb_build_object('url', 'https://hooks.example.com/r/' || k, 'headers',
                          jsonb_build_object('content-type', 'application/json', 'webhook-id', id)),
       CASE WHEN status <> 'PENDING' THEN jsonb_build_object('status', 200, 'body', '{{"ok":true}}') END,
       ts, ts, CASE WHEN status = 'SUCCEEDED' THEN ts + interval '1 second' END, NULL, NULL
FROM stage_d;
INSERT INTO delivery_attempt (id, delivery_id, number, trigger, request_url, response_code, response_headers,
                              response_body, duration_ms, error, created_at)
SELECT 'att_' || substr(d.id, 5, 10) || bench_b32(n, 6) || substr(d.id, 21, 10), d.id, n, 'automatic',
       'https://hooks.example.com/r/' || d.k,
       CASE WHEN n = d.tries AND d.status = 'SUCCEEDED' THEN 200 ELSE 503 END,
       '{{"content-type": "application/json"}}'::jsonb,
       CASE WHEN n = d.tries AND d.status = 'SUCCEEDED' THEN '{{"ok":true}}' ELSE 'Service Unavailable' END,
       40 + n * 10, CASE WHEN n < d.tries OR d.status <> 'SUCCEEDED' THEN 'HTTP 503' END,
       d.ts + n * interval '1 second'
FROM stage_d d CROSS JOIN LATERAL generate_series(1, d.tries) AS n;
DROP TABLE stage_e;
DROP TABLE stage_d
"""


@dataclass
class World:
    database_url: str
    workspace: Workspace
    user: User
    token: ApiToken
    integrations: list[str]
    forms: list[Form]
    start: datetime
    timings: dict[int, dict[str, float]] = field(default_factory=dict)
    send_costs: dict[int, dict[str, float]] = field(default_factory=dict)
    explains: dict[str, list[str]] = field(default_factory=dict)


# --- set-up ----------------------------------------------------------------------------------------

async def make_world(url: str) -> World:
    settings = Settings(database_url=url)
    await migrate(settings)
    await init_db(settings)
    user = await User.create(email="owner@example.com", name="Owner")
    workspace = await Workspace.create(slug="bench", name="Bench", plan=Plan.PROFESSIONAL)
    await Membership.create(workspace=workspace, user=user, role=Role.OWNER)
    token = await ApiToken.create(user=user, name="bench", token_hash=uuid.uuid4().hex, hint="bench",
                                  abilities=sorted(ALL_ABILITIES))
    integrations = [await Integration.create(workspace=workspace, type="webhook", name=f"hook {i}",
                                             config={"url": f"https://hooks.example.com/r/{i}"}, events=["*"])
                    for i in range(INTEGRATIONS)]
    forms = [await Form.create(workspace=workspace, slug=f"form-{i}", name=f"Form {i}") for i in range(FORMS)]
    start = datetime.now(UTC) - timedelta(days=DAYS)
    return World(url, workspace, user, token, [i.id for i in integrations], forms, start)


async def grow(db: asyncpg.Connection, world: World, have: int, want: int) -> float:
    """Adds events (two deliveries each) until the log holds `want` deliveries; seconds taken."""
    t0 = time.perf_counter()
    first, last = have // 2, want // 2
    async with db.transaction():
        await db.execute("SELECT setseed($1)", (first % 1000) / 1000)
        values = {"$1": str(first), "$2": str(last), "$3": f"'{world.start.isoformat()}'",
                  "$4": f"'{world.workspace.id}'", "$5": _array(f.id for f in world.forms),
                  "$6": _array(world.integrations)}  # the bench's own ids: safe as literals
        sql = GROW_SQL
        for mark, literal in values.items():
            sql = sql.replace(mark, literal)
        await db.execute(sql)
    await db.execute("ANALYZE event; ANALYZE delivery; ANALYZE delivery_attempt")
    return time.perf_counter() - t0


def _array(values) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


# --- the delivery log, through GraphQL --------------------------------------------------------------

class SqlCatcher(logging.Handler):
    """Keeps the statements Tortoise sends (its debug log: "%s: %s" % (query, values))."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[tuple[str, list]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "%s: %s" and isinstance(record.args, tuple) and len(record.args) == 2:
            self.statements.append((record.args[0], list(record.args[1] or [])))


class Log:
    def __init__(self, world: World, count_field: str) -> None:
        self.world = world
        self.schema = build_schema(Settings(database_url=world.database_url))
        self.runtime = Runtime(settings=Settings(database_url=world.database_url), session=None, redis=None,
                               box=None)  # type: ignore[arg-type]
        self.principal = Principal(user=world.user, token=world.token)
        self.query = QUERY.replace("{extra}", count_field)

    async def run(self, variables: dict[str, Any]) -> dict[str, Any]:
        context = Context(None, None, self.principal, self.runtime, None)
        result = await self.schema.execute(self.query, variable_values={"slug": self.world.workspace.slug, **variables},
                                           context_value=context)
        if result.errors:
            raise RuntimeError(f"GraphQL errors: {result.errors}")
        return result.data["workspace"]["deliveries"]


def cases(world: World, first_page: dict[str, Any], middle_cursor: str) -> dict[str, dict[str, Any]]:
    day = world.start + timedelta(days=DAYS // 2)
    return {
        "first page": {},
        "next page (cursor)": {"after": first_page["pageInfo"]["endCursor"]},
        "page from mid-log cursor": {"after": middle_cursor},
        "integration (busiest)": {"filter": {"integrationId": world.integrations[0]}},
        "integration (quiet)": {"filter": {"integrationId": world.integrations[-1]}},
        "form": {"filter": {"formSlug": world.forms[2].slug}},
        "status FAILED": {"filter": {"status": ["FAILED"]}},
        "event (exact, 2%)": {"filter": {"event": "user.deleted"}},
        "event (prefix invoice.*)": {"filter": {"event": "invoice.*"}},
        "date range (a day, 15 days ago)": {"filter": {"from": day.isoformat(),
                                                       "to": (day + timedelta(days=1)).isoformat()}},
        "integration + status + last 7 days": {"filter": {
            "integrationId": world.integrations[3], "status": ["FAILED", "SUCCEEDED"],
            "from": (datetime.now(UTC) - timedelta(days=7)).isoformat()}},
    }


async def time_log(world: World, log: Log, size: int, runs: int, explain: bool) -> None:
    first_page = await log.run({})
    middle = await Delivery.filter(workspace_id=world.workspace.id).order_by("id").offset(size // 2).first()
    todo = cases(world, first_page, relay.encode_cursor(middle.id))
    for variables in todo.values():
        await log.run(variables)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in todo}
    for _ in range(runs):  # round-robin, so that a burst of load elsewhere on the machine hits every query alike
        for name, variables in todo.items():
            t0 = time.perf_counter()
            await log.run(variables)
            samples[name].append((time.perf_counter() - t0) * 1000)
    results = {name: statistics.median(values) for name, values in samples.items()}
    if explain:
        for name, variables in todo.items():
            world.explains[name] = await explain_statements(world, log, variables)
    world.timings[size] = results


async def explain_statements(world: World, log: Log, variables: dict[str, Any]) -> list[str]:
    catcher = SqlCatcher()
    logger = logging.getLogger("tortoise.db_client")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(catcher)
    try:
        await log.run(variables)
    finally:
        logger.removeHandler(catcher)
        logger.setLevel(level)
    out = []
    db = await asyncpg.connect(pg_dsn(world.database_url))
    try:
        for sql, values in catcher.statements:
            if "delivery" not in sql:
                continue  # the workspace and membership look-ups
            plan = await db.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *values)
            out.append(f"{sql}\n-- {values}\n" + "\n".join(r[0] for r in plan))
    finally:
        await db.close()
    return out


# --- the send path ---------------------------------------------------------------------------------

async def backend_cpu(db: asyncpg.Connection, name: str) -> float:
    pids = [r[0] for r in await db.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)]
    return sum(_cpu_of(pid) for pid in pids)


async def time_sends(world: World, db: asyncpg.Connection, name: str, sends: int) -> dict[str, float]:
    """`sends` deliveries through the send path's statements, SEND_BATCH at a time: ms and PostgreSQL CPU ms
    per delivery, by step."""
    steps = {"publish (insert)": 0.0, "claim": 0.0, "load_for_send": 0.0, "record (attempts + state)": 0.0}
    cpu_before = await backend_cpu(db, name)
    t_all = time.perf_counter()
    for b in range(sends // SEND_BATCH):
        now = datetime.now(UTC)
        events = [Event(workspace_id=world.workspace.id, form_id=world.forms[b % FORMS].id, type="form.submitted",
                        payload={"n": b}) for _ in range(SEND_BATCH)]
        deliveries = [Delivery(workspace_id=world.workspace.id, event_id=e.id,
                               integration_id=world.integrations[(b + k) % INTEGRATIONS],
                               form_id=e.form_id, event_type=e.type, next_attempt_at=now)
                      for k, e in enumerate(events)]
        t0 = time.perf_counter()
        await Event.bulk_create(events)
        await Delivery.bulk_create(deliveries)
        t1 = time.perf_counter()
        claimed = await batch_sql.claim([d.id for d in deliveries], now, now + timedelta(seconds=60), now, False)
        t2 = time.perf_counter()
        loaded = await batch_sql.load_for_send(claimed)
        t3 = time.perf_counter()
        attempts = []
        for d in loaded:
            d.status, d.attempt_count, d.response_code, d.duration_ms = DeliveryStatus.SUCCEEDED, 1, 200, 42
            d.locked_until, d.next_attempt_at, d.delivered_at = None, None, now
            attempts.append(DeliveryAttempt(delivery_id=d.id, number=1, trigger="automatic", response_code=200,
                                            request_url="https://hooks.example.com/r", response_body='{"ok":true}',
                                            duration_ms=42))
        await batch_sql.record(attempts, loaded, ("status", "attempt_count", "response_code", "duration_ms",
                                                  "locked_until", "next_attempt_at", "delivered_at", "updated_at"))
        t4 = time.perf_counter()
        if len(claimed) != SEND_BATCH or len(loaded) != SEND_BATCH:
            raise RuntimeError("claim/load did not take the batch")
        for key, spent in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            steps[key] += spent
    wall = time.perf_counter() - t_all
    cpu = await backend_cpu(db, name) - cpu_before
    out = {f"{k} ms": v * 1000 / sends for k, v in steps.items()}
    out["all steps ms"] = wall * 1000 / sends
    out["PostgreSQL CPU ms"] = cpu * 1000 / sends
    # The sweeper's query for due deliveries (one run; no Redis, so it only selects).
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        await due_query()
        samples.append((time.perf_counter() - t0) * 1000)
    out["sweeper due query ms"] = statistics.median(samples)
    return out


async def due_query() -> int:
    """sweeper.sweep's selection, without Redis to queue into."""
    from tortoise.expressions import Q

    now = datetime.now(UTC)
    condition = (Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING]) & Q(next_attempt_at__lte=now)) | (
        Q(status=DeliveryStatus.SENDING) & Q(locked_until__lt=now))
    rows = await Delivery.filter(condition, id__gt="").order_by("id").limit(sweeper.BATCH).values_list("id")
    return len(rows)


# --- purge -----------------------------------------------------------------------------------------

PURGES = {  # how each of the oldest days is purged, one day each
    "sweeper.purge (as the worker's cron)": None,
    "batches of 500, no pause": {"batch": 500, "pause": 0.0},
    "batches of 100, no pause": {"batch": 100, "pause": 0.0},
}


async def time_purge(world: World, timeout: float, day: int, how: dict[str, Any] | None) -> dict[str, Any]:
    """Purges the oldest day left (up to `day` + 1 days after the log's start) while a task publishes,
    claims and records sends one at a time in a loop; the purge's figures and the sends' stalls."""
    cutoff = world.start + timedelta(days=day + 1)
    cutoff_age = (datetime.now(UTC) - cutoff).total_seconds() / 86400
    finished = [DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED]
    before = await Delivery.filter(created_at__lt=cutoff, status__in=finished).count()
    runtime = Runtime(settings=Settings(database_url=world.database_url), session=None, redis=None,
                      box=None)  # type: ignore[arg-type]
    stalls: list[float] = []
    done = asyncio.Event()

    async def sender() -> None:
        n = 0
        while not done.is_set():
            now = datetime.now(UTC)
            event = Event(workspace_id=world.workspace.id, type="form.submitted", payload={"n": n})
            delivery = Delivery(workspace_id=world.workspace.id, event_id=event.id,
                                integration_id=world.integrations[n % INTEGRATIONS], event_type=event.type,
                                next_attempt_at=now)
            t0 = time.perf_counter()
            await event.save()
            await delivery.save()
            claimed = await batch_sql.claim([delivery.id], now, now + timedelta(seconds=60), now, False)
            loaded = await batch_sql.load_for_send(claimed)
            for d in loaded:
                d.status, d.locked_until = DeliveryStatus.SUCCEEDED, None
            await DeliveryAttempt.create(delivery_id=delivery.id, number=1, trigger="automatic", response_code=200)
            await batch_sql.save_many(loaded, ("status", "locked_until", "updated_at"))
            stalls.append((time.perf_counter() - t0) * 1000)
            n += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(sender())
    await asyncio.sleep(1.0)
    baseline = list(stalls)
    t0 = time.perf_counter()
    finished_in_time = True
    try:
        if how is None:
            purge = sweeper.purge(runtime, older_than_days=cutoff_age)
        else:
            from app.delivery import retention

            async def purge_() -> int:
                return (await retention.purge_finished(cutoff, **how)).deliveries

            purge = purge_()
        await asyncio.wait_for(purge, timeout)
    except TimeoutError:
        finished_in_time = False
    seconds = time.perf_counter() - t0
    during = stalls[len(baseline):]
    done.set()
    await task
    left = await Delivery.filter(created_at__lt=cutoff, status__in=finished).count()
    return {"finished deliveries to purge": before, "purged": before - left, "finished": finished_in_time,
            "seconds": seconds, "sends during": len(during),
            "send p50 ms": statistics.median(during) if during else None, "send p99 ms": _pct(during, 0.99),
            "send max ms": max(during) if during else None,
            "send p50 before ms": statistics.median(baseline) if baseline else None,
            "send max before ms": max(baseline) if baseline else None}


def _has_retention() -> bool:
    try:
        from app.delivery import retention  # noqa: F401
    except ImportError:
        return False
    return True


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


# --- report ----------------------------------------------------------------------------------------

def report(world: World, sizes: list[int], seeds: dict[int, float], purges: dict[str, dict[str, Any]]) -> bool:
    base = sizes[0]
    ok = True
    head = " | ".join(f"{s:,}" for s in sizes)
    print(f"\n### Delivery log (GraphQL, first: {PAGE}, with totalCount), median ms\n")
    print(f"| query | {head} | ratio {sizes[-1]:,} / {base:,} |")
    print("|---|" + "---|" * len(sizes) + "---|")
    for name in world.timings[base]:
        values = [world.timings[s][name] for s in sizes]
        ratio = values[-1] / values[0]
        ok &= ratio <= TARGET_RATIO
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {ratio:.2f}x |")
    print("\n### Send path per delivery (batches of 10)\n")
    print(f"| step | {head} | ratio |")
    print("|---|" + "---|" * len(sizes) + "---|")
    for key in world.send_costs[base]:
        values = [world.send_costs[s][key] for s in sizes]
        ratio = values[-1] / values[0] if values[0] else float("nan")
        print(f"| {key} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {ratio:.2f}x |")
    print("\nseeding seconds: " + ", ".join(f"{s:,}: {seeds[s]:.1f}" for s in sizes))
    if purges:
        print(f"\n### Purge of a day at {sizes[-1]:,}, sends running meanwhile\n")
        keys = list(next(iter(purges.values())))
        print("| purge | " + " | ".join(keys) + " |")
        print("|---|" + "---|" * len(keys))
        for name, figures in purges.items():
            cells = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in figures.values()]
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nlog pages within {TARGET_RATIO}x of {base:,}: {'yes' if ok else 'NO'}")
    return ok


def write_explains(world: World, path: Path, size: int) -> None:
    lines = [f"# EXPLAIN (ANALYZE, BUFFERS) of the delivery log's statements at {size:,} deliveries\n"]
    for name, plans in world.explains.items():
        lines.append(f"## {name}\n")
        for plan in plans:
            lines.append("```\n" + plan + "\n```\n")
    path.write_text("\n".join(lines))
    print(f"EXPLAIN plans written to {path}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sends", type=int, default=SENDS)
    parser.add_argument("--database-url", default=os.environ.get("HOOKYARD_BENCH_DATABASE_URL",
                                                                   "postgres://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument("--no-purge", action="store_true")
    parser.add_argument("--purge-timeout", type=float, default=600)
    parser.add_argument("--purge-variants", action="store_true",
                        help="also purge a day each with other batch sizes and pauses (app.delivery.retention)")
    parser.add_argument("--count-cap", type=int, default=None,
                        help="app.schema.relay.COUNT_CAP for this run (default: the app's)")
    parser.add_argument("--explain-out", default=str(Path(__file__).with_name("log_growth_explain.md")))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    name = f"hookyard_loggrowth_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_dsn(args.database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(args.database_url, name)
    print(f"database {name}; {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}")
    db = None
    try:
        world = await make_world(url)
        db = await asyncpg.connect(pg_dsn(url))
        print(await db.fetchval("SELECT version()"))
        await db.execute(B32_SQL)
        have, seeds, purges = 0, {}, {}
        if args.count_cap is not None:
            relay.COUNT_CAP = args.count_cap
        # `totalCountCapped` where the schema has it (the bench also runs on the code before the cap).
        log = Log(world, " totalCountCapped" if hasattr(relay, "COUNT_CAP") else "")
        print(f"totalCount cap: {getattr(relay, 'COUNT_CAP', 'none')}")
        for size in sizes:
            seeds[size] = await grow(db, world, have, size)
            have = size
            counts = await db.fetchrow("SELECT (SELECT count(*) FROM delivery) d, (SELECT count(*) FROM "
                                       "delivery_attempt) a, (SELECT count(*) FROM event) e")
            print(f"\n{size:,}: {counts['d']:,} deliveries, {counts['a']:,} attempts, {counts['e']:,} events "
                  f"(seeded in {seeds[size]:.1f} s)", flush=True)
            await db.execute("VACUUM ANALYZE delivery")
            await time_log(world, log, size, args.runs, explain=size == sizes[-1])
            for k, v in world.timings[size].items():
                print(f"  {k}: {v:.2f} ms", flush=True)
            world.send_costs[size] = await time_sends(world, db, name, args.sends)
            for k, v in world.send_costs[size].items():
                print(f"  send {k}: {v:.3f}", flush=True)
        write_explains(world, Path(args.explain_out), sizes[-1])
        if not args.no_purge:
            variants = PURGES if args.purge_variants else dict(list(PURGES.items())[:1])
            for day, (label, how) in enumerate(variants.items()):
                if how is not None and not _has_retention():
                    continue
                purges[label] = await time_purge(world, args.purge_timeout, day, how)
                print(f"purge {label}: {purges[label]}", flush=True)
        ok = report(world, sizes, seeds, purges)
    finally:
        if db is not None:
            await db.close()
        await close_db()
        if not args.keep:
            admin = await asyncpg.connect(pg_dsn(args.database_url))
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        else:
            print(f"kept database {name}")
    return 0 if ok else 1


if __name__ == "__main__":
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    print(f"hookyard {git.stdout.strip()}")
    sys.exit(asyncio.run(main()))
