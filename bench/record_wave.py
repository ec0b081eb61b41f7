"""What recording a wave of sends costs: `batch_sql.record` against the same rows written as two
statements in a transaction (`batch_sql.record_in_transaction`, Tortoise's INSERT of the attempts and
`save_many`, which is how waves were recorded before and still are on SQLite).

A throw-away PostgreSQL database, migrated with the app's migrations; one workspace, 10 webhook
integrations; deliveries made SENDING up front. Then rounds alternate the two ways (so a burst of
other work on the machine hits both alike): each records `--waves` waves of `--wave` deliveries (an
attempt each, the delivery's new state as the sender sets it), one wave at a time. Reported per way:
the median over rounds of this process's CPU per delivery (the worker's side), PostgreSQL's backends'
CPU per delivery and wall time per wave, and the ratio of the new way to the old.

    .venv/bin/python bench/record_wave.py [--rounds 6] [--waves 300] [--wave 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.config import Settings  # noqa: E402
from app.delivery import batch_sql  # noqa: E402
from app.delivery.sender import RECORDED_FIELDS  # noqa: E402
from app.models import Delivery, DeliveryAttempt, DeliveryStatus, Event  # noqa: E402
from app.models.database import close_db, init_db, migrate  # noqa: E402
from app.models.integration import Integration  # noqa: E402
from app.models.workspace import Workspace  # noqa: E402
from bench.throughput import _cpu_of, pg_dsn, with_database  # noqa: E402

WAYS = {"two statements in a transaction (before)": batch_sql.record_in_transaction,
        "one executemany (batch_sql.record)": batch_sql.record}


async def backend_cpu(admin: asyncpg.Connection, name: str) -> float:
    pids = [r[0] for r in await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)]
    return sum(_cpu_of(pid) for pid in pids)


async def sending(count: int) -> list[Delivery]:
    """`count` SENDING deliveries, as a claim leaves them."""
    workspace = await Workspace.create(slug=f"bench-{uuid.uuid4().hex[:8]}", name="Bench")
    integrations = [await Integration.create(workspace=workspace, type="webhook", name=f"hook {i}",
                                             config={"url": f"https://hooks.example.com/r/{i}"})
                    for i in range(10)]
    events = [Event(workspace_id=workspace.id, type="order.created", payload={"n": n}) for n in range(count // 10 + 1)]
    await Event.bulk_create(events, batch_size=1000)
    deliveries = [Delivery(workspace_id=workspace.id, event_id=events[n // 10].id,
                           integration_id=integrations[n % 10].id, event_type="order.created",
                           status=DeliveryStatus.SENDING) for n in range(count)]
    await Delivery.bulk_create(deliveries, batch_size=1000)
    return deliveries


def answered(delivery: Delivery, now: datetime) -> DeliveryAttempt:
    """The delivery's new state after a 200, set in memory as the sender sets it, and its attempt."""
    delivery.attempt_count += 1
    delivery.status, delivery.response_code, delivery.duration_ms = DeliveryStatus.SUCCEEDED, 200, 42
    delivery.locked_until, delivery.next_attempt_at, delivery.delivered_at, delivery.updated_at = None, None, now, now
    delivery.request = {"url": "https://hooks.example.com/r", "method": "POST",
                        "headers": {"content-type": "application/json", "webhook-id": delivery.id},
                        "body": '{"type": "order.created", "data": {"n": 1}}'}
    delivery.response = {"status": 200, "headers": {"content-length": "11"}, "body": '{"ok": true}'}
    return DeliveryAttempt(delivery_id=delivery.id, number=delivery.attempt_count, trigger="automatic",
                           request_url="https://hooks.example.com/r", response_code=200,
                           response_headers={"content-length": "11"}, response_body='{"ok": true}', duration_ms=42,
                           created_at=now)


async def run(args: argparse.Namespace) -> None:
    base = args.database_url
    name = f"hookyard_record_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_dsn(base))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = Settings(database_url=with_database(base, name))
        await migrate(settings)
        await init_db(settings)
        per_round = args.waves * args.wave
        pool = await sending(per_round * args.rounds * len(WAYS) + args.wave * 20)
        await Delivery._meta.db.execute_script("ANALYZE")  # the bench's own database, freshly filled
        taken = 0
        results: dict[str, list[tuple[float, float, float]]] = {way: [] for way in WAYS}
        for warm in WAYS.values():  # prepared statements, caches
            batch = pool[taken:taken + args.wave * 10]
            taken += len(batch)
            for n in range(0, len(batch), args.wave):
                wave = batch[n:n + args.wave]
                await warm([answered(d, datetime.now(UTC)) for d in wave], wave, RECORDED_FIELDS)
        for r in range(args.rounds):
            order = list(WAYS.items()) if r % 2 == 0 else list(reversed(WAYS.items()))
            for way, record in order:
                batch = pool[taken:taken + per_round]
                taken += per_round
                cpu0, pg0, wall0 = time.process_time(), await backend_cpu(admin, name), time.perf_counter()
                for n in range(0, per_round, args.wave):
                    wave = batch[n:n + args.wave]
                    await record([answered(d, datetime.now(UTC)) for d in wave], wave, RECORDED_FIELDS)
                wall = time.perf_counter() - wall0
                cpu, pg = time.process_time() - cpu0, await backend_cpu(admin, name) - pg0
                results[way].append((cpu * 1000 / per_round, pg * 1000 / per_round, wall * 1000 / args.waves))
        stored = await DeliveryAttempt.all().count()  # the bench's own database: every attempt is one it recorded
        if stored != taken:
            raise RuntimeError(f"{stored} attempts stored for {taken} recorded sends")
        print(f"{args.rounds} rounds x {args.waves} waves of {args.wave} deliveries per way, alternating; "
              f"medians over rounds")
        print(f"{'way':<45} {'this process CPU ms/delivery':>29} {'PostgreSQL CPU ms/delivery':>27} "
              f"{'wall ms/wave':>13}")
        medians = {}
        for way, runs in results.items():
            medians[way] = [statistics.median(column) for column in zip(*runs, strict=True)]
            cpu, pg, wall = medians[way]
            print(f"{way:<45} {cpu:>29.3f} {pg:>27.3f} {wall:>13.2f}")
        old, new = medians.values()
        print(f"{'ratio (new / old)':<45} {new[0] / old[0]:>28.2f}x {new[1] / max(old[1], 1e-9):>26.2f}x "
              f"{new[2] / old[2]:>12.2f}x")
    finally:
        await close_db()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/test",
                        help="an existing database to connect to; the bench creates and drops its own next to it")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--waves", type=int, default=300, help="waves per way per round")
    parser.add_argument("--wave", type=int, default=10, help="deliveries per wave (sends that finish together)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
