"""Reads: `workspace.deliveries(first: 100)` with attempts, against a plain Starlette endpoint.

The target: Hookyard's GraphQL API answers the delivery log's first page (100 deliveries with their
integration and their attempts) at no less than half the requests/s of a plain Starlette endpoint that
returns the same rows as JSON from the same database, measured in the same run on the same machine.

The bench creates a throw-away PostgreSQL database (dropped at the end), starts `hookyard serve --no-worker`
with its embedded Redis (or `--redis-url`, a db it flushes) so that live updates other Hookyards publish on a
shared Redis do not reach it, and lets serve migrate the database and print the bootstrap token. It
connects a few webhook integrations through GraphQL and writes `--deliveries` deliveries (1-3 attempts
each, with realistic request/response bodies) straight into the tables. It then starts, as a second
uvicorn process, a plain Starlette app on the same database with two endpoints that answer the same JSON
document as the GraphQL query (checked before timing):

- `/orm`: the same ORM (tortoise, the app's own connection settings), model instances, orjson;
- `/sql`: asyncpg with two hand-written queries (what the machine can serve at best), orjson.

Each target is driven by one aiohttp session with `--concurrency` requests in flight for `--seconds`,
`--runs` times in a rotating order; the report gives requests/s (best and median), the server's CPU
per request, and GraphQL's ratio to each plain endpoint (the target is against `/orm`, the same data
layer; `/sql` shows how far off the floor is).

    .venv/bin/python bench/reads.py [--deliveries 2000] [--integrations 4] [--seconds 5] [--runs 3]
        [--concurrency 16] [--database-url postgres://...] [--redis-url redis://...] [--check]
    .venv/bin/python bench/reads.py --profile 300     # cProfile of the GraphQL side, in-process (httpx)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import orjson

# `bench` is importable from the tests; run as a script, this checkout must be made so.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.local_services import ROOT, Proc, free_port, healthy, new_secret, stop  # noqa: E402
from bench.throughput import (  # noqa: E402
    PG_START,
    Api,
    CpuMeter,
    flush_redis,
    pg_dsn,
    services_up,
    spawn,
    wait_ready,
    wait_until_quiet,
    with_database,
)

TARGET_RATIO = 0.5
WORKSPACE = "default"
PAGE = 100
QUERY = """query($slug: String!) { workspace(slug: $slug) { deliveries(first: 100) { edges { node {
  id status eventType attemptCount responseCode createdAt integration { id name }
  attempts { number responseCode durationMs createdAt } } } } } }"""
EVENT_TYPES = ["session.completed", "session.started", "form.submitted", "user.created", "invoice.paid"]


# --- seeding ---------------------------------------------------------------------------------------

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(value: int, length: int) -> str:
    return "".join(_ALPHABET[(value >> (5 * (length - 1 - i))) & 31] for i in range(length))


def make_id(prefix: str, moment: datetime, seq: int) -> str:
    """Hookyard's id shape (48 bits of milliseconds, 80 more bits), increasing with `moment` then `seq`."""
    millis = int(moment.timestamp() * 1000)
    return f"{prefix}_{_encode(millis, 10)}{_encode((seq << 40) | random.getrandbits(40), 16)}"


async def seed(db: asyncpg.Connection, integration_ids: list[str], deliveries: int) -> tuple[int, int]:
    """`deliveries` deliveries over the last two days (one event fans out to every integration), each with
    1-3 attempts; (deliveries, attempts) written."""
    rng = random.Random(7)
    workspace_id = await db.fetchval("select id from workspace where slug = $1", WORKSPACE)
    start = datetime.now(UTC) - timedelta(days=2)
    events, rows, attempts = [], [], []
    per_event = len(integration_ids)
    n_events = -(-deliveries // per_event)
    step = timedelta(days=2) / n_events
    made = 0
    for e in range(n_events):
        at = start + e * step
        event_type = EVENT_TYPES[e % len(EVENT_TYPES)]
        payload = {"sessionId": f"s_{e}", "user": {"email": f"user{e}@example.com", "name": f"User {e}"},
                   "answers": {f"q{i}": rng.choice(["yes", "no", "maybe"]) for i in range(6)}}
        event_id = make_id("evt", at, e)
        events.append((event_id, workspace_id, event_type, orjson.dumps(payload).decode(), at))
        body = orjson.dumps({"type": event_type, "timestamp": at, "data": payload}).decode()
        for k, integration_id in enumerate(integration_ids):
            if made == deliveries:
                break
            made += 1
            delivery_id = make_id("del", at, k)
            tries = rng.choice([1, 1, 1, 2, 2, 3])
            final_ok = rng.random() < 0.85
            status = "SUCCEEDED" if final_ok else rng.choice(["FAILED", "RETRYING"])
            url = f"https://hooks.example.com/receiver/{k}"
            codes = []
            for number in range(1, tries + 1):
                ok = final_ok and number == tries
                code = 200 if ok else rng.choice([500, 502, 503, None])
                codes.append(code)
                attempted = at + timedelta(seconds=2 ** number)
                attempts.append((
                    make_id("att", attempted, number), delivery_id, number,
                    "automatic" if number == 1 else rng.choice(["automatic", "manual"]), url, code,
                    orjson.dumps({"content-type": "application/json", "x-request-id": uuid.uuid4().hex}).decode()
                    if code else None,
                    '{"ok":true}' if ok else ("upstream error" if code else None),
                    rng.randint(20, 900), None if ok else (f"HTTP {code}" if code else "timed out"), attempted))
            last_at = at + timedelta(seconds=2 ** tries)
            request = {"method": "POST", "url": url, "body": body,
                       "headers": {"content-type": "application/json", "webhook-id": delivery_id,
                                   "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": "v1,***"}}
            response = ({"status": codes[-1], "headers": {"content-type": "application/json"},
                         "body": '{"ok":true}' if final_ok else "upstream error", "truncated": False}
                        if codes[-1] else None)
            rows.append((
                delivery_id, workspace_id, event_id, integration_id, event_type, status, tries,
                last_at + timedelta(minutes=5) if status == "RETRYING" else None, codes[-1], rng.randint(20, 900),
                None if final_ok else "the receiver failed", orjson.dumps(request).decode(),
                orjson.dumps(response).decode() if response else None, at, last_at,
                last_at if final_ok else None))
    await db.executemany(
        "insert into event (id, workspace_id, type, payload, created_at) values ($1, $2, $3, $4::jsonb, $5)", events)
    await db.executemany(
        """insert into delivery (id, workspace_id, event_id, integration_id, event_type, status, is_test,
             attempt_count, next_attempt_at, response_code, duration_ms, last_error, request, response, created_at,
             updated_at, delivered_at)
           values ($1, $2, $3, $4, $5, $6, false, $7, $8, $9, $10, $11, $12::jsonb, $13::jsonb, $14, $15, $16)""",
        rows)
    await db.executemany(
        """insert into delivery_attempt (id, delivery_id, number, trigger, request_url, response_code,
             response_headers, response_body, duration_ms, error, created_at)
           values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11)""", attempts)
    await db.execute("analyze")
    return len(rows), len(attempts)


# --- the plain Starlette app (run in a process of its own: `reads.py --serve-plain PORT`) ---------------

def plain_app(database_url: str):
    """Two endpoints answering the GraphQL query's JSON document for ?slug=: /orm (tortoise) and /sql (asyncpg)."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
    from tortoise.contrib.starlette import RegisterTortoise

    from app.config import Settings
    from app.models import Delivery, DeliveryAttempt, Integration, Workspace
    from app.models.database import tortoise_config

    settings = Settings(database_url=database_url)
    pool: list[asyncpg.Pool] = []

    def document(deliveries: list[dict]) -> Response:
        body = orjson.dumps({"data": {"workspace": {"deliveries": {"edges": [{"node": d} for d in deliveries]}}}})
        return Response(body, media_type="application/json")

    async def orm(request: Request) -> Response:
        workspace = await Workspace.get_or_none(slug=request.query_params["slug"])
        if workspace is None:
            return document([])
        rows = await Delivery.filter(workspace_id=workspace.id).order_by("-id").limit(PAGE)
        ids = [r.id for r in rows]
        integrations = {i.id: i for i in await Integration.filter(id__in={r.integration_id for r in rows})}
        attempts: dict[str, list[dict]] = {}
        for a in await DeliveryAttempt.filter(delivery_id__in=ids).order_by("id"):
            attempts.setdefault(a.delivery_id, []).append({
                "number": a.number, "responseCode": a.response_code, "durationMs": a.duration_ms,
                "createdAt": a.created_at})
        return document([{
            "id": r.id, "status": r.status.value, "eventType": r.event_type, "attemptCount": r.attempt_count,
            "responseCode": r.response_code, "createdAt": r.created_at,
            "integration": {"id": r.integration_id, "name": integrations[r.integration_id].name},
            "attempts": attempts.get(r.id, [])} for r in rows])

    async def sql(request: Request) -> Response:
        async with pool[0].acquire() as db:
            rows = await db.fetch(
                """select d.id, d.status, d.event_type, d.attempt_count, d.response_code, d.created_at,
                          d.integration_id, i.name
                     from delivery d join integration i on i.id = d.integration_id
                    where d.workspace_id = (select id from workspace where slug = $1)
                    order by d.id desc limit $2""", request.query_params["slug"], PAGE)
            found = await db.fetch(
                """select delivery_id, number, response_code, duration_ms, created_at from delivery_attempt
                    where delivery_id = any($1::text[]) order by id""", [r["id"] for r in rows])
        attempts: dict[str, list[dict]] = {}
        for a in found:
            attempts.setdefault(a["delivery_id"], []).append({
                "number": a["number"], "responseCode": a["response_code"], "durationMs": a["duration_ms"],
                "createdAt": a["created_at"]})
        return document([{
            "id": r["id"], "status": r["status"], "eventType": r["event_type"], "attemptCount": r["attempt_count"],
            "responseCode": r["response_code"], "createdAt": r["created_at"],
            "integration": {"id": r["integration_id"], "name": r["name"]},
            "attempts": attempts.get(r["id"], [])} for r in rows])

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with RegisterTortoise(app, config=tortoise_config(settings)):
            # The same pool size as tortoise's default for the app's connection.
            pool.append(await asyncpg.create_pool(pg_dsn(database_url), min_size=1, max_size=5))
            try:
                yield
            finally:
                await pool[0].close()

    return Starlette(routes=[Route("/orm", orm), Route("/sql", sql), Route("/healthz", healthz)], lifespan=lifespan)


def serve_plain(port: int, database_url: str) -> None:
    import uvicorn

    # uvicorn's defaults pick uvloop and httptools when installed, as for `hookyard serve`.
    uvicorn.run(plain_app(database_url), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- load ------------------------------------------------------------------------------------------

@dataclass
class Target:
    name: str
    pid: int
    method: str
    url: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # the server's CPU per request, per run
    bytes: int = 0

    async def fetch(self, session: aiohttp.ClientSession) -> bytes:
        async with session.request(self.method, self.url, data=self.body, headers=self.headers) as response:
            raw = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{self.name}: HTTP {response.status}: {raw[:300]!r}")
            return raw


async def drive(target: Target, session: aiohttp.ClientSession, seconds: float, concurrency: int) -> None:
    """`concurrency` lanes request back to back for `seconds`; records requests/s and server CPU per request."""
    done = 0
    cpu = CpuMeter({"server": [target.pid], "bench": [os.getpid()]})
    started = time.perf_counter()
    deadline = started + seconds

    async def lane() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await target.fetch(session)
            done += 1

    cpu.start()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    cpu.stop()
    elapsed = time.perf_counter() - started
    target.rates.append(done / elapsed)
    target.cpu_ms.append(cpu.used["server"] / done * 1000)
    if cpu.other > 0.15 * elapsed:
        print(f"          ({target.name}: other processes used {cpu.other:.1f} CPU s of {elapsed:.1f} s)", flush=True)


def normalise(document: bytes) -> list:
    """The GraphQL answer and the plain one, compared as data (date-times as instants)."""
    edges = orjson.loads(document)["data"]["workspace"]["deliveries"]["edges"]

    def moment(value: str) -> float:
        return datetime.fromisoformat(value).timestamp()

    return [{**e["node"], "createdAt": moment(e["node"]["createdAt"]),
             "attempts": [{**a, "createdAt": moment(a["createdAt"])} for a in e["node"]["attempts"]]}
            for e in edges]


# --- the in-process profile ------------------------------------------------------------------------

async def profile(args: argparse.Namespace, env: dict[str, str], token: str, requests: int) -> None:
    """cProfile of `requests` GraphQL requests through the app in this process (httpx's ASGI transport, no
    sockets), after a warm-up; prints the top functions by own time and by cumulative time."""
    import httpx

    from app.config import Settings
    from app.main import create_app

    os.environ.update({k: v for k, v in env.items() if k.startswith("HOOKYARD_")})  # the server's settings
    app = create_app(Settings(run_worker_in_api=False))
    async with app.router.lifespan_context(app):
        body = orjson.dumps({"query": QUERY, "variables": {"slug": WORKSPACE}})
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            async def one() -> None:
                response = await client.post("/graphql", content=body, headers=headers)
                if response.status_code != 200 or b'"errors"' in response.content[:20]:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.content[:300]!r}")

            for _ in range(30):
                await one()
            gc.collect()
            gc.freeze()  # as `hookyard serve` does once started (app.web.serve)
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            for _ in range(requests):
                await one()
            profiler.disable()
            elapsed = time.perf_counter() - started
    print(f"{requests} requests in {elapsed:.2f} s in-process under cProfile ({elapsed / requests * 1000:.2f} ms "
          "each, one at a time; cProfile itself slows Python code down about 2x)")
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(args.profile_top)
        print(out.getvalue())


# --- the run ---------------------------------------------------------------------------------------

def report(args: argparse.Namespace, targets: list[Target], rows: tuple[int, int]) -> bool:
    by = {t.name: t for t in targets}
    line = "-" * 78
    print(line)
    print(f"Reads: workspace.deliveries(first: {PAGE}) with integration and attempts  ({rows[0]} deliveries, "
          f"{rows[1]} attempts, {args.integrations} integrations; {args.concurrency} in flight, "
          f"{args.runs} x {args.seconds:g} s per target)")
    print(line)
    for t in targets:
        print(f"{t.name:8} {max(t.rates):7.0f} req/s best, {statistics.median(t.rates):7.0f} median  "
              f"(runs {', '.join(f'{r:.0f}' for r in t.rates)});  server CPU {statistics.median(t.cpu_ms):.2f} ms/req;"
              f"  {t.bytes / 1024:.1f} KiB")
    gql = by["graphql"]
    ok = True
    for name in ("orm", "sql"):
        base = by[name]
        best = max(gql.rates) / max(base.rates)
        median = statistics.median(gql.rates) / statistics.median(base.rates)
        target = name == "orm"
        met = best >= TARGET_RATIO
        ok = ok and (met or not target)
        # On a busy machine requests/s mostly measure the scheduler; CPU per request does not.
        cpu = statistics.median(base.cpu_ms) / statistics.median(gql.cpu_ms)
        print(f"graphql / {name}: {best:.2f} x (best), {median:.2f} x (median); by server CPU per request "
              f"{cpu:.2f} x" + (f"  target >= {TARGET_RATIO:.2f}: {'MET' if met else 'NOT MET'}" if target
                                else "  (the floor)"))
    print(line)
    return ok


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432"),
                        help="an existing database to connect to; the bench creates and drops its own next to it")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL"),
                        help="a Redis db the bench may flush; by default the server runs its embedded Redis, so "
                             "the live updates other Hookyards publish on a shared Redis do not reach it")
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--integrations", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--seconds", type=float, default=5, help="seconds per run and target")
    parser.add_argument("--runs", type=int, default=3, help="runs per target, in a rotating order")
    parser.add_argument("--quiet-wait", type=float, default=20,
                        help="seconds to wait for the machine to be idle before starting")
    parser.add_argument("--app-dir", type=Path, default=ROOT,
                        help="run Hookyard from this checkout (its `app` package), e.g. to compare two versions")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead of the load: cProfile N GraphQL requests in-process and print the top")
    parser.add_argument("--profile-top", type=int, default=35)
    parser.add_argument("--serve-plain", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is not met")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> int:
    if args.redis_url and not await services_up(args.database_url, args.redis_url):
        return 2
    try:
        admin = await asyncpg.connect(pg_dsn(args.database_url), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"PostgreSQL at {args.database_url} is not reachable ({exc}); start it with:\n    {PG_START}",
              file=sys.stderr)
        return 2
    db_name = f"hookyard_reads_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{db_name}"')
    await admin.close()
    database_url = with_database(args.database_url, db_name)
    if args.redis_url:
        await flush_redis(args.redis_url)
    logdir = Path(tempfile.mkdtemp(prefix="hookyard-reads-"))
    procs: list[Proc] = []
    ok = False
    try:
        port, plain_port = free_port(), free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")},
               "HOOKYARD_DATABASE_URL": database_url, "HOOKYARD_PORT": str(port), "HOOKYARD_HOST": "127.0.0.1",
               "HOOKYARD_DATA_DIR": str(logdir / "data"),
               "HOOKYARD_SECRET_KEY": secrets.token_urlsafe(32), "HOOKYARD_ALLOWED_NETWORKS": "127.0.0.0/8",
               "HOOKYARD_ENFORCE_PLANS": "false", "HOOKYARD_LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1",
               # One token asks for everything here: the per-token budget would measure itself.
               "HOOKYARD_RATE_LIMIT_PER_MINUTE": "100000000"}
        if args.redis_url:
            env["HOOKYARD_REDIS_URL"] = args.redis_url
        (logdir / "data").mkdir()  # the embedded Redis's directory goes in it
        server = spawn("serve", ["serve", "--no-worker"], env, logdir, args.app_dir)
        procs.append(server)
        base_url = f"http://127.0.0.1:{port}"
        token = await wait_ready(server, base_url)  # serve migrates and bootstraps first
        api = Api(base_url, token, 4)
        try:
            # Never sent to: no worker runs. A loopback URL passes the SSRF check without DNS.
            integration_ids = [await api.connect_webhook(f"receiver {n}", f"http://127.0.0.1:9/receiver/{n}",
                                                         new_secret()) for n in range(args.integrations)]
        finally:
            await api.close()
        db = await asyncpg.connect(pg_dsn(database_url))
        try:
            rows = await seed(db, integration_ids, args.deliveries)
        finally:
            await db.close()
        print(f"seeded {rows[0]} deliveries with {rows[1]} attempts", flush=True)

        if args.profile:
            stop(procs)
            procs.clear()
            await profile(args, env, token, args.profile)
            return 0

        with open(logdir / "plain.log", "wb") as log:
            plain = Proc("plain", subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--serve-plain", str(plain_port),
                 "--database-url", database_url], cwd=args.app_dir, env=env, start_new_session=True,
                stdout=log, stderr=subprocess.STDOUT), logdir / "plain.log")
        procs.append(plain)
        plain_url = f"http://127.0.0.1:{plain_port}"
        async with aiohttp.ClientSession() as probe:
            deadline = time.monotonic() + 60
            while not await healthy(plain_url, probe):
                if plain.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the plain app did not start:\n{plain.tail()}")
                await asyncio.sleep(0.2)

        targets = [
            Target("graphql", server.popen.pid, "POST", f"{base_url}/graphql",
                   orjson.dumps({"query": QUERY, "variables": {"slug": WORKSPACE}}),
                   {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}),
            Target("orm", plain.popen.pid, "GET", f"{plain_url}/orm?slug={WORKSPACE}"),
            Target("sql", plain.popen.pid, "GET", f"{plain_url}/sql?slug={WORKSPACE}"),
        ]
        connector = aiohttp.TCPConnector(limit=args.concurrency * 2, keepalive_timeout=2)
        async with aiohttp.ClientSession(connector=connector) as session:
            answers = {}
            for t in targets:  # the same document from each, and a warm-up
                answers[t.name] = await t.fetch(session)
                t.bytes = len(answers[t.name])
                await drive(t, session, 1.0, args.concurrency)
                t.rates.clear()
                t.cpu_ms.clear()
            expected = normalise(answers["graphql"])
            if len(expected) != PAGE:
                raise RuntimeError(f"GraphQL answered {len(expected)} deliveries, not {PAGE}")
            for name in ("orm", "sql"):
                if normalise(answers[name]) != expected:
                    raise RuntimeError(f"the plain /{name} answer differs from GraphQL's")
            busy = await wait_until_quiet(args.quiet_wait)
            if busy >= 0.15:
                print(f"note: the machine is {busy:.0%} busy with other work; figures will be noisy", flush=True)
            for run in range(args.runs):
                order = targets[run % len(targets):] + targets[:run % len(targets)]
                for t in order:
                    await drive(t, session, args.seconds, args.concurrency)
                print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{t.name} {t.rates[-1]:.0f}/s" for t in targets),
                      flush=True)
        ok = report(args, targets, rows)
    finally:
        stop(procs)
        shutil.rmtree(logdir, ignore_errors=True)
        try:
            admin = await asyncpg.connect(pg_dsn(args.database_url))
            await admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            await admin.close()
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"could not drop {db_name}: {exc}", file=sys.stderr)
        if args.redis_url:
            try:
                await flush_redis(args.redis_url)
            except Exception as exc:  # noqa: BLE001
                print(f"could not flush {args.redis_url}: {exc}", file=sys.stderr)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    arguments_ = arguments()
    if arguments_.serve_plain:
        serve_plain(arguments_.serve_plain, arguments_.database_url)
        sys.exit(0)
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(main(arguments_)))
    sys.exit(uvloop.run(main(arguments_)))
