"""Putting delivery jobs on the ARQ queue: many jobs in one Redis round trip."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from arq.connections import ArqRedis
from arq.constants import default_queue_name, job_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms, to_unix_ms

SEND_TASK = "send_delivery"
JOB_EXPIRY_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class QueuedSend:
    delivery_id: str
    attempt: int  # the attempt number this job makes; part of the job id (one id per attempt)
    trigger: str = "automatic"
    run_at: datetime | None = None


def job_id(send: QueuedSend) -> str:
    return f"{send.delivery_id}.{send.attempt}"


async def enqueue_sends(redis: ArqRedis, sends: Iterable[QueuedSend]) -> int:
    """Writes the jobs the way `ArqRedis.enqueue_job` does, pipelined.

    Re-queueing the same attempt rewrites the same job id, so the sweeper can
    re-queue without creating a second job; the database claim stops double sends.
    """
    now = timestamp_ms()
    count = 0
    async with redis.pipeline(transaction=False) as pipe:
        for send in sends:
            score = to_unix_ms(send.run_at) if send.run_at else now
            payload = serialize_job(SEND_TASK, (send.delivery_id, send.trigger), {}, None, now,
                                    serializer=redis.job_serializer)
            identifier = job_id(send)
            pipe.psetex(job_key_prefix + identifier, max(score - now, 0) + JOB_EXPIRY_MS, payload)
            pipe.zadd(default_queue_name, {identifier: score})
            count += 1
        if count:
            await pipe.execute()
    return count
