"""1,000 concurrent `deliveryUpdates` subscribers on one API process.

Starts an embedded Redis and `hookyard serve` (API only) in its own process, opens 1,000
graphql-transport-ws connections, then publishes delivery updates on the Redis channel the
way a worker does and measures publish -> client receipt. The baseline, measured in the
same run, is one plain Redis subscriber receiving the same messages: the report is the
extra delay the API process adds, as p50/p99 and as a ratio.

    .venv/bin/python bench/subscribers.py [--clients 1000] [--messages 50] [--profile api.txt]

Clients connect in batches of 50, each batch subscribed before the next starts (a connection storm
measures the handshake path, not the fan-out). `--profile` samples the API process with py-spy
(`pip install py-spy`) while the updates go out and writes its collapsed stacks there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

import orjson
import websockets
from redis.asyncio import Redis

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app.core.redis_embedded import EmbeddedRedis  # noqa: E402
from app.delivery.updates import CHANNEL  # noqa: E402

# What a dashboard row needs (fields that need no database lookup: the ids below are made up).
QUERY = """subscription { deliveryUpdates(workspace: "default") {
  status at
  delivery { id status eventType attemptCount responseCode durationMs errorMessage createdAt updatedAt }
  attempt { number trigger responseCode errorMessage }
} }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def subscriber(url: str, token: str, ready: asyncio.Event, delays: list[float], expected: int,
                     received: list[int], index: int) -> None:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None,
                                  open_timeout=60) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await ws.send(orjson.dumps(init).decode())
        assert orjson.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}}).decode())
        ready.set()
        got = 0
        while got < expected:
            msg = orjson.loads(await ws.recv())
            if msg["type"] == "error":
                raise RuntimeError(f"subscription refused: {msg['payload']}")
            if msg["type"] == "next":
                sent = msg["payload"]["data"]["deliveryUpdates"]["delivery"]["id"]
                delays.append(time.time() - float(sent.split("_", 2)[2]))
                got += 1
                received[index] = got


async def baseline(redis_url: str, delays: list[float], expected: int, ready: asyncio.Event) -> None:
    redis = Redis.from_url(redis_url)
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        ready.set()
        got = 0
        async for raw in pubsub.listen():
            if raw["type"] == "message":
                sent = orjson.loads(raw["data"])["delivery"]["id"]
                delays.append(time.time() - float(sent.split("_", 2)[2]))
                got += 1
                if got >= expected:
                    break
    await redis.aclose()


def update(workspace_id: str) -> bytes:
    now = datetime.now(UTC)
    # The send time rides in the id so receivers need no shared clock beyond this machine's.
    delivery = {"id": f"del_bench_{time.time()}", "workspace_id": workspace_id, "event_id": "evt_x",
                "integration_id": "int_x", "form_id": None, "attachment_id": None, "event_type": "bench.tick",
                "status": "SUCCEEDED", "is_test": False, "attempt_count": 1, "next_attempt_at": None,
                "response_code": 200, "duration_ms": 3, "last_error": None, "request": None, "response": None,
                "created_at": now, "updated_at": now, "delivered_at": now}
    return orjson.dumps({"delivery": delivery, "attempt": None, "form_slug": None, "at": now})


async def wait_ready(readies: list[asyncio.Event], tasks: list[asyncio.Task], timeout: float) -> None:
    """Waits until every client has subscribed; a client that failed to connect stops the run with its error."""
    deadline = time.perf_counter() + timeout
    while not all(r.is_set() for r in readies):
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise RuntimeError(f"{len(failed)} subscribers failed to connect") from failed[0].exception()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {sum(r.is_set() for r in readies)} of {len(readies)} subscribed in {timeout} s")
        await asyncio.sleep(0.1)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0, help="updates per second")
    parser.add_argument("--profile", metavar="FILE",
                        help="sample the API process with py-spy during the updates; collapsed stacks to FILE")
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="hookyard-bench-")
    redis = EmbeddedRedis().start()
    port = free_port()
    env = {**os.environ, "HOOKYARD_DATA_DIR": data, "HOOKYARD_DATABASE_URL": f"sqlite://{data}/bench.db",
           "HOOKYARD_REDIS_URL": redis.url, "HOOKYARD_PORT": str(port), "HOOKYARD_RUN_WORKER_IN_API": "false",
           "HOOKYARD_LOG_LEVEL": "warning",
           # 1,000 subscriptions on one token are over its per-minute budget: this measures the fan-out.
           "HOOKYARD_RATE_LIMIT_ENABLED": "false"}
    server_log = open(os.path.join(data, "server.log"), "w")
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=server_log, text=True)
    try:
        token = None
        for line in server.stdout:
            if m := re.search(r"(hyk_[A-Za-z0-9_-]{43})", line):
                token = m.group(1)
                break
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        import sqlite3

        workspace_id = sqlite3.connect(f"{data}/bench.db").execute(
            "select id from workspace where slug='default'").fetchone()[0]

        url = f"ws://127.0.0.1:{port}/graphql"
        api_delays: list[float] = []
        base_delays: list[float] = []
        readies = [asyncio.Event() for _ in range(args.clients)]
        received = [0] * args.clients
        started = time.perf_counter()
        tasks = []
        for i, ready in enumerate(readies):
            tasks.append(asyncio.create_task(subscriber(url, token, ready, api_delays, args.messages, received, i)))
            if i % 50 == 49:  # a batch at a time
                await wait_ready(readies[:i + 1], tasks, timeout=120)
        base_ready = asyncio.Event()
        tasks.append(asyncio.create_task(baseline(redis.url, base_delays, args.messages, base_ready)))
        await wait_ready(readies + [base_ready], tasks, timeout=120)
        connect_s = time.perf_counter() - started
        rss_connected = rss_mib(server.pid)
        await asyncio.sleep(1.0)  # let the last subscriptions register with the broadcaster

        profiler = None
        if args.profile:
            py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
            profiler = subprocess.Popen([py_spy, "record", "--pid", str(server.pid), "--format", "raw",
                                         "--rate", "200", "--nonblocking", "--output", args.profile],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)  # py-spy attaches
        publisher = Redis.from_url(redis.url)
        cpu_before = cpu_seconds(server.pid)
        for _ in range(args.messages):
            await publisher.publish(CHANNEL, update(workspace_id))
            await asyncio.sleep(1 / args.rate)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
        except TimeoutError:
            counts = sorted(set(received))
            raise SystemExit(f"timed out: {len(api_delays)} of {args.clients * args.messages} client messages "
                             f"and {len(base_delays)} of {args.messages} baseline messages arrived; clients got "
                             + ", ".join(f"{n} ({received.count(n)} clients)" for n in counts[:5])) from None
        server_cpu = cpu_seconds(server.pid) - cpu_before
        rss_after = rss_mib(server.pid)
        await publisher.aclose()
        if profiler is not None:
            profiler.send_signal(2)  # SIGINT: py-spy writes what it sampled
            profiler.wait(timeout=30)

        ms = [d * 1000 for d in api_delays]
        base = [d * 1000 for d in base_delays]
        print(f"subscribers: {args.clients} (connected in {connect_s:.1f} s), updates: {args.messages} "
              f"at {args.rate:g}/s, receipts: {len(ms)}")
        print(f"baseline (one plain Redis subscriber): p50 {percentile(base, 50):.2f} ms, "
              f"p99 {percentile(base, 99):.2f} ms")
        print(f"via Hookyard to {args.clients} WebSocket clients: p50 {percentile(ms, 50):.2f} ms, "
              f"p99 {percentile(ms, 99):.2f} ms, mean {statistics.mean(ms):.2f} ms")
        print(f"API process memory with {args.clients} subscribers: {rss_connected:.0f} MiB RSS, "
              f"{rss_after:.0f} MiB after the updates")
        print(f"API process CPU: {server_cpu:.2f} s for {len(ms)} client messages = "
              f"{server_cpu / max(len(ms), 1) * 1e6:.0f} us per client message (less noisy than the delays)")
        print(f"ratio p50 {percentile(ms, 50) / max(percentile(base, 50), 1e-6):.1f}x, "
              f"p99 {percentile(ms, 99) / max(percentile(base, 99), 1e-6):.1f}x the baseline")
    finally:
        server.terminate()
        server.wait(timeout=10)
        redis.stop()


if __name__ == "__main__":
    asyncio.run(main())
