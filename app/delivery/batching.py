"""Joining the sends of concurrent jobs into one batch.

A worker runs many jobs at once; each would claim, load and record its own few
deliveries. While a batch is in flight, the coalescer gathers the deliveries of the jobs
that start in the next few milliseconds (WINDOW_SECONDS) and hands them to
`sender.attempt_deliveries` together, so the database and Redis see one claim, one load
and one write per wave instead of one per job. With nothing in flight a job goes at once,
so a quiet worker adds no delay. Each job still waits for, and returns, the results of
its own deliveries, and only those: it is answered as soon as they are settled (recorded,
put back, or not due), whatever else its batch still has out. A send waiting for a
concurrency slot of its integration counts as settled for its job (see `sender`), so a
burst to a limited integration never holds the arq slots of the jobs that share its
events. A batch never waits for more than MAX_BATCH deliveries.

A worker with a backlog takes up to HOOKYARD_WORKER_CONCURRENCY jobs of up to 50 deliveries
each; claiming and loading them all at once only made thousands of sends queue for the
HTTP session's connections while their rows, tasks and leases waited in memory. So at most
`max_in_flight` deliveries (three times the session's connection limit: 600, three full
batches, by default) are claimed and not yet recorded; the jobs beyond wait here, holding
nothing but their ids, and go, a whole batch at a time, as sends are recorded. That never
lowers how many requests are out at once: the session could not have sent more. A batch
stops counting after HOLD_SECONDS, whatever it still has out: a receiver that hangs holds
its own sends (and at most the session's per-host share of connections), never the line
for everyone else.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from app.core import tracing
from app.core.logging import get_logger
from app.delivery import sender
from app.delivery.runtime import Runtime

log = get_logger("app.delivery.batching")

WINDOW_SECONDS = 0.010
MAX_BATCH = 200
IN_FLIGHT_PER_CONNECTION = 3
HOLD_SECONDS = 2.0  # how long a batch's sends count against the in-flight limit, at most


class SendCoalescer:
    def __init__(self, runtime: Runtime, window: float = WINDOW_SECONDS, max_batch: int = MAX_BATCH,
                 max_in_flight: int | None = None, hold_seconds: float = HOLD_SECONDS):
        self.runtime = runtime
        self.window = window
        self.max_batch = max_batch
        self.hold_seconds = hold_seconds
        if max_in_flight is None and getattr(runtime, "session", None) is not None:
            max_in_flight = IN_FLIGHT_PER_CONNECTION * runtime.session.connector.limit  # 0: no limit
        self.max_in_flight = max_in_flight or 1 << 30
        self._in_flight = 0  # deliveries handed to a batch and not yet recorded (or given up)
        self._waiting: dict[str, deque[tuple[Sequence[str], asyncio.Future]]] = {}
        self._blocked: set[str] = set()  # triggers whose waiting jobs the in-flight limit holds back
        self._sizes: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task] = set()
        # Tracing on: delivery id -> the context of the job that asked for it (see `sender.attempt_deliveries`).
        self._parents: dict[str, object] = {}
        self._started: set[asyncio.Task] = set()  # see `start`

    async def attempt(self, delivery_ids: Sequence[str], trigger: str = "automatic") -> list[sender.AttemptResult]:
        if trigger == "test":  # answered to a user waiting on the mutation: never wait for company
            return await sender.attempt_deliveries(delivery_ids, self.runtime, trigger)
        if (parent := tracing.capture()) is not None:
            self._parents.update(dict.fromkeys(delivery_ids, parent))
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        # A job cancelled while waiting leaves its future behind: never log its outcome as unretrieved.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.setdefault(trigger, deque()).append((delivery_ids, future))
        self._sizes[trigger] = self._sizes.get(trigger, 0) + len(delivery_ids)
        if self._sizes[trigger] >= self.max_batch or not self._running:
            self._flush(trigger)  # full, or nothing in flight to wait for: go now
        elif trigger not in self._timers:
            self._timers[trigger] = loop.call_later(self.window, self._flush, trigger)
        # The batch runs on its own: a job cancelled while waiting does not cancel its neighbours' sends.
        return await asyncio.shield(future)

    def start(self, delivery_ids: list[str]) -> None:
        """Attempts these deliveries in the background, in the next batch; no job waits for them. Given
        only deliveries already due in the database: if the attempt cannot be made, the sweeper finds them."""
        task = asyncio.ensure_future(self.attempt(delivery_ids))
        self._started.add(task)
        task.add_done_callback(self._started_done)

    def _started_done(self, task: asyncio.Task) -> None:
        self._started.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("deliveries started in the background were not attempted; the sweeper queues them",
                        error=type(task.exception()).__name__)

    async def drain(self, timeout: float) -> None:
        """At shutdown, before `close`: waits up to `timeout` for the batches in flight (among them sends
        their jobs did not wait for) to finish."""
        busy = self._running | self._started
        if busy and timeout > 0:
            await asyncio.wait(busy, timeout=timeout)

    async def close(self) -> None:
        """At shutdown, once the grace is over: jobs still waiting for a batch are dropped (arq queues
        them again) and batches in flight are cancelled; what their receivers answered is recorded
        first, and the sends still out stay SENDING for their lease to bring back."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for waiting in self._waiting.values():
            for _, future in waiting:
                future.cancel()
        self._waiting.clear()
        self._blocked.clear()
        self._sizes.clear()
        for task in list(self._started):
            task.cancel()
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    def _flush(self, trigger: str) -> None:
        """Starts batches of the trigger's waiting jobs, as many as the in-flight limit lets through; the
        rest go as sends in flight are recorded (`_settled`)."""
        timer = self._timers.pop(trigger, None)
        if timer is not None:
            timer.cancel()
        waiting = self._waiting.get(trigger)
        while waiting and self._has_room():
            batch: list[tuple[Sequence[str], asyncio.Future]] = []
            size = 0
            while waiting and (not batch or size + len(waiting[0][0]) <= self.max_batch):
                group = waiting.popleft()
                batch.append(group)
                size += len(group[0])
            self._sizes[trigger] -= size
            self._in_flight += size
            task = asyncio.ensure_future(self._run(trigger, batch, size))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        if waiting:
            self._blocked.add(trigger)  # goes when sends in flight are recorded (`_settled`)
        else:
            self._blocked.discard(trigger)
            self._waiting.pop(trigger, None)
            self._sizes.pop(trigger, None)

    def _has_room(self) -> bool:
        # Room for a whole batch, so a backlog goes in full batches, not in the few sends each wave frees.
        return self._in_flight == 0 or self._in_flight + self.max_batch <= self.max_in_flight

    def _settled(self, count: int) -> None:
        self._in_flight -= count
        # Only jobs the limit held back go now; the others keep waiting for their window to fill.
        if self._blocked and self._has_room():
            for trigger in list(self._blocked):
                self._flush(trigger)

    async def _run(self, trigger: str, waiting: list[tuple[Sequence[str], asyncio.Future]], size: int) -> None:
        ids = [delivery_id for group, _ in waiting for delivery_id in group]
        parents = {i: self._parents.pop(i) for i in ids if i in self._parents} if self._parents else None
        jobs = _JobsOfBatch(waiting)
        unsettled = size

        def release(count: int) -> None:
            nonlocal unsettled
            count = min(count, unsettled)
            unsettled -= count
            self._settled(count)

        def settled(delivery_ids: Sequence[str], results: Sequence[sender.AttemptResult]) -> None:
            release(jobs.settle(delivery_ids, results))

        # Slow sends stop holding the line (see the module's docstring); `release` counts each delivery once.
        let_go = asyncio.get_running_loop().call_later(self.hold_seconds, lambda: release(unsettled))
        try:
            if parents:
                results = await sender.attempt_deliveries(ids, self.runtime, trigger, parents=parents,
                                                          settled=settled)
            else:
                results = await sender.attempt_deliveries(ids, self.runtime, trigger, settled=settled)
        except asyncio.CancelledError:
            jobs.cancel()
            raise
        except Exception as exc:
            jobs.fail(exc)
            return
        finally:
            let_go.cancel()
            release(unsettled)  # what was never reported settled
        jobs.finish(results)


class _JobsOfBatch:
    """The jobs sharing one batch. Each job gets its own results as soon as all of its deliveries are
    settled, not when the batch is done: a job's arq slot is never held by a neighbour's slow receiver,
    nor by sends waiting for their integration's limits."""

    def __init__(self, waiting: list[tuple[Sequence[str], asyncio.Future]]):
        self.waiting = waiting
        self.jobs_of: dict[str, list[int]] = {}
        self.copies: dict[str, int] = {}  # how often each delivery is in the batch (what it counts in flight)
        self.left: list[int] = []
        self.found: list[dict[str, sender.AttemptResult]] = []
        for n, (group, _) in enumerate(waiting):
            distinct = dict.fromkeys(group)
            self.left.append(len(distinct))
            self.found.append({})
            for delivery_id in distinct:
                self.jobs_of.setdefault(delivery_id, []).append(n)
            for delivery_id in group:
                self.copies[delivery_id] = self.copies.get(delivery_id, 0) + 1

    def settle(self, delivery_ids: Sequence[str], results: Sequence[sender.AttemptResult]) -> int:
        """Marks the deliveries settled and answers the jobs now complete; returns how many it freed."""
        by_id = {result.delivery.id: result for result in results}
        freed = 0
        for delivery_id in delivery_ids:
            copies = self.copies.pop(delivery_id, 0)
            if not copies:  # not of this batch, or settled before
                continue
            freed += copies
            for n in self.jobs_of[delivery_id]:
                if delivery_id in by_id:
                    self.found[n][delivery_id] = by_id[delivery_id]
                self.left[n] -= 1
                if self.left[n] == 0:
                    group, future = self.waiting[n]
                    if not future.done():
                        future.set_result([self.found[n][i] for i in group if i in self.found[n]])
        return freed

    def finish(self, results: Sequence[sender.AttemptResult]) -> None:
        by_id = {result.delivery.id: result for result in results}
        for group, future in self.waiting:
            if not future.done():
                future.set_result([by_id[i] for i in group if i in by_id])

    def fail(self, exc: Exception) -> None:
        for _, future in self.waiting:
            if not future.done():
                future.set_exception(exc)

    def cancel(self) -> None:
        for _, future in self.waiting:
            future.cancel()
