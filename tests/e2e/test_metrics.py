"""Prometheus metrics from real processes: a `hookyard serve` (API only) and a `hookyard worker` with
HOOKYARD_METRICS_PORT, on a private SQLite database and a private embedded Redis, behind
HOOKYARD_METRICS_TOKEN. Real sends to a local receiver (200, 500, 410) move the counters, histograms
and gauges by exactly what happened; a stopped worker leaves a job on the queue for the queue gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core.redis_embedded import EmbeddedRedis
from tests.receivers import Receiver
from tests.secrets import TEST_SECRET_KEY
from tests.waiting import eventually

TOKEN = "metrics-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVENT = "order.paid"
TOKEN_LINE = "First API token (shown once, keep it): "
CONNECT = """mutation Connect($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field message code } } }"""
PUBLISH = """mutation Publish($input: EventPublishInput!) { eventPublish(input: $input) {
  deliveries { id status } errors { field message code } } }"""
# The command line as the `hookyard` script runs it.
HOOKYARD = [sys.executable, "-c", "import sys; from app.cli import main; sys.argv[0] = 'hookyard'; main()"]

Samples = dict[tuple[str, frozenset], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@dataclass
class Proc:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}: {self.tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    api_url: str
    token: str = ""
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, *args: str, **extra_env: str) -> Proc:
        log = self.tmp / f"{name}.log"
        process = subprocess.Popen([*HOOKYARD, *args], env={**self.env, **extra_env}, stdout=log.open("wb"),
                                   stderr=subprocess.STDOUT, cwd=self.tmp)
        proc = Proc(name, process, log)
        self.procs.append(proc)
        return proc

    async def start_worker(self, name: str) -> tuple[Proc, str]:
        port = _free_port()
        proc = self.spawn(name, "worker", HOOKYARD_METRICS_PORT=str(port))
        url = f"http://127.0.0.1:{port}/metrics"
        async with httpx.AsyncClient() as http:

            async def serving() -> bool:
                proc.check_running()
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get(url, headers=AUTH, timeout=2)).status_code == 200
                return False

            await eventually(serving, timeout=60, interval=0.1, what=f"{name} to serve {url}")
        return proc, url


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("metrics")
    redis = EmbeddedRedis(tmp).start()
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")},
        "HOOKYARD_DATABASE_URL": f"sqlite://{tmp / 'hookyard.db'}",
        "HOOKYARD_REDIS_URL": redis.url,
        "HOOKYARD_SECRET_KEY": TEST_SECRET_KEY,
        "HOOKYARD_DATA_DIR": str(tmp),
        "HOOKYARD_HOST": "127.0.0.1",
        "HOOKYARD_PORT": str(port),
        "HOOKYARD_RUN_WORKER_IN_API": "false",
        "HOOKYARD_ENFORCE_PLANS": "false",
        "HOOKYARD_ALLOWED_NETWORKS": "127.0.0.0/8",
        "HOOKYARD_RETRY_SCHEDULE": "0.2,3",
        "HOOKYARD_RETRY_JITTER": "0",
        "HOOKYARD_REQUEST_TIMEOUT": "2",
        "HOOKYARD_LOG_LEVEL": "warning",
        "HOOKYARD_LOG_FORMAT": "json",
        "HOOKYARD_METRICS_TOKEN": TOKEN,
    }
    s = Stack(tmp=tmp, env=env, api_url=f"http://127.0.0.1:{port}")
    try:
        yield s
    finally:
        for proc in s.procs:
            proc.stop()
        redis.stop()


async def _start_api(stack: Stack, http: httpx.AsyncClient) -> Proc:
    api = stack.spawn("api", "serve")

    async def up() -> bool:
        api.check_running()
        with contextlib.suppress(httpx.HTTPError):
            return (await http.get(f"{stack.api_url}/healthz", timeout=1)).status_code == 200
        return False

    await eventually(up, timeout=60, interval=0.1, what="hookyard serve to come up")
    lines = [line for line in api.log.read_text().splitlines() if line.startswith(TOKEN_LINE)]
    assert lines, api.tail()
    stack.token = lines[0][len(TOKEN_LINE):].strip()
    return api


async def _gql(http: httpx.AsyncClient, stack: Stack, query: str, variables: dict) -> dict:
    answer = await http.post(f"{stack.api_url}/graphql", json={"query": query, "variables": variables},
                             headers={"Authorization": f"Bearer {stack.token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _scrape(http: httpx.AsyncClient, url: str) -> Samples:
    answer = await http.get(url, headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


async def _until(http: httpx.AsyncClient, url: str, check, what: str, timeout: float = 30) -> Samples:
    last: Samples = {}

    async def holds() -> Samples | None:
        nonlocal last
        last = await _scrape(http, url)
        return last if check(last) else None

    def described() -> str:
        shown = sorted(f"{n}{dict(sorted(labels))}={v:g}" for (n, labels), v in last.items()
                       if n.startswith("hookyard_"))
        return f"{what}; last scrape: {', '.join(shown)}"

    return await eventually(holds, timeout=timeout, interval=0.2, what=described)


def _delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_api_and_worker_metrics_follow_real_deliveries(stack: Stack) -> None:
    receiver = await Receiver().start()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            await _run(stack, http, receiver)
    finally:
        await receiver.stop()


async def _run(stack: Stack, http: httpx.AsyncClient, receiver: Receiver) -> None:
    api = await _start_api(stack, http)
    api_metrics = f"{stack.api_url}/metrics"
    worker, worker_metrics = await stack.start_worker("worker-1")

    # -- the token guards both targets
    for url in (api_metrics, worker_metrics):
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url, headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await http.get(url, headers={"Authorization": TOKEN})).status_code == 401
        assert (await http.get(url, headers=AUTH)).status_code == 200

    api_before = await _scrape(http, api_metrics)
    worker_before = await _scrape(http, worker_metrics)

    # -- three webhooks: one answers 200, one 500 (retried twice, then failed), one 410 (disabled at once)
    urls = {"ok": receiver.script("/ok", (200, {}, b"ok")), "err": receiver.script("/err", (500, {}, b"no")),
            "gone": receiver.script("/gone", (410, {}, b"gone"))}
    for name, url in urls.items():
        body = await _gql(http, stack, CONNECT, {"input": {"workspace": "default", "type": "WEBHOOK", "name": name,
                                                           "config": {"url": url}, "events": [EVENT]}})
        assert not body.get("errors") and body["data"]["integrationConnect"]["errors"] == [], body
    body = await _gql(http, stack, PUBLISH, {"input": {"workspace": "default", "type": EVENT, "payload": {"n": 1}}})
    assert [d["status"] for d in body["data"]["eventPublish"]["deliveries"]] == ["PENDING"] * 3, body
    broken = await _gql(http, stack, "query Broken { noSuchField }", {})
    assert broken.get("errors"), broken

    # The second attempt of the 500 fails 0.2 s later; the third waits 3 s: RETRYING meanwhile.
    await _until(http, api_metrics, lambda s: value(s, "hookyard_deliveries_retrying") == 1,
                 "hookyard_deliveries_retrying to be 1")
    attempts = "hookyard_delivery_attempts_total"
    worker_after = await _until(
        http, worker_metrics,
        lambda s: _delta(s, worker_before, attempts, type="webhook", outcome="http_5xx") == 3,
        "three http_5xx attempts on the worker")
    assert _delta(worker_after, worker_before, attempts, type="webhook", outcome="success") == 1
    assert _delta(worker_after, worker_before, attempts, type="webhook", outcome="http_4xx") == 1
    assert sum(v for (name, _), v in worker_after.items() if name == attempts) - \
        sum(v for (name, _), v in worker_before.items() if name == attempts) == 5
    assert _delta(worker_after, worker_before, "hookyard_delivery_attempt_duration_seconds_count", type="webhook") == 5
    assert _delta(worker_after, worker_before, "hookyard_delivery_attempt_duration_seconds_sum", type="webhook") > 0
    assert _delta(worker_after, worker_before, "hookyard_delivery_latency_seconds_count", type="webhook") == 1
    latency = _delta(worker_after, worker_before, "hookyard_delivery_latency_seconds_sum", type="webhook")
    assert 0 < latency < 30
    assert len(receiver.at("/err")) == 3 and len(receiver.at("/ok")) == 1 and len(receiver.at("/gone")) == 1

    # Created in the API process; attempts made in the worker's. No ids in any label.
    api_after = await _until(
        http, api_metrics,
        lambda s: value(s, "hookyard_deliveries_retrying") == 0
        and value(s, "hookyard_integrations", status="DISABLED") == 1,
        "the gauges to show no retrying delivery and the 410 integration disabled")
    created = "hookyard_deliveries_created_total"
    assert _delta(api_after, api_before, created, type="webhook", status="pending") == 3
    assert value(api_after, attempts, type="webhook", outcome="success") == 0
    assert _delta(worker_after, worker_before, created, type="webhook", status="pending") == 0
    assert sum(value(api_after, "hookyard_integrations", status=s)
               for s in ("ACTIVE", "FAILING", "DISABLED", "NEEDS_REAUTH")) == 3
    assert value(api_after, "hookyard_deliveries_held") == 0
    assert value(api_after, "hookyard_metrics_source_up", source="database") == 1
    assert value(api_after, "hookyard_metrics_source_up", source="redis") == 1
    graphql = "hookyard_graphql_operation_duration_seconds_count"
    assert _delta(api_after, api_before, graphql, operation="Connect", outcome="ok") == 3
    assert _delta(api_after, api_before, graphql, operation="Publish", outcome="ok") == 1
    assert _delta(api_after, api_before, graphql, operation="Broken", outcome="error") == 1
    assert ("hookyard_live_subscribers", frozenset()) in api_after
    for (name, labels), _ in (api_after | worker_after).items():
        if name.startswith("hookyard_"):
            assert not any(v.startswith(("del_", "int_", "evt_", "wsp_")) for _, v in labels), (name, labels)

    # -- no worker: the next event's job waits on the queue, and the gone integration's delivery is held
    worker.stop()
    before_queue = await _scrape(http, api_metrics)
    body = await _gql(http, stack, PUBLISH, {"input": {"workspace": "default", "type": EVENT, "payload": {"n": 2}}})
    assert sorted(d["status"] for d in body["data"]["eventPublish"]["deliveries"]) == ["HELD", "PENDING", "PENDING"]
    await asyncio.sleep(1.5)
    # A worker stopping may leave one cron job it had queued but not started (the next worker runs it): count
    # the jobs the publish added to those already there.
    left = value(before_queue, "hookyard_queue_depth", state="due") + \
        value(before_queue, "hookyard_queue_depth", state="scheduled")
    queued = await _until(
        http, api_metrics,
        lambda s: value(s, "hookyard_queue_depth", state="due") == left + 1
        and value(s, "hookyard_deliveries_held") == 1,
        "the queue gauge to show one more due job (both pending deliveries share a batch job)")
    assert value(queued, "hookyard_queue_oldest_job_age_seconds") >= 1.0
    assert value(queued, "hookyard_queue_depth", state="scheduled") == 0
    assert _delta(queued, before_queue, created, type="webhook", status="pending") == 2
    assert _delta(queued, before_queue, created, type="webhook", status="held") == 1

    # -- a new worker drains it; its own counters start from zero
    _, worker_metrics = await stack.start_worker("worker-2")
    await _until(http, api_metrics,
                 lambda s: value(s, "hookyard_queue_depth", state="due") == 0
                 and value(s, "hookyard_queue_oldest_job_age_seconds") == 0,
                 "the queue to drain")
    drained = await _until(http, worker_metrics,
                           lambda s: value(s, attempts, type="webhook", outcome="success") == 1
                           and value(s, attempts, type="webhook", outcome="http_5xx") >= 1,
                           "the new worker to send both deliveries")
    # Read by the worker too; its own cron jobs (sweep, statistics refresh) may be on the queue at that moment.
    assert value(drained, "hookyard_queue_depth", state="due") <= 2
    assert value(drained, "hookyard_metrics_source_up", source="redis") == 1
    api.check_running()


def test_api_metrics_move_to_the_metrics_port_when_it_is_set(tmp_path) -> None:
    """With HOOKYARD_METRICS_PORT, `serve` answers 404 at /metrics on its main port (that port serves them)."""
    from starlette.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    base = Settings(data_dir=tmp_path, database_url=f"sqlite://{tmp_path / 'x.db'}", redis_url="redis://127.0.0.1:1/0",
                    secret_key=TEST_SECRET_KEY, metrics_token=TOKEN)
    # No `with`: the lifespan (database, Redis) does not run; the route is all this checks.
    moved = TestClient(create_app(base.model_copy(update={"metrics_port": _free_port()})))
    assert moved.get("/metrics", headers=AUTH).status_code == 404
    plain = TestClient(create_app(base))
    assert plain.get("/metrics").status_code == 401
    answer = plain.get("/metrics", headers=AUTH)
    assert answer.status_code == 200 and "hookyard_live_subscribers" in answer.text
