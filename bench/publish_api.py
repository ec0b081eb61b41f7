"""CPU the API process spends per single-event `eventPublish`, without the delivery worker.

`bench/throughput.py` measures the whole pipeline; this isolates the API side of a publish (rate
limit, authentication, access check, GraphQL, fan-out writes, queueing) so changes to it can be
compared on a shared, noisy machine. Each `--app-dir` (a checkout; default this one) gets its own
throw-away PostgreSQL database and `hookyard serve --no-worker`-style process (HOOKYARD_RUN_WORKER_IN_API
false) with N webhook integrations; then rounds of `--events` publishes run against each in turn
(interleaved, so a burst of other work on the machine hits all of them alike), and the report gives,
per checkout, the median over rounds of CPU ms per publish for the API process, PostgreSQL and Redis.

    .venv/bin/python bench/publish_api.py [--events 1000] [--rounds 3] [--integrations 10]
        [--app-dir . --app-dir /tmp/other-checkout] [--redis-url redis://127.0.0.1:6379/7]

For where the time goes inside the API process, profile it in-process instead: `create_app` with
HOOKYARD_RUN_WORKER_IN_API off, driven through httpx's ASGITransport under cProfile (with
`time.process_time` as its timer, so a busy machine's waits do not count) or pyinstrument.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.local_services import ROOT, Proc, free_port, stop  # noqa: E402
from bench.throughput import (  # noqa: E402
    CONNECT,
    PUBLISH,
    _cpu_of,
    _pids_named,
    flush_redis,
    machine_busy,
    pg_dsn,
    redis_pid,
    spawn,
    wait_ready,
    with_database,
)


@dataclass
class Target:
    app_dir: Path
    db_name: str
    proc: Proc | None = None
    url: str = ""
    token: str = ""
    api_ms: list[float] = field(default_factory=list)
    pg_ms: list[float] = field(default_factory=list)
    redis_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    other_ms: list[float] = field(default_factory=list)


async def gql(session: aiohttp.ClientSession, target: Target, query: str, variables: dict) -> dict:
    headers = {"Authorization": f"Bearer {target.token}", "Content-Type": "application/json"}
    async with session.post(target.url, data=orjson.dumps({"query": query, "variables": variables}),
                            headers=headers) as response:
        raw = await response.read()
    data = orjson.loads(raw)
    if response.status != 200 or data.get("errors"):
        raise RuntimeError(f"GraphQL error ({response.status}): {raw[:500]!r}")
    return data["data"]


async def publish_many(session: aiohttp.ClientSession, target: Target, events: int, concurrency: int,
                       integrations: int) -> None:
    counter = iter(range(events))

    async def lane() -> None:
        for n in counter:
            data = await gql(session, target, PUBLISH, {"input": {"workspace": "default", "type": "bench.event",
                                                                  "payload": {"answer": 42, "seq": n}}})
            if len(data["eventPublish"]["deliveries"]) != integrations:
                raise RuntimeError(f"eventPublish: {data['eventPublish']}")

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))
    parser.add_argument("--app-dir", type=Path, action="append", help="a checkout to measure (repeatable)")
    parser.add_argument("--integrations", type=int, default=10)
    parser.add_argument("--events", type=int, default=1000, help="publishes per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup-events", type=int, default=200)
    args = parser.parse_args()
    app_dirs = [d.resolve() for d in (args.app_dir or [ROOT])]
    targets = [Target(d, f"hookyard_pubapi_{uuid.uuid4().hex[:10]}") for d in app_dirs]
    await flush_redis(args.redis_url)
    redis_pids = [await redis_pid(args.redis_url)]
    admin = await asyncpg.connect(pg_dsn(args.database_url))
    procs: list[Proc] = []
    try:
        for target in targets:
            await admin.execute(f'CREATE DATABASE "{target.db_name}"')
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            for i, target in enumerate(targets):
                logdir = Path(tempfile.mkdtemp(prefix="hookyard-publish-api-"))
                port = free_port()
                env = {**os.environ, "HOOKYARD_DATABASE_URL": with_database(args.database_url, target.db_name),
                       "HOOKYARD_REDIS_URL": args.redis_url, "HOOKYARD_PORT": str(port),
                       "HOOKYARD_HOST": "127.0.0.1", "HOOKYARD_DATA_DIR": str(logdir / "data"),
                       "HOOKYARD_SECRET_KEY": secrets.token_urlsafe(32), "HOOKYARD_RUN_WORKER_IN_API": "false",
                       "HOOKYARD_ALLOWED_NETWORKS": "127.0.0.0/8", "HOOKYARD_ENFORCE_PLANS": "false",
                       "HOOKYARD_LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1",
                       "HOOKYARD_RATE_LIMIT_PER_MINUTE": "100000000",
                       "HOOKYARD_PUBLISH_RATE_LIMIT_PER_MINUTE": "100000000"}
                target.proc = spawn(f"serve{i}", ["serve"], env, logdir, target.app_dir)
                procs.append(target.proc)
                base_url = f"http://127.0.0.1:{port}"
                target.token = await wait_ready(target.proc, base_url)
                target.url = f"{base_url}/graphql"
                for n in range(args.integrations):
                    await gql(session, target, CONNECT, {"input": {
                        "workspace": "default", "type": "WEBHOOK", "name": f"hook{n}",
                        "config": {"url": f"http://127.0.0.1:9/hook{n}"}, "secrets": {"secret": "whsec_" + "A" * 43},
                        "events": ["*"]}})
                await publish_many(session, target, args.warmup_events, args.concurrency, args.integrations)
            for _ in range(args.rounds):
                for target in targets:
                    pg = _pids_named("postgres")
                    before = (_cpu_of(target.proc.popen.pid), sum(_cpu_of(p) for p in pg),
                              sum(_cpu_of(p) for p in redis_pids), machine_busy(), time.perf_counter())
                    await publish_many(session, target, args.events, args.concurrency, args.integrations)
                    after = (_cpu_of(target.proc.popen.pid), sum(_cpu_of(p) for p in pg),
                             sum(_cpu_of(p) for p in redis_pids), machine_busy(), time.perf_counter())
                    per = [(a - b) / args.events * 1000 for a, b in zip(after, before, strict=True)]
                    target.api_ms.append(per[0])
                    target.pg_ms.append(per[1])
                    target.redis_ms.append(per[2])
                    target.wall_ms.append(per[4])
                    target.other_ms.append(max(0.0, per[3] - per[0] - per[1] - per[2]))
    finally:
        stop(procs)
        for target in targets:
            await admin.execute(f'DROP DATABASE IF EXISTS "{target.db_name}" WITH (FORCE)')
        await admin.close()
        await flush_redis(args.redis_url)

    print("-" * 78)
    print(f"API CPU per single-event eventPublish ({args.integrations} webhooks, {args.concurrency} in flight, "
          f"median of {args.rounds} x {args.events}); ms per publish")
    print("-" * 78)
    first = statistics.median(targets[0].api_ms)
    for target in targets:
        api = statistics.median(target.api_ms)
        print(f"{str(target.app_dir):40.40} api {api:5.2f}  postgres {statistics.median(target.pg_ms):5.2f}  "
              f"redis {statistics.median(target.redis_ms):4.2f}  wall {statistics.median(target.wall_ms):5.2f}  "
              f"= {api / first:4.2f} x first  (api rounds: {', '.join(f'{v:.2f}' for v in target.api_ms)}; "
              f"other work on the machine {statistics.median(target.other_ms):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
