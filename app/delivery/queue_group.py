"""Queueing a process's publishes together: their jobs and PENDING updates in one Redis round trip.

Each publish, once committed, hands its new deliveries' updates and sends to the process's `QueueGroup`
and waits until they are in Redis. With nothing being written, they go at once; while a write is in
flight, what other publishes hand over meanwhile waits for it to finish and then goes in one pipeline
(group commit): an idle process adds no delay, a busy one sends one round trip for several publishes,
and their deliveries share jobs (up to `queue.BATCH_SIZE` each), so the worker claims fewer jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from arq.connections import ArqRedis

from app.delivery import updates
from app.delivery.queue import QueuedSend, add_sends


class QueueGroup:
    def __init__(self, redis: ArqRedis):
        self._redis = redis
        self._waiting: list[tuple[Sequence[updates.DeliveryUpdate], Sequence[QueuedSend], asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def put(self, news: Sequence[updates.DeliveryUpdate], sends: Sequence[QueuedSend]) -> None:
        """Returns once the updates are published and the sends queued; raises what the write raised
        (OSError, RedisError): then none of them may be in Redis."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((news, sends, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        taken: list = []
        try:
            while self._waiting:
                taken, self._waiting = self._waiting, []
                try:
                    await self._write(taken)
                except Exception as exc:
                    _settle(taken, exc)
                else:
                    _settle(taken, None)
                taken = []
        except BaseException:  # cancelled (the loop is closing): no publish waits for ever
            _settle(taken + self._waiting, ConnectionError("the queue writer stopped"))
            self._waiting = []
            raise
        finally:
            self._writer = None

    async def _write(self, taken: list) -> None:
        # In order: every PENDING update before any job, so no subscriber sees SENDING first.
        async with self._redis.pipeline(transaction=False) as pipe:
            updates.add_publish(pipe, [update for news, _, _ in taken for update in news])
            add_sends(pipe, [send for _, sends, _ in taken for send in sends],
                      serializer=self._redis.job_serializer, batch=True)
            await pipe.execute()


def _settle(taken: list, error: BaseException | None) -> None:
    for _, _, done in taken:
        if done.done():  # its publish was cancelled meanwhile
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
