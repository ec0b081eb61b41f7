"""The floor of the design: a delivery's writes, queueing and signed send with no framework around them.

`bench/throughput.py` measures Hookyard against one plain aiohttp sender. This measures, against the same
sender in the same run, a bare pipeline that does the I/O the delivery rules ask of every delivery and
nothing else, on Hookyard's own schema (its migrations: the same tables, indexes and foreign keys):

- an API process (aiohttp, no GraphQL, no auth, no ORM) takes `{"events": [...]}` over HTTP, reads the
  workspace's enabled integrations, inserts the events and one delivery per integration in one statement,
  and queues the delivery ids and their PENDING updates in one Redis round trip;
- a worker process (no arq, no ORM) pops ids off a Redis list, claims them (`status` SENDING with a lease,
  `FOR UPDATE SKIP LOCKED`), loads them with their events and integrations, publishes their SENDING
  updates, posts each one signed (Standard Webhooks), and records each wave of answers as Hookyard does
  (the attempt's INSERT and the delivery's UPDATE, request and response kept, one `executemany`), with
  one Redis message of updates per wave.

What it leaves out is what Hookyard adds around that I/O: GraphQL, authentication and rate limits,
Tortoise's objects, arq's job bookkeeping, plugins, delivery control, health, logs and metrics. So its
ratio is about the best this design can do on this machine with these libraries, and the difference to
`throughput.py`'s ratio is what the code around the I/O costs.

    .venv/bin/python bench/floor.py [--events 2000] [--batch 50] [--integrations 10]
        [--database-url postgres://...] [--redis-url redis://...]

It creates (and drops) a database of its own, migrated and set up by `hookyard serve`, which is stopped
before the floor's processes start; Redis db 9 is flushed before and after, as by `throughput.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import orjson
from aiohttp import web
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.local_services import ROOT, Proc, free_port, stop
from bench.throughput import (
    TARGET_BATCH_RATIO,
    TARGET_RATIO,
    Api,
    CpuMeter,
    Receiver,
    baseline,
    chunks,
    create_database,
    drop_database,
    flush_redis,
    hmac_key,
    new_secret,
    pg_dsn,
    redis_pid,
    services_up,
    signature,
    spawn,
    start_receiver,
    wait_ready,
    wait_recorded,
    wait_until_quiet,
    wall,
)

QUEUE = "floor:sends"
UPDATES = "floor:updates"
LEASE = timedelta(seconds=60)
RECORD_WINDOW = 0.005  # answers within 5 ms of each other are recorded together, as in Hookyard
MAX_BATCH = 200
BATCHES_IN_FLIGHT = 3

PUBLISH_SQL = """
WITH new_event AS (
  INSERT INTO event (id, type, payload, created_at, workspace_id)
  SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::jsonb[], $4::timestamptz[], $5::varchar[]))
INSERT INTO delivery (id, event_type, status, is_test, attempt_count, created_at, updated_at, event_id,
                      integration_id, workspace_id)
SELECT id, event_type, 'PENDING', false, 0, ($4::timestamptz[])[1], ($4::timestamptz[])[1], event_id,
       integration_id, ($5::varchar[])[1]
  FROM unnest($6::varchar[], $7::varchar[], $8::varchar[], $9::varchar[]) AS d(id, event_type, event_id, integration_id)
"""
# `status || ''`: the rows are found by id, never from the status indexes (see Hookyard's `batch_sql.claim`).
CLAIM_SQL = """
UPDATE delivery SET status = 'SENDING', locked_until = $2, updated_at = $3
 WHERE id IN (SELECT id FROM delivery WHERE id = ANY($1::varchar[])
                AND (((status || '') IN ('PENDING', 'RETRYING') AND (next_attempt_at IS NULL OR next_attempt_at <= $3))
                     OR ((status || '') = 'SENDING' AND locked_until < $3))
              FOR UPDATE SKIP LOCKED)
RETURNING id
"""
# `--claim lease`: the claim writes only a lease in a column no index holds (added, with room left on each
# page), so PostgreSQL can update the row in place (HOT) without new index entries; the delivery stays
# PENDING while it is sent. What that gives up: SENDING as a stored status (and its partial index).
LEASE_COLUMN_SQL = ("ALTER TABLE delivery ADD COLUMN lease_until timestamptz",
                    "ALTER TABLE delivery SET (fillfactor = 85)")
LEASE_CLAIM_SQL = """
UPDATE delivery SET lease_until = $2
 WHERE id IN (SELECT id FROM delivery WHERE id = ANY($1::varchar[])
                AND (status || '') IN ('PENDING', 'RETRYING') AND (next_attempt_at IS NULL OR next_attempt_at <= $3)
                AND (lease_until IS NULL OR lease_until < $3)
              FOR UPDATE SKIP LOCKED)
RETURNING id
"""
CLAIMS = ("row", "lease", "none")
LOAD_SQL = """
SELECT d.id, d.event_type, d.attempt_count, d.integration_id, e.payload::text AS payload, i.config::text AS config
  FROM delivery d JOIN event e ON e.id = d.event_id JOIN integration i ON i.id = d.integration_id
 WHERE d.id = ANY($1::varchar[])
"""
RECORD_SQL = """
WITH attempt AS (
  INSERT INTO delivery_attempt (id, number, trigger, request_url, response_code, response_headers, response_body,
                                duration_ms, created_at, delivery_id)
  VALUES ($1, $2, 'automatic', $3, $4, $5::jsonb, $6, $7, $8, $9))
UPDATE delivery SET status = $10, attempt_count = $2, locked_until = NULL, next_attempt_at = NULL,
       response_code = $4, duration_ms = $7, last_error = NULL, request = $11::jsonb, response = $12::jsonb,
       delivered_at = $8, updated_at = $8
 WHERE id = $9
"""


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:26]}"


# --- the floor's API process -------------------------------------------------------------------------

async def run_api(database_url: str, redis_url: str, port: int, workspace_id: str) -> None:
    pool = await asyncpg.create_pool(pg_dsn(database_url), min_size=4, max_size=16)
    redis = Redis.from_url(redis_url)

    async def publish(request: web.Request) -> web.Response:
        events = orjson.loads(await request.read())["events"]
        recipients = await pool.fetch("SELECT id FROM integration WHERE workspace_id = $1 AND enabled",
                                      workspace_id)
        now = datetime.now(UTC)
        event_ids = [new_id("evt") for _ in events]
        delivery_ids, types, of_event, to = [], [], [], []
        for event_id, event in zip(event_ids, events, strict=True):
            for row in recipients:
                delivery_ids.append(new_id("dlv"))
                types.append(event["type"])
                of_event.append(event_id)
                to.append(row["id"])
        await pool.execute(PUBLISH_SQL, event_ids, [e["type"] for e in events],
                           [orjson.dumps(e["payload"]).decode() for e in events], [now] * len(events),
                           [workspace_id] * len(events), delivery_ids, types, of_event, to)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.rpush(QUEUE, orjson.dumps(delivery_ids))
            pipe.publish(UPDATES, orjson.dumps([{"id": i, "status": "PENDING", "at": now} for i in delivery_ids]))
            await pipe.execute()
        return web.Response(body=orjson.dumps({"deliveries": delivery_ids}), content_type="application/json")

    app = web.Application()
    app.router.add_post("/publish", publish)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# --- the floor's worker process ----------------------------------------------------------------------

class FloorWorker:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, session: aiohttp.ClientSession, keys: dict[str, bytes],
                 claim: str = "row"):
        self.claim = claim
        self.pool = pool
        self.redis = redis
        self.session = session
        self.keys = keys  # integration id -> HMAC key
        self.slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)

    async def run(self) -> None:
        batches: set[asyncio.Task] = set()
        while True:
            popped = await self.redis.blmpop(1, 1, QUEUE, direction="LEFT", count=MAX_BATCH // 10)
            if not popped:
                continue
            ids = [i for job in popped[1] for i in orjson.loads(job)]
            for n in range(0, len(ids), MAX_BATCH):  # a job of a batch publish holds 10 x 50 ids
                await self.slots.acquire()
                task = asyncio.ensure_future(self.batch(ids[n:n + MAX_BATCH]))
                batches.add(task)
                task.add_done_callback(batches.discard)
                task.add_done_callback(_fail_loudly)

    async def batch(self, ids: list[str]) -> None:
        try:
            now = datetime.now(UTC)
            if self.claim == "none":  # trusts the queue: no lease, nothing stops a second send
                claimed = ids
            else:
                sql = CLAIM_SQL if self.claim == "row" else LEASE_CLAIM_SQL
                claimed = [r["id"] for r in await self.pool.fetch(sql, ids, now + LEASE, now)]
            rows = await self.pool.fetch(LOAD_SQL, claimed)
            await self.redis.publish(UPDATES, orjson.dumps([{"id": r["id"], "status": "SENDING", "at": now}
                                                            for r in rows]))
            configs = {r["integration_id"]: orjson.loads(r["config"]) for r in rows}
            loop = asyncio.get_running_loop()
            answered: list[tuple] = []
            records: list[asyncio.Task] = []

            def flush() -> None:
                if answered:  # (the last wave's timer may find it flushed already)
                    records.append(asyncio.ensure_future(self.record(answered[:])))
                    answered.clear()

            def done(task: asyncio.Task) -> None:
                # Answers within RECORD_WINDOW of the first of a wave are recorded together.
                if not answered:
                    loop.call_later(RECORD_WINDOW, flush)
                answered.append(task.result())

            sends = [asyncio.ensure_future(self.send(row, configs[row["integration_id"]])) for row in rows]
            for task in sends:
                task.add_done_callback(done)
            await asyncio.gather(*sends)
            await asyncio.sleep(RECORD_WINDOW)
            flush()
            await asyncio.gather(*records)
        finally:
            self.slots.release()

    async def send(self, row: asyncpg.Record, config: dict) -> tuple:
        sent_at = datetime.now(UTC)
        body = orjson.dumps({"type": row["event_type"], "timestamp": sent_at.isoformat().replace("+00:00", "Z"),
                             "data": orjson.Fragment(row["payload"])})
        stamp = str(int(sent_at.timestamp()))
        headers = {"content-type": "application/json", "user-agent": "Hookyard-floor/1", "webhook-id": row["id"],
                   "webhook-timestamp": stamp,
                   "webhook-signature": signature(self.keys[row["integration_id"]], row["id"], stamp, body)}
        started = time.perf_counter()
        async with self.session.post(config["url"], data=body, headers=headers) as response:
            answer = await response.read()
            status, answer_headers = response.status, {str(k): v for k, v in response.headers.items()}
        duration = int((time.perf_counter() - started) * 1000)
        request = {"method": "POST", "url": config["url"], "headers": headers, "body": body.decode()}
        reply = {"status": status, "headers": answer_headers, "body": answer.decode(), "truncated": False}
        return row, status, answer_headers, answer.decode(), duration, request, reply

    async def record(self, answered: list[tuple]) -> None:
        now = datetime.now(UTC)
        rows = [[new_id("att"), row["attempt_count"] + 1, request["url"], status, orjson.dumps(headers).decode(),
                 text, duration, now, row["id"], "SUCCEEDED" if 200 <= status < 300 else "FAILED",
                 orjson.dumps(request).decode(), orjson.dumps(reply).decode()]
                for row, status, headers, text, duration, request, reply in answered]
        await self.pool.executemany(RECORD_SQL, rows)
        await self.redis.publish(UPDATES, orjson.dumps([{"id": r[8], "status": r[9], "at": now} for r in rows]))


def _fail_loudly(task: asyncio.Task) -> None:
    # A floor that drops a batch would measure less work than Hookyard does: stop, and let the driver say so.
    if not task.cancelled() and task.exception() is not None:
        task.print_stack()
        os._exit(1)


async def run_worker(database_url: str, redis_url: str, keys_file: Path, claim: str) -> None:
    keys = {k: hmac_key(v) for k, v in json.loads(keys_file.read_text()).items()}
    pool = await asyncpg.create_pool(pg_dsn(database_url), min_size=4, max_size=16)
    redis = Redis.from_url(redis_url)
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        print("ready", flush=True)
        await FloorWorker(pool, redis, session, keys, claim).run()


# --- the driver -------------------------------------------------------------------------------------

def spawn_floor(name: str, args: list[str], logdir: Path) -> Proc:
    log = logdir / f"{name}.log"
    with open(log, "wb") as handle:
        popen = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], cwd=ROOT,
                                 stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return Proc(name, popen, log)


async def wait_for_line(proc: Proc, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.log.read_text(errors="replace"):
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not start:\n{proc.tail()}")
        await asyncio.sleep(0.05)


class FloorClient:
    def __init__(self, port: int, concurrency: int):
        self.url = f"http://127.0.0.1:{port}/publish"
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    async def publish(self, event_type: str, seqs: list[int]) -> list[str]:
        body = orjson.dumps({"events": [{"type": event_type, "payload": {"answer": 42, "seq": s}} for s in seqs]})
        async with self.session.post(self.url, data=body) as response:
            raw = await response.read()
        if response.status != 200:
            raise RuntimeError(f"floor API answered {response.status}: {raw[:300]!r}")
        return orjson.loads(raw)["deliveries"]

    async def close(self) -> None:
        await self.session.close()


async def publish_all(client: FloorClient, event_type: str, events: int, batch: int, concurrency: int) -> None:
    counter = iter(chunks(events, batch))

    async def lane() -> None:
        for seqs in counter:
            await client.publish(event_type, seqs)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def set_up(args: argparse.Namespace, database_url: str, rx_port: int, receiver: Receiver,
                 logdir: Path) -> tuple[str, dict[str, str]]:
    """Migrates the database and connects the webhooks through a `hookyard serve` that is then stopped;
    returns the workspace's id and each integration's secret."""
    port = free_port()
    env = {**os.environ, "HOOKYARD_DATABASE_URL": database_url, "HOOKYARD_REDIS_URL": args.redis_url,
           "HOOKYARD_PORT": str(port), "HOOKYARD_HOST": "127.0.0.1", "HOOKYARD_DATA_DIR": str(logdir / "data"),
           "HOOKYARD_SECRET_KEY": secrets.token_urlsafe(32), "HOOKYARD_RUN_WORKER_IN_API": "false",
           "HOOKYARD_ALLOWED_NETWORKS": "127.0.0.0/8", "HOOKYARD_LOG_LEVEL": "warning"}
    server = spawn("serve", ["serve"], env, logdir)
    api = None
    try:
        token = await wait_ready(server, f"http://127.0.0.1:{port}")
        api = Api(f"http://127.0.0.1:{port}", token, 4)
        by_name = {}
        for n in range(args.integrations):
            secret = new_secret()
            receiver.keys[f"w{n}"] = hmac_key(secret)
            by_name[f"bench {n}"] = secret
            await api.connect_webhook(f"bench {n}", f"http://127.0.0.1:{rx_port}/hook/w{n}", secret)
    finally:
        if api is not None:
            await api.close()
        stop([server])
    db = await asyncpg.connect(pg_dsn(database_url))
    try:
        workspace = await db.fetchval("SELECT id FROM workspace WHERE slug = 'default'")
        rows = await db.fetch("SELECT id, name FROM integration WHERE workspace_id = $1", workspace)
    finally:
        await db.close()
    return workspace, {row["id"]: by_name[row["name"]] for row in rows}


async def drive(args: argparse.Namespace) -> int:
    if not await services_up(args.database_url, args.redis_url):
        return 2
    await wait_until_quiet(args.quiet_wait)
    receiver = Receiver()
    runner, rx_port = await start_receiver(receiver)
    db_name = f"hookyard_floor_{uuid.uuid4().hex[:10]}"
    created = False
    logdir = Path(tempfile.mkdtemp(prefix="hookyard-floor-"))
    procs: list[Proc] = []
    client: FloorClient | None = None
    try:
        print(f"baseline: {args.baseline_runs} x {args.baseline_posts} signed posts to the local receiver ...",
              flush=True)
        rates = await baseline(rx_port, receiver, args.baseline_posts, 64, args.baseline_runs)
        database_url = await create_database(args.database_url, db_name)
        created = True
        await flush_redis(args.redis_url)
        print("floor: migrating and connecting the webhooks with `hookyard serve` (then stopped) ...", flush=True)
        workspace, secrets_by_id = await set_up(args, database_url, rx_port, receiver, logdir)
        keys_file = logdir / "keys.json"
        keys_file.write_text(json.dumps(secrets_by_id))
        port = free_port()
        procs.append(spawn_floor("api", ["--role", "api", "--port", str(port), "--workspace", workspace,
                                         "--database-url", database_url, "--redis-url", args.redis_url], logdir))
        if args.claim == "lease":
            db = await asyncpg.connect(pg_dsn(database_url))
            try:
                for statement in LEASE_COLUMN_SQL:
                    await db.execute(statement)
            finally:
                await db.close()
        procs.append(spawn_floor("worker", ["--role", "worker", "--keys-file", str(keys_file), "--claim", args.claim,
                                            "--database-url", database_url, "--redis-url", args.redis_url], logdir))
        for proc in procs:
            await wait_for_line(proc, "ready")
        client = FloorClient(port, max(args.concurrency, 16))
        db = await asyncpg.connect(pg_dsn(database_url))
        try:
            print(f"floor: warm-up ({args.warmup_events} events x {args.integrations}) ...", flush=True)
            await publish_all(client, "bench.warmup", args.warmup_events, args.batch, args.concurrency)
            if not await receiver.wait_for(args.warmup_events * args.integrations, 60):
                raise RuntimeError("floor: the warm-up's deliveries did not arrive:\n"
                                   + "\n".join(p.tail() for p in procs))
            cpu = CpuMeter({"bench": [os.getpid()], "api": [procs[0].popen.pid], "workers": [procs[1].popen.pid],
                            "redis": [await redis_pid(args.redis_url)]})
            receiver.reset()
            expected = args.events * args.integrations
            print(f"floor: throughput ({args.events} events x {args.integrations}) ...", flush=True)
            cpu.start()
            started = time.perf_counter()
            await publish_all(client, "bench.throughput", args.events, args.batch, args.concurrency)
            arrived = await receiver.wait_for(expected, args.timeout)
            ok, attempts, last_write = await wait_recorded(db, "bench.throughput", expected, 30 if arrived else 1)
            last_receipt = wall(max(receiver.arrivals.values(), default=time.perf_counter()))
            finished = max(last_receipt, last_write or 0.0)
            cpu.stop()
            received = len(receiver.arrivals)
        finally:
            await db.close()
        rates += await baseline(rx_port, receiver, args.baseline_posts, 64, 1)
        rate = expected / (finished - wall(started))
        best = max(rates)
        target = TARGET_BATCH_RATIO if args.batch > 1 else TARGET_RATIO
        how = f"calls of {args.batch} events" if args.batch > 1 else "one event a call"
        how += "" if args.claim == "row" else f", claim: {args.claim}"
        print("-" * 78)
        print(f"baseline  one aiohttp sender, 64 in flight, signed JSON: {best:8.0f} posts/s  "
              f"(best of {', '.join(f'{r:.0f}' for r in rates)})")
        print(f"floor     {args.events} events x {args.integrations} = {expected} deliveries, {how}, "
              f"{args.concurrency} in flight:")
        print(f"          received {received}, SUCCEEDED {ok}, attempts recorded {attempts}")
        print(f"          {rate:8.0f} deliveries/s = {rate / best:.2f} x baseline  (Hookyard's target for this "
              f"run: >= {target:.2f})")
        print(f"          {cpu.describe(expected)}")
        print(f"signatures checked on {receiver.checked} sampled receipts, {receiver.bad_signatures} bad")
        print("-" * 78)
        return 0 if received == ok == attempts == expected and receiver.bad_signatures == 0 else 1
    finally:
        if client is not None:
            await client.close()
        stop(procs)
        await runner.cleanup()
        if created:
            await drop_database(args.database_url, db_name)
        await flush_redis(args.redis_url)
        if args.keep_logs:
            print(f"logs: {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--integrations", type=int, default=10, help="webhooks per event (fan-out)")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1, help="events per publish call")
    parser.add_argument("--concurrency", type=int, default=16, help="publish calls in flight")
    parser.add_argument("--warmup-events", type=int, default=50)
    parser.add_argument("--baseline-posts", type=int, default=10000)
    parser.add_argument("--baseline-runs", type=int, default=2, help="baseline runs before (one more runs after)")
    parser.add_argument("--quiet-wait", type=float, default=30)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--claim", choices=CLAIMS, default="row",
                        help="row: as Hookyard (status SENDING and a lease, a non-HOT update); lease: only a lease "
                             "in a column of its own, no index on it (a HOT update; the delivery stays PENDING while "
                             "sent); none: no claim write (no lease, nothing against a second send). What a relaxed "
                             "delivery rule would buy")
    # The child processes' own arguments.
    parser.add_argument("--role", choices=("drive", "api", "worker"), default="drive", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workspace", help=argparse.SUPPRESS)
    parser.add_argument("--keys-file", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def main() -> int:
    args = parse()
    if args.role == "api":
        await run_api(args.database_url, args.redis_url, args.port, args.workspace)
    elif args.role == "worker":
        await run_worker(args.database_url, args.redis_url, args.keys_file, args.claim)
    return await drive(args)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(main()))
    sys.exit(uvloop.run(main()))
