"""A `hookyard worker` at the default level says nothing while nothing happens (no line per sweep, none
of arq's per-job lines) and one `delivery.attempt` line per attempt when something does: info when it
succeeded, warning when it failed. arq's job lines come back at HOOKYARD_LOG_LEVEL=debug."""

from __future__ import annotations

import asyncio

import pytest

from app.models import Delivery, DeliveryStatus
from tests.waiting import eventually
from tests.worker.processes import SlowReceiver, make_deliveries, private_world

SWEEP_SECONDS = 1
# What a worker says as it starts and stops (arq, Tortoise): once per process, never per job or sweep.
LIFECYCLE = ("Starting worker for ", "redis_version=", "Setting allow_pick_jobs", "shutdown on SIGTERM",
             "Tortoise-ORM shutdown")
ARQ_JOB_MARKS = ("→", "←", "●", "↻")


@pytest.fixture(scope="module")
async def world(tmp_path_factory):
    async with private_world(tmp_path_factory.mktemp("quiet")) as w:
        yield w


async def settled(ids: list[str]) -> bool:
    statuses = await Delivery.filter(id__in=ids).values_list("status", flat=True)
    return all(s in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED) for s in statuses)


async def test_quiet_when_idle_and_one_line_per_attempt(world):
    ok = await SlowReceiver(0).start()
    failing = await SlowReceiver(0, status=500).start()
    try:
        ok_ids = await make_deliveries(ok.url, 2)
        [failing_id] = await make_deliveries(failing.url, 1)
        worker = await world.start_worker(sweep_interval_seconds=SWEEP_SECONDS, retry_schedule="0.2",
                                          stuck_after_seconds=600, shutdown_grace_seconds=5)
        await asyncio.sleep(3.5 * SWEEP_SECONDS)  # a few sweeps (and arq's cron jobs) with nothing to do
        idle = [line for line in worker.lines() if not str(line.get("event")).startswith(LIFECYCLE)]
        assert idle == []

        await world.enqueue([*ok_ids, failing_id])
        await eventually(lambda: settled([*ok_ids, failing_id]), timeout=15, what="the deliveries to settle")
        await asyncio.sleep(2.5 * SWEEP_SECONDS)  # and a few sweeps more
        worker.terminate()
        await worker.exited(10)
    finally:
        await ok.stop()
        await failing.stop()

    lines = worker.lines()
    assert not [line for line in lines if "sweep" in str(line).lower()
                and not str(line.get("event")).startswith(LIFECYCLE)]  # (the first names its functions)
    arq = [line for line in lines if str(line.get("logger", "")).startswith("arq")]
    assert not [line for line in arq if any(mark in str(line.get("event")) for mark in ARQ_JOB_MARKS)]
    others = [line for line in lines
              if line.get("event") != "delivery.attempt" and not str(line.get("event")).startswith(LIFECYCLE)]
    assert others == []

    attempts = [line for line in lines if line.get("event") == "delivery.attempt"]
    assert len(attempts) == 4  # two that succeeded, one that failed twice (one retry)
    for delivery_id in ok_ids:
        [line] = [a for a in attempts if a["delivery_id"] == delivery_id]
        assert (line["level"], line["status"], line["outcome"], line["attempt"]) == ("info", "SUCCEEDED", "success", 1)
    failed = sorted((a for a in attempts if a["delivery_id"] == failing_id), key=lambda a: a["attempt"])
    assert [(a["level"], a["status"], a["outcome"], a["status_code"]) for a in failed] == [
        ("warning", "RETRYING", "http_5xx", 500), ("warning", "FAILED", "http_5xx", 500)]


async def test_arq_job_lines_at_debug(world):
    worker = await world.start_worker(sweep_interval_seconds=SWEEP_SECONDS, log_level="debug")
    await eventually(lambda: any("← sweep_due ●" in str(line.get("event"))
                                 for line in worker.lines()), timeout=10, what="arq's line for a finished sweep")
    worker.terminate()
    await worker.exited(10)
