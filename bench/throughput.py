"""End-to-end delivery throughput and publish-to-receipt latency on PostgreSQL + Redis.

The DESIGN.md target: one plain aiohttp sender posting signed JSON to a local receiver is
the baseline (posts/s, measured in the same run); Hookyard's end-to-end deliveries/s
(publish through GraphQL, fan-out, queue, send, attempt recorded) should reach at least
40 % of it, with p99 publish-to-receipt under 250 ms at 500 deliveries/s; publishing in
`eventsPublish` calls of many events (`--batch N`), at least 60 %.

The bench creates a throw-away PostgreSQL database (dropped at the end), uses one Redis db
(flushed before and after), starts `hookyard serve` (API only) and `hookyard worker`
processes, connects N webhook integrations pointing at an aiohttp receiver inside this
process (so every event fans out to N deliveries), then

1. baseline: one aiohttp ClientSession posts Standard Webhooks-signed JSON to the same
   receiver, a few runs before Hookyard starts and one after it stops; the best run counts;
2. throughput: publishes a fixed number of events through GraphQL `eventPublish` (or
   `eventsPublish` calls of `--batch` events each) with bounded concurrency and times first
   publish -> last delivery received and its attempt recorded in the database;
3. latency: publishes at a fixed rate worth `--rate` deliveries/s and measures, per
   delivery, publish start -> receipt at the receiver (with `--batch`, a call of that many
   events every batch's worth of the rate: the delay counts from the call's start).

With `--controlled N`, N more integrations on the same events (alternately ordered in one lane, and
rate-limited to 100/s with at most 2 in flight; `--control` makes them all of one kind, or plain to
compare with) whose deliveries are counted apart; before the latency phase the bench waits
(`--drain-limited`, at most 30 s) until the rate-limited ones have received the throughput phase's
events, so the latency phase starts from the same backlog whatever the speed of the throughput phase
(the ordered lanes, one send at a time, keep theirs).

It also reports where the CPU went (bench, API, workers, Redis, PostgreSQL) and warns when
other processes were busy meanwhile: on a 2-core machine that moves the figures a lot.

    .venv/bin/python bench/throughput.py [--events 1000] [--integrations 10] [--workers 1]
        [--batch 50] [--rate 500] [--latency-seconds 10] [--database-url postgres://...] [--redis-url redis://...]
        [--app-dir another/checkout] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson
from aiohttp import web
from redis.asyncio import Redis

# `bench` is importable from the tests; run as a script, this checkout must be made so.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import pg_statements
from bench.local_services import ROOT, Proc, free_port, hookyard_argv, serve_hooks, stop

TARGET_RATIO = 0.40
TARGET_BATCH_RATIO = 0.60  # publishing with `eventsPublish` (--batch)
TARGET_P99_MS = 250.0
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'

CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } secret errors { field message code } } }"""
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  event { id } deliveries { id } errors { field message code } } }"""
PUBLISH_MANY = """mutation($input: EventsPublishInput!) { eventsPublish(input: $input) {
  results { event { id } deliveries { id } errors { field message code } } errors { field message code } } }"""


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wall(perf: float) -> float:
    """A perf_counter reading as a Unix time (the database stores wall-clock times)."""
    return perf + _WALL_OFFSET


_WALL_OFFSET = time.time() - time.perf_counter()


# --- signing (Standard Webhooks, computed here, independent of app/) -------------------------------

def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def hmac_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# --- the receiver ---------------------------------------------------------------------------------

@dataclass
class Receiver:
    """Answers 200 to every POST and records when each `webhook-id` first arrived."""

    keys: dict[str, bytes] = field(default_factory=dict)  # path -> HMAC key, for the sampled check
    arrivals: dict[str, float] = field(default_factory=dict)
    count: int = 0
    duplicates: int = 0
    checked: int = 0
    bad_signatures: int = 0
    verify_every: int = 50
    side: int = 0
    side_in_throughput: int = 0  # of `side`, those received by the end of the throughput phase
    side_by_name: dict[str, int] = field(default_factory=dict)
    side_by_name_in_throughput: dict[str, int] = field(default_factory=dict)
    waiter: tuple[int, asyncio.Future] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if (name := request.match_info["name"]).startswith("side"):  # --controlled integrations: counted apart
            self.side += 1
            self.side_by_name[name] = self.side_by_name.get(name, 0) + 1
            return web.Response(status=200)
        now = time.perf_counter()
        msg_id = request.headers.get("webhook-id", "")
        self.count += 1
        if msg_id in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[msg_id] = now
        if self.count % self.verify_every == 1:
            self._verify(request, msg_id, body)
        if self.waiter and len(self.arrivals) >= self.waiter[0] and not self.waiter[1].done():
            self.waiter[1].set_result(None)
        return web.Response(status=200)

    def _verify(self, request: web.Request, msg_id: str, body: bytes) -> None:
        key = self.keys.get(request.match_info["name"])
        if key is None:
            return
        self.checked += 1
        expected = signature(key, msg_id, request.headers.get("webhook-timestamp", ""), body)
        if expected not in request.headers.get("webhook-signature", "").split(" "):
            self.bad_signatures += 1

    def reset(self) -> None:
        self.arrivals.clear()
        self.count = self.duplicates = 0

    async def wait_for(self, distinct: int, timeout: float) -> bool:
        if len(self.arrivals) >= distinct:
            return True
        future = asyncio.get_running_loop().create_future()
        self.waiter = (distinct, future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.waiter = None


async def start_receiver(receiver: Receiver) -> tuple[web.AppRunner, int]:
    return await serve_hooks(receiver.handle)


# --- baseline: one plain aiohttp sender -----------------------------------------------------------

async def baseline(port: int, receiver: Receiver, posts: int, concurrency: int, runs: int) -> list[float]:
    """posts/s of each run of one ClientSession posting Standard Webhooks-signed JSON, `concurrency` in
    flight (the report takes the best run: what the plain sender can do on this machine)."""
    secret = new_secret()
    key = hmac_key(secret)
    receiver.keys["baseline"] = key
    url = f"http://127.0.0.1:{port}/hook/baseline"
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)

    async with aiohttp.ClientSession(connector=connector) as session:
        async def post(n: int) -> None:
            msg_id = f"msg_{uuid.uuid4().hex}"
            ts = str(int(time.time()))
            body = orjson.dumps({"type": "bench.baseline", "timestamp": datetime.now(UTC),
                                 "data": {"answer": 42, "seq": n}})
            headers = {"content-type": "application/json", "user-agent": "bench/1",
                       "webhook-id": msg_id, "webhook-timestamp": ts,
                       "webhook-signature": signature(key, msg_id, ts, body)}
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"receiver answered {response.status}")

        async def run(total: int) -> float:
            counter = iter(range(total))

            async def lane() -> None:
                for n in counter:
                    await post(n)

            started = time.perf_counter()
            await asyncio.gather(*(lane() for _ in range(concurrency)))
            return time.perf_counter() - started

        await run(min(2000, posts))  # warm-up: connections, caches
        rates = []
        for _ in range(runs):
            receiver.reset()
            rates.append(posts / await run(posts))
    receiver.reset()
    return rates


# --- Hookyard processes ----------------------------------------------------------------------------

def spawn(name: str, args: list[str], env: dict[str, str], logdir: Path, app_dir: Path = ROOT) -> Proc:
    log = logdir / f"{name}.log"
    handle = open(log, "wb")  # noqa: SIM115 - the child owns it until it exits
    popen = subprocess.Popen(hookyard_argv(*args), cwd=app_dir, env=env, stdout=handle,
                             stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    return Proc(name, popen, log)


async def wait_ready(server: Proc, base_url: str, timeout: float = 90) -> str:
    """The bootstrap token from the server's output, once /healthz answers."""
    deadline = time.monotonic() + timeout
    token = None
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.popen.poll() is not None:
                raise RuntimeError(f"hookyard serve exited with {server.popen.returncode}:\n{server.tail()}")
            if token is None and (m := re.search(r"hyk_[A-Za-z0-9_-]{43}", server.log.read_text(errors="replace"))):
                token = m.group(0)
            if token:
                try:
                    async with session.get(f"{base_url}/healthz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return token
                except (aiohttp.ClientError, TimeoutError):
                    pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"hookyard serve was not ready after {timeout:g} s:\n{server.tail()}")


class Api:
    def __init__(self, base_url: str, token: str, concurrency: int):
        self.url = f"{base_url}/graphql"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.session = aiohttp.ClientSession(
            # Idle connections are dropped before uvicorn's 5 s keep-alive would close them under us.
            connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, keepalive_timeout=2))

    async def gql(self, query: str, variables: dict) -> dict:
        body = orjson.dumps({"query": query, "variables": variables})
        async with self.session.post(self.url, data=body, headers=self.headers) as response:
            raw = await response.read()
        data = orjson.loads(raw)
        if response.status != 200 or data.get("errors"):
            raise RuntimeError(f"GraphQL error ({response.status}): {raw[:500]!r}")
        return data["data"]

    async def connect_webhook(self, name: str, url: str, secret: str, **config) -> str:
        data = await self.gql(CONNECT, {"input": {"workspace": "default", "type": "WEBHOOK", "name": name,
                                                  "config": {"url": url, **config}, "secrets": {"secret": secret},
                                                  "events": ["*"]}})
        payload = data["integrationConnect"]
        if payload["errors"]:
            raise RuntimeError(f"integrationConnect: {payload['errors']}")
        return payload["integration"]["id"]

    async def publish(self, event_type: str, seq: int) -> list[str]:
        data = await self.gql(PUBLISH, {"input": {"workspace": "default", "type": event_type,
                                                  "payload": {"answer": 42, "seq": seq}}})
        payload = data["eventPublish"]
        if payload["errors"]:
            raise RuntimeError(f"eventPublish: {payload['errors']}")
        return [d["id"] for d in payload["deliveries"]]

    async def publish_many(self, event_type: str, seqs: list[int]) -> list[str]:
        """One `eventsPublish` call of an event per number; the delivery ids of them all."""
        data = await self.gql(PUBLISH_MANY, {"input": {"workspace": "default", "events": [
            {"type": event_type, "payload": {"answer": 42, "seq": seq}} for seq in seqs]}})
        payload = data["eventsPublish"]
        if payload["errors"]:
            raise RuntimeError(f"eventsPublish: {payload['errors'][:5]}")
        return [d["id"] for result in payload["results"] for d in result["deliveries"]]

    async def publish_some(self, event_type: str, seqs: list[int]) -> list[str]:
        """`eventsPublish` for several events, `eventPublish` for one."""
        if len(seqs) == 1:
            return await self.publish(event_type, seqs[0])
        return await self.publish_many(event_type, seqs)

    async def close(self) -> None:
        await self.session.close()


async def recorded(db: asyncpg.Connection, event_type: str) -> tuple[int, int, float | None]:
    """(SUCCEEDED deliveries, attempts recorded, time of the last write) for one phase's event type."""
    row = await db.fetchrow(
        """select count(*) filter (where d.status = 'SUCCEEDED') as ok, max(d.updated_at) as last_update,
                  (select count(*) from delivery_attempt a join delivery x on x.id = a.delivery_id
                    where x.event_type = $1) as attempts,
                  (select max(a.created_at) from delivery_attempt a join delivery x on x.id = a.delivery_id
                    where x.event_type = $1) as last_attempt
             from delivery d where d.event_type = $1""",
        event_type,
    )
    stamps = [t.timestamp() for t in (row["last_update"], row["last_attempt"]) if t is not None]
    return row["ok"], row["attempts"], max(stamps) if stamps else None


async def wait_recorded(db: asyncpg.Connection, event_type: str, expected: int, timeout: float
                        ) -> tuple[int, int, float | None]:
    deadline = time.monotonic() + timeout
    while True:
        ok, attempts, last = await recorded(db, event_type)
        if (ok >= expected and attempts >= expected) or time.monotonic() > deadline:
            return ok, attempts, last
        await asyncio.sleep(0.1)


# --- the phases ------------------------------------------------------------------------------------

@dataclass
class Throughput:
    events: int
    deliveries: int
    received: int
    succeeded: int
    attempts: int
    seconds: float
    publish_seconds: float

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds


def chunks(events: int, batch: int) -> list[list[int]]:
    return [list(range(n, min(n + batch, events))) for n in range(0, events, batch)]


async def warm_up(api: Api, receiver: Receiver, integrations: int, events: int, batch: int = 1) -> None:
    receiver.reset()
    await asyncio.gather(*(api.publish_some("bench.warmup", seqs) for seqs in chunks(events, max(1, batch))))
    if not await receiver.wait_for(events * integrations, 60):
        raise RuntimeError(f"warm-up: only {len(receiver.arrivals)} of {events * integrations} deliveries "
                           "arrived in 60 s (are the workers running? see their logs)")


async def throughput(api: Api, receiver: Receiver, db: asyncpg.Connection, integrations: int, events: int,
                     concurrency: int, timeout: float, batch: int = 1) -> Throughput:
    receiver.reset()
    expected = events * integrations
    counter = iter(chunks(events, max(1, batch)))

    async def lane() -> None:
        for seqs in counter:
            await api.publish_some("bench.throughput", seqs)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    published = time.perf_counter()
    all_in = await receiver.wait_for(expected, timeout)
    ok, attempts, last_write = await wait_recorded(db, "bench.throughput", expected, 30 if all_in else 1)
    last_receipt = wall(max(receiver.arrivals.values())) if receiver.arrivals else wall(time.perf_counter())
    finished = max(last_receipt, last_write or 0.0)
    return Throughput(events=events, deliveries=expected, received=len(receiver.arrivals), succeeded=ok,
                      attempts=attempts, seconds=finished - wall(started), publish_seconds=published - started)


@dataclass
class Latency:
    rate: float
    seconds: float
    expected: int
    delays_ms: list[float]
    publish_ms: list[float]
    late_publishes: int
    p99_by_second: list[float] = field(default_factory=list)


async def latency(api: Api, receiver: Receiver, integrations: int, rate: float, seconds: float,
                  timeout: float, batch: int = 1) -> Latency:
    """Publishes an event every integrations/rate s (`batch` events every batch times that, in one
    call); delay = publish start -> receipt, per delivery."""
    receiver.reset()
    events = max(1, int(rate * seconds / integrations))
    calls = chunks(events, max(1, batch))
    interval = integrations / rate * max(1, batch)
    starts: dict[str, float] = {}
    publish_ms: list[float] = []
    late = 0

    async def one(seqs: list[int]) -> None:
        begun = time.perf_counter()
        ids = await api.publish_some("bench.latency", seqs)
        publish_ms.append((time.perf_counter() - begun) * 1000)
        for delivery_id in ids:
            starts[delivery_id] = begun

    tasks = []
    origin = time.perf_counter()
    for n, seqs in enumerate(calls):
        delay = origin + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -interval:
            late += 1  # the bench itself fell behind the schedule
        tasks.append(asyncio.create_task(one(seqs)))
    await asyncio.gather(*tasks)
    await receiver.wait_for(events * integrations, timeout)
    got = [(s - origin, (receiver.arrivals[d] - s) * 1000) for d, s in starts.items() if d in receiver.arrivals]
    per_second: dict[int, list[float]] = {}
    for at, delay in got:
        per_second.setdefault(int(at), []).append(delay)
    return Latency(rate=rate, seconds=seconds, expected=events * integrations, delays_ms=[d for _, d in got],
                   publish_ms=publish_ms, late_publishes=late,
                   p99_by_second=[percentile(per_second[k], 99) for k in sorted(per_second)])


# --- CPU accounting (Linux /proc; where the machine's two cores went) ------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def _pids_named(name: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


class CpuMeter:
    """CPU seconds per component between start() and stop()."""

    def __init__(self, groups: dict[str, list[int]]):
        self.groups = groups
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.seconds = 0.0

    def _sample(self) -> dict[str, float]:
        groups = dict(self.groups)
        groups["postgres (all)"] = _pids_named("postgres")
        sample = {name: sum(_cpu_of(p) for p in pids) for name, pids in groups.items()}
        sample["machine"] = machine_busy()
        return sample

    def start(self) -> None:
        self.before = self._sample()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        after = self._sample()
        self.seconds = time.perf_counter() - self._t0
        self.used = {k: after[k] - self.before.get(k, 0.0) for k in after}
        machine = self.used.pop("machine")
        self.other = max(0.0, machine - sum(self.used.values()))

    def describe(self, deliveries: int) -> str:
        total = sum(self.used.values())
        parts = [f"{k} {v:.1f}" for k, v in self.used.items()]
        text = (f"CPU s over {self.seconds:.1f} s: " + ", ".join(parts) + f"; total {total:.1f} "
                f"= {total / max(deliveries, 1) * 1000:.2f} ms per delivery")
        if self.other > 0.1 * self.seconds:
            text += (f"\n          WARNING: other processes used {self.other:.1f} CPU s meanwhile; "
                     "the figures are not from a quiet machine")
        return text


def rss_mib(pid: int) -> float:
    """A process's resident memory in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _TICK


async def wait_until_quiet(max_wait: float, threshold: float = 0.15) -> float:
    """Waits (up to `max_wait` s) for a second in which the machine is under `threshold` busy; returns
    the busy fraction seen last, so the report can say when it ran next to something else."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_busy()
        await asyncio.sleep(1.0)
        busy = (machine_busy() - before) / cores
        if busy < threshold or time.monotonic() > deadline:
            return busy


# --- set-up and tear-down --------------------------------------------------------------------------

def pg_dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def create_database(server_url: str, name: str) -> str:
    """Creates the database `name` on the server of `server_url`; answers its URL."""
    admin = await asyncpg.connect(pg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drops the database `name` (connections and all); says so on stderr when it cannot."""
    try:
        admin = await asyncpg.connect(pg_dsn(server_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"could not drop {name}: {exc}", file=sys.stderr)


async def services_up(database_url: str, redis_url: str) -> bool:
    ok = True
    try:
        conn = await asyncpg.connect(pg_dsn(database_url), timeout=5)
        await conn.close()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        ok = False
        print(f"PostgreSQL at {database_url} is not reachable ({exc}). Start it with:\n    {PG_START}",
              file=sys.stderr)
    try:
        redis = Redis.from_url(redis_url, socket_connect_timeout=3)
        await redis.ping()
        await redis.aclose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        ok = False
        print(f"Redis at {redis_url} is not reachable ({exc}). Start it with:\n    {REDIS_START}",
              file=sys.stderr)
    return ok


async def redis_pid(url: str) -> int:
    redis = Redis.from_url(url)
    try:
        return int((await redis.info("server"))["process_id"])
    finally:
        await redis.aclose()


async def flush_redis(url: str) -> None:
    redis = Redis.from_url(url)
    await redis.flushdb()
    await redis.aclose()


def report(args: argparse.Namespace, base_rates: list[float], base_cpu: CpuMeter, tp: Throughput, lat: Latency,
           rx: Receiver, cpu: CpuMeter, lat_cpu: CpuMeter) -> bool:
    base_rate = max(base_rates)
    ratio = tp.rate / base_rate
    delays = lat.delays_ms
    p50 = percentile(delays, 50) if delays else float("nan")
    p99 = percentile(delays, 99) if delays else float("nan")
    complete = tp.received == tp.deliveries and tp.succeeded == tp.deliveries and tp.attempts == tp.deliveries
    target = TARGET_BATCH_RATIO if args.batch > 1 else TARGET_RATIO
    ratio_ok = complete and ratio >= target
    how = (f"eventsPublish calls of {args.batch} events, {args.concurrency} in flight" if args.batch > 1
           else f"{args.concurrency} publishes in flight")
    latency_ok = len(delays) == lat.expected and p99 < TARGET_P99_MS
    line = "-" * 78
    print(line)
    print(f"Hookyard delivery throughput  ({args.workers} worker process(es), {args.integrations} webhook "
          f"integrations, PostgreSQL + Redis)")
    print(line)
    print(f"baseline  one aiohttp sender, {args.baseline_concurrency} in flight, signed JSON: "
          f"{base_rate:8.0f} posts/s  (best of {', '.join(f'{r:.0f}' for r in base_rates)})")
    if base_cpu.other > 0.2:
        print(f"          WARNING: other processes used {base_cpu.other:.1f} CPU s during the baseline runs")
    print(f"hookyard  {tp.events} events x {args.integrations} = {tp.deliveries} deliveries, {how}:")
    print(f"          published in {tp.publish_seconds:.2f} s ({tp.events / tp.publish_seconds:.0f} events/s); "
          f"all received and recorded after {tp.seconds:.2f} s")
    print(f"          received {tp.received}, SUCCEEDED {tp.succeeded}, attempts recorded {tp.attempts}, "
          f"duplicate receipts {rx.duplicates}")
    print(f"          {tp.rate:8.0f} deliveries/s = {ratio:.2f} x baseline  "
          f"(target >= {target:.2f}: {'MET' if ratio_ok else 'NOT MET'})")
    print(f"          {cpu.describe(tp.deliveries)}")
    print(f"latency   {lat.rate:g} deliveries/s for {lat.seconds:g} s ({lat.expected} deliveries, "
          f"{len(delays)} received, {lat.late_publishes} publishes behind schedule)")
    if delays:
        print(f"          publish -> receipt: p50 {p50:.1f} ms, p90 {percentile(delays, 90):.1f} ms, "
              f"p99 {p99:.1f} ms, max {max(delays):.1f} ms, mean {statistics.mean(delays):.1f} ms")
        call = f"eventsPublish ({args.batch} events)" if args.batch > 1 else "eventPublish"
        print(f"          {call} round trip: p50 {percentile(lat.publish_ms, 50):.1f} ms, "
              f"p99 {percentile(lat.publish_ms, 99):.1f} ms")
        print("          p99 per second of publishing: " + " ".join(f"{v:.0f}" for v in lat.p99_by_second))
    print(f"          {lat_cpu.describe(lat.expected)}")
    print(f"          p99 target < {TARGET_P99_MS:.0f} ms: {'MET' if latency_ok else 'NOT MET'}")
    if args.controlled:
        print(f"controlled {args.controlled} integrations ({args.control}) on the same events: "
              f"{rx.side} of their deliveries received (not counted above)")
        every = tp.deliveries + rx.side_in_throughput
        total = sum(cpu.used.values())
        each = ", ".join(f"{name} ({side_kind(args.control, int(name[4:]))}) {count}"
                         for name, count in sorted(rx.side_by_name_in_throughput.items()))
        per = {k: v / max(every, 1) * 1000 for k, v in cpu.used.items()}
        print(f"          in the throughput phase: {rx.side_in_throughput} of theirs received ({each})")
        print(f"          CPU per delivery counting theirs too: {total / max(every, 1) * 1000:.2f} ms (api "
              f"{per['api']:.2f}, workers {per['workers']:.2f}, postgres {per.get('postgres (all)', 0):.2f})")
    print(f"signatures checked on {rx.checked} sampled receipts, {rx.bad_signatures} bad")
    print(line)
    return ratio_ok and latency_ok and rx.bad_signatures == 0


# The delivery control of a --controlled integration, by kind (`--control`: one kind, or "mixed").
CONTROLS = {"ordered": {"ordering": "ORDERED"},
            "limited": {"rateLimit": {"requests": 100, "perSeconds": 1}, "maxConcurrency": 2},
            "none": {}}


def side_kind(control: str, n: int) -> str:
    """The kind of the n-th --controlled integration under `--control`."""
    if control == "mixed":
        return "ordered" if n % 2 == 0 else "limited"
    return control


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432"),
                        help="an existing database to connect to; the bench creates and drops its own next to it")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
                        help="a Redis db the bench may flush (default db 9)")
    parser.add_argument("--integrations", type=int, default=10, help="webhooks per event (fan-out)")
    parser.add_argument("--events", type=int, default=1000, help="events published in the throughput phase")
    parser.add_argument("--concurrency", type=int, default=16, help="eventPublish calls in flight")
    parser.add_argument("--batch", type=int, default=1,
                        help="publish in eventsPublish calls of this many events (at most 500; 1: eventPublish); "
                             f"the throughput target is then {TARGET_BATCH_RATIO:.2f} x baseline")
    parser.add_argument("--workers", type=int, default=1,
                        help="`hookyard worker` processes (on 2 cores one does best; try 2 on bigger machines)")
    parser.add_argument("--worker-concurrency", type=int, default=None,
                        help="HOOKYARD_WORKER_CONCURRENCY (jobs per worker; default: the app's)")
    parser.add_argument("--rate", type=float, default=500, help="deliveries/s in the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--baseline-posts", type=int, default=10000, help="posts per baseline run")
    parser.add_argument("--baseline-runs", type=int, default=3, help="baseline runs; the best one counts")
    parser.add_argument("--quiet-wait", type=float, default=30,
                        help="seconds to wait for the machine to be idle before starting")
    parser.add_argument("--baseline-concurrency", type=int, default=64)
    parser.add_argument("--drain-limited", type=float, default=30.0,
                        help="with --controlled: seconds to wait, at most, for the rate-limited integrations to "
                             "receive the throughput phase's events before the latency phase (0: do not wait)")
    parser.add_argument("--controlled", type=int, default=0,
                        help="extra integrations with delivery control (alternately ORDERED in one lane, and "
                             "rate-limited to 100/s with at most 2 in flight), on the same events; their "
                             "deliveries are not counted, so the figures show what they cost the others")
    parser.add_argument("--control", choices=("mixed", *CONTROLS), default="mixed",
                        help="with --controlled: what the extra integrations are: alternately ordered and "
                             "rate-limited (mixed), all ordered, all rate-limited (limited), or plain (none: the "
                             "run to compare with, what N more integrations cost without delivery control)")
    parser.add_argument("--log-level", default="warning",
                        help="HOOKYARD_LOG_LEVEL of the API and workers (the app's default, info, writes a line "
                             "per attempt to the processes' log files)")
    parser.add_argument("--warmup-events", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=120, help="max seconds to wait for deliveries")
    parser.add_argument("--app-dir", type=Path, default=ROOT,
                        help="run Hookyard from this checkout (its `app` package), e.g. to compare two versions")
    parser.add_argument("--keep-logs", action="store_true", help="print where the server/worker logs are")
    parser.add_argument("--pg-statements", action="store_true",
                        help="also report PostgreSQL's time per statement in the throughput phase, per delivery "
                             "(needs pg_stat_statements loaded by the server: see bench/pg_statements.py)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is not met")
    args = parser.parse_args()
    if not 1 <= args.batch <= 500:
        parser.error("--batch must be 1-500 (eventsPublish takes at most 500 events)")

    if not await services_up(args.database_url, args.redis_url):
        return 2

    busy = await wait_until_quiet(args.quiet_wait)
    if busy >= 0.15:
        print(f"note: the machine is {busy:.0%} busy with other work; figures will be noisy", flush=True)
    receiver = Receiver()
    runner, rx_port = await start_receiver(receiver)
    db_name = f"hookyard_bench_{uuid.uuid4().hex[:10]}"
    procs: list[Proc] = []
    api: Api | None = None
    db: asyncpg.Connection | None = None
    by_statement = False  # --pg-statements and the server has the module
    statements: list[pg_statements.Statement] = []
    created = False
    ok = False
    try:
        # The baseline runs before and after Hookyard, so a burst of other work on the machine
        # during one of them does not decide the ratio (the best run counts).
        print(f"baseline: {args.baseline_runs} x {args.baseline_posts} signed posts to the local receiver ...",
              flush=True)
        base_cpu = CpuMeter({"bench": [os.getpid()]})
        base_cpu.start()
        base_rates = await baseline(rx_port, receiver, args.baseline_posts, args.baseline_concurrency,
                                    max(1, args.baseline_runs - 1))
        base_cpu.stop()
        other_during_baseline = base_cpu.other

        database_url = await create_database(args.database_url, db_name)
        created = True
        await flush_redis(args.redis_url)

        logdir = Path(tempfile.mkdtemp(prefix="hookyard-throughput-"))
        port = free_port()
        env = {**os.environ, "HOOKYARD_DATABASE_URL": database_url, "HOOKYARD_REDIS_URL": args.redis_url,
               "HOOKYARD_PORT": str(port), "HOOKYARD_HOST": "127.0.0.1", "HOOKYARD_DATA_DIR": str(logdir / "data"),
               "HOOKYARD_SECRET_KEY": secrets.token_urlsafe(32), "HOOKYARD_RUN_WORKER_IN_API": "false",
               "HOOKYARD_ALLOWED_NETWORKS": "127.0.0.0/8", "HOOKYARD_ENFORCE_PLANS": "false",
               "HOOKYARD_LOG_LEVEL": args.log_level, "PYTHONUNBUFFERED": "1",
               # One token publishes everything here: the per-token budgets would measure themselves.
               "HOOKYARD_RATE_LIMIT_PER_MINUTE": "100000000", "HOOKYARD_PUBLISH_RATE_LIMIT_PER_MINUTE": "100000000"}
        if args.worker_concurrency:
            env["HOOKYARD_WORKER_CONCURRENCY"] = str(args.worker_concurrency)
        try:
            server = spawn("serve", ["serve"], env, logdir, args.app_dir)
            procs.append(server)
            base_url = f"http://127.0.0.1:{port}"
            token = await wait_ready(server, base_url)  # serve migrates first: start workers after that
            for n in range(args.workers):
                procs.append(spawn(f"worker{n + 1}", ["worker"], env, logdir, args.app_dir))
            api = Api(base_url, token, max(args.concurrency, 64))
            db = await asyncpg.connect(pg_dsn(database_url))
            by_statement = args.pg_statements and await pg_statements.enable(db)

            for n in range(args.integrations):
                secret = new_secret()
                receiver.keys[f"w{n}"] = hmac_key(secret)
                await api.connect_webhook(f"bench {n}", f"http://127.0.0.1:{rx_port}/hook/w{n}", secret)
            for n in range(args.controlled):
                control = CONTROLS[side_kind(args.control, n)]
                await api.connect_webhook(f"controlled {n}", f"http://127.0.0.1:{rx_port}/hook/side{n}",
                                          new_secret(), **control)

            print(f"hookyard: warm-up ({args.warmup_events} events x {args.integrations}) ...", flush=True)
            begun = time.perf_counter()
            try:
                await warm_up(api, receiver, args.integrations, args.warmup_events, args.batch)
            except RuntimeError as exc:
                logs = "\n".join(f"--- {p.name} ({p.log}):\n{p.tail()}" for p in procs)
                raise RuntimeError(f"{exc}\n{logs}\n(another worker on {args.redis_url} taking the jobs? "
                                   "use a Redis db of your own with --redis-url)") from None
            print(f"          done in {time.perf_counter() - begun:.1f} s", flush=True)
            for proc in procs:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")

            cpu = CpuMeter({"bench": [os.getpid()], "api": [server.popen.pid],
                            "workers": [p.popen.pid for p in procs[1:]],
                            "redis": [await redis_pid(args.redis_url)]})
            await wait_until_quiet(args.quiet_wait, threshold=0.2)
            rss_before = {p.name: rss_mib(p.popen.pid) for p in procs}
            print(f"hookyard: throughput ({args.events} events x {args.integrations}) ...", flush=True)
            if by_statement:
                await pg_statements.reset(db)
            cpu.start()
            tp = await throughput(api, receiver, db, args.integrations, args.events, args.concurrency,
                                  args.timeout, args.batch)
            cpu.stop()
            if by_statement:
                statements = await pg_statements.read(db)
            receiver.side_in_throughput = receiver.side
            receiver.side_by_name_in_throughput = dict(receiver.side_by_name)
            duplicates = receiver.duplicates
            limited = [f"side{n}" for n in range(args.controlled) if side_kind(args.control, n) == "limited"]
            if limited and args.drain_limited > 0:
                # The latency phase starts from the same place whatever the throughput phase's speed: the
                # rate-limited integrations' backlog sent (the ordered lanes go one at a time: theirs stays).
                expected = args.warmup_events + args.events
                begun = time.perf_counter()
                while (time.perf_counter() - begun < args.drain_limited
                       and any(receiver.side_by_name.get(name, 0) < expected for name in limited)):
                    await asyncio.sleep(0.1)
                print(f"hookyard: rate-limited backlog sent {time.perf_counter() - begun:.1f} s after the "
                      "throughput phase", flush=True)
            print(f"hookyard: latency ({args.rate:g} deliveries/s for {args.latency_seconds:g} s) ...", flush=True)
            lat_cpu = CpuMeter(cpu.groups)
            lat_cpu.start()
            lat = await latency(api, receiver, args.integrations, args.rate, args.latency_seconds, args.timeout,
                                args.batch)
            lat_cpu.stop()
            receiver.duplicates += duplicates
            rss_after = {p.name: rss_mib(p.popen.pid) for p in procs}
            memory = ", ".join(f"{name} {rss_before[name]:.0f} -> {rss_after[name]:.0f} MiB"
                               f" ({rss_after[name] - rss_before[name]:+.0f})" for name in rss_before)
        finally:
            if api is not None:
                await api.close()
            if db is not None:
                await db.close()
            stop(procs)
            if args.keep_logs:
                print(f"logs: {logdir}")
            else:
                shutil.rmtree(logdir, ignore_errors=True)

        duplicates = receiver.duplicates
        print("baseline: one more run now that Hookyard is stopped ...", flush=True)
        base_cpu.start()
        base_rates += await baseline(rx_port, receiver, args.baseline_posts, args.baseline_concurrency, 1)
        base_cpu.stop()
        base_cpu.other += other_during_baseline
        receiver.duplicates = duplicates
        ok = report(args, base_rates, base_cpu, tp, lat, receiver, cpu, lat_cpu)
        print(f"memory    resident, before the throughput phase -> after the latency phase: {memory}")
        if args.pg_statements:
            print("postgres  execution time per statement in the throughput phase (pg_stat_statements):")
            for line in (pg_statements.summarize(statements, tp.deliveries) if by_statement
                         else [pg_statements.ENABLE_HINT]):
                print(f"          {line}")
    finally:
        await runner.cleanup()
        if created:
            await drop_database(args.database_url, db_name)
        try:
            await flush_redis(args.redis_url)
        except Exception as exc:  # noqa: BLE001
            print(f"could not flush {args.redis_url}: {exc}", file=sys.stderr)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(main()))
    sys.exit(uvloop.run(main()))
