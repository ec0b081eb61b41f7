"""Putting delivery jobs on the ARQ queue: many jobs in one Redis round trip."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from arq.connections import ArqRedis
from arq.constants import default_queue_name, job_key_prefix
from arq.jobs import Serializer, serialize_job
from arq.utils import timestamp_ms, to_unix_ms
from redis.asyncio.client import Pipeline

SEND_TASK = "send_delivery"
SEND_BATCH_TASK = "send_deliveries"
JOB_EXPIRY_MS = 7 * 24 * 3600 * 1000
BATCH_SIZE = 50  # deliveries per batch job; a bigger fan-out becomes several jobs


@dataclass(frozen=True)
class QueuedSend:
    delivery_id: str
    attempt: int  # the attempt number this job makes; part of the job id (one id per attempt)
    trigger: str = "automatic"
    run_at: datetime | None = None
    # Set when a send is taken back from a worker whose lease ran out: that worker may still hold the
    # attempt's job id in arq's in-progress key (for minutes, if it died), so the job gets a new id.
    retake: str | None = None
    # The W3C traceparent of the span that queued it (tracing on): the job's span joins that trace.
    traceparent: str | None = None


def job_id(send: QueuedSend) -> str:
    base = f"{send.delivery_id}.{send.attempt}"
    return f"{base}.{send.retake}" if send.retake else base


def batch_job_id(sends: list[QueuedSend]) -> str:
    return f"{job_id(sends[0])}+{len(sends)}"


def _batches(sends: list[QueuedSend]) -> list[list[QueuedSend]]:
    """Sends that can share one job: same trigger and run time, at most BATCH_SIZE each."""
    groups: dict[tuple[str, datetime | None], list[QueuedSend]] = {}
    for send in sends:
        groups.setdefault((send.trigger, send.run_at), []).append(send)
    return [group[i:i + BATCH_SIZE] for group in groups.values() for i in range(0, len(group), BATCH_SIZE)]


def _trace_kwargs(group: list[QueuedSend]) -> dict:
    """`traceparents`, the distinct ones of the group, only when there are any: jobs stay as they were."""
    parents = list(dict.fromkeys(s.traceparent for s in group if s.traceparent))
    return {"traceparents": parents} if parents else {}


def add_sends(pipe: Pipeline, sends: Iterable[QueuedSend], *, serializer: Serializer | None = None,
              batch: bool = False) -> int:
    """Adds the job writes to `pipe` the way `ArqRedis.enqueue_job` writes a job; returns the deliveries queued.

    Re-queueing the same attempt rewrites the same job id, so the sweeper can
    re-queue without creating a second job; the database claim stops double sends.

    With `batch` (a fresh fan-out), several deliveries share one `send_deliveries` job, so
    the worker claims, loads and records them together. A delivery alone keeps its own
    per-attempt job.
    """
    now = timestamp_ms()
    count = 0
    groups = _batches(list(sends)) if batch else [[send] for send in sends]
    for group in groups:
        first = group[0]
        score = to_unix_ms(first.run_at) if first.run_at else now
        kwargs = _trace_kwargs(group)
        if len(group) == 1:
            identifier = job_id(first)
            payload = serialize_job(SEND_TASK, (first.delivery_id, first.trigger), kwargs, None, now,
                                    serializer=serializer)
        else:
            identifier = batch_job_id(group)
            payload = serialize_job(SEND_BATCH_TASK, ([s.delivery_id for s in group], first.trigger), kwargs,
                                    None, now, serializer=serializer)
        pipe.psetex(job_key_prefix + identifier, max(score - now, 0) + JOB_EXPIRY_MS, payload)
        pipe.zadd(default_queue_name, {identifier: score})
        count += len(group)
    return count


async def enqueue_sends(redis: ArqRedis, sends: Iterable[QueuedSend], *, batch: bool = False) -> int:
    """Queues the sends in one Redis round trip (see `add_sends`); returns the deliveries queued."""
    async with redis.pipeline(transaction=False) as pipe:
        count = add_sends(pipe, sends, serializer=redis.job_serializer, batch=batch)
        if count:
            await pipe.execute()
    return count
