"""Which claimed sends go now, and putting the others back until their integration's limits let them.

See `throttle` for the limits. A send held back is not a failure: it goes back to PENDING (RETRYING
when it has failed before) with `next_attempt_at` set to when it may go and a job queued for then; no
attempt is recorded. Several held back for one integration are spaced by its rate, so they do not all
wake at once. If the job is lost, the sweeper queues the delivery again once it is due.

A send that waits only for a concurrency slot this process holds (a burst to an integration limited to
a few at a time) is not put back: it waits in its batch and goes as soon as one of those sends finishes
(`throttle.LocalSlots`), for up to CHAIN_SECONDS after the batch began; only what still waits then, or
waits for slots other workers hold, is put back. A burst costs one claim per send, not a claim, a
put-back and another claim. Only as many wait so as the slots should get through in about a second
(`LocalSlots.room_to_wait`; their jobs do not wait for them, see `sender`): the rest of a bigger burst is
put back, each with the time the sends ahead of it should take, so a backlog neither fills the worker nor
comes back all at once. A send the rate lets go within RATE_WAIT_SECONDS waits for its time the same way.

Pacing starts when an event is published (`book`): each new send of a rate-limited integration is given
its slot there, is written with `next_attempt_at` at that time and its job is queued for it
(`booked_run_at`). A burst beyond the rate is then claimed once, when its turn comes, not claimed, put
back and claimed again; the worker still asks the limiter before each send (the slot is kept for it),
so a 429's pause or a late job is handled as above.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError

from app.delivery import batch_sql, throttle, updates
from app.delivery.queue import QueuedSend, enqueue_sends
from app.delivery.runtime import Runtime
from app.models import Delivery, DeliveryStatus

HELD_BACK_FIELDS = ("status", "next_attempt_at", "locked_until", "updated_at")
# Between the sends of an integration without limits of its own put back until a 429's pause ends, and
# before a send waiting for a slot comes back when the worker stops.
CONCURRENCY_SPACING = 0.05
# Sends put back to go within the same tick of this many seconds share one job.
JOB_TICK_SECONDS = 0.05
# How long a send may wait in its batch for a slot this process holds, counted from the batch's start.
CHAIN_SECONDS = 2.0
# A send the rate lets go this soon waits for its time in the worker instead of being put back.
RATE_WAIT_SECONDS = 0.5


@dataclass
class Paced:
    go: list[Delivery]
    leases: dict[str, tuple[str, str]] = field(default_factory=dict)  # delivery id -> (integration id, lease)
    # Sends that wait in the batch for a slot this process holds (see `wait_for_slot`).
    waiting: list[tuple[Delivery, throttle.Limits]] = field(default_factory=list)
    # Sends the rate lets go within RATE_WAIT_SECONDS: they wait in the batch for their time (see `wait_for_slot`).
    sleeping: list[tuple[Delivery, throttle.Limits, float]] = field(default_factory=list)
    # Writing back the sends held back: runs while the others are sent; await `settled()` before returning.
    putting_back: asyncio.Future | None = None
    trigger: str = "automatic"
    began: float = field(default_factory=time.monotonic)

    async def settled(self) -> None:
        if self.putting_back is not None:
            await self.putting_back

    def held_here(self) -> list[tuple[Delivery, throttle.Limits, float]]:
        """Every send that waits in the batch: (delivery, limits, seconds before it asks again); hand each
        to `wait_for_slot`."""
        return [(d, limits, 0.0) for d, limits in self.waiting] + self.sleeping


def limits_of(delivery: Delivery) -> throttle.Limits:
    integration = delivery.integration
    return throttle.limits_of(integration.type, integration.config)


async def pace(deliveries: Sequence[Delivery], runtime: Runtime, trigger: str) -> Paced:
    """Asks Redis, in one round trip, which sends may go now; puts the others back."""
    throttle_ = runtime.throttle
    if trigger == "test" or throttle_ is None or not deliveries:  # a test is sent when asked, limits or not
        return Paced(go=list(deliveries))
    limits = [limits_of(d) for d in deliveries]
    # A limited integration is asked once per send; one without limits once per batch (is it paused by a 429?).
    asks: dict[object, int] = {}
    requests: list[tuple[str, throttle.Limits]] = []
    send_ids: list[str | None] = []
    slots = []
    for n, (delivery, lim) in enumerate(zip(deliveries, limits, strict=True)):
        key = n if lim.limited else delivery.integration_id
        if key not in asks:
            asks[key] = len(requests)
            requests.append((delivery.integration_id, lim))
            send_ids.append(delivery.id if lim.limited else None)
        slots.append(asks[key])
    answers = await throttle_.admit(requests, send_ids)
    admissions = [answers[slot] for slot in slots]
    paced = Paced(go=[], trigger=trigger)
    later: list[tuple[Delivery, float, throttle.Limits]] = []
    waiting_now: dict[str, int] = {}
    for delivery, lim, admission in zip(deliveries, limits, admissions, strict=True):
        if admission.wait > 0:
            integration_id = delivery.integration_id
            if admission.why == throttle.RATE and admission.wait <= RATE_WAIT_SECONDS:
                paced.sleeping.append((delivery, lim, admission.wait))
            elif admission.why != throttle.NO_SLOT:
                later.append((delivery, admission.wait, lim))
            elif (runtime.slots.holding(integration_id)
                  and runtime.slots.room_to_wait(integration_id, lim, waiting_now.get(integration_id, 0))):
                waiting_now[integration_id] = waiting_now.get(integration_id, 0) + 1
                paced.waiting.append((delivery, lim))
            else:
                wait = runtime.slots.look_again_in(integration_id, lim, waiting_now.get(integration_id, 0))
                later.append((delivery, wait, lim))
            continue
        paced.go.append(delivery)
        if admission.lease:
            _took(paced, delivery, admission.lease, runtime)
    if later:  # the sends that may go start at once; this write runs beside them
        paced.putting_back = asyncio.ensure_future(_put_back(later, trigger, runtime))
    return paced


async def book(sends: Sequence[tuple[Delivery, throttle.Limits]], runtime: Runtime,
               now: datetime) -> list[Delivery]:
    """Before new deliveries are written: gives each of a rate-limited integration its slot, in order, and
    sets its `next_attempt_at` to it (see the module's docstring); the others are left as they are, and so
    are an ordered lane's (each is queued when the one ahead finishes, and asks the limiter then). Answers
    the deliveries booked: `unbook` them if they are not written. Without Redis, or when it fails, nothing
    is booked: the worker's limiter check holds them back instead."""
    by_integration: dict[str, list[Delivery]] = {}
    limits: dict[str, throttle.Limits] = {}
    for delivery, lim in sends:
        if (lim.requests is not None and delivery.status == DeliveryStatus.PENDING and delivery.blocked_by is None
                and delivery.ordering_key is None):
            by_integration.setdefault(delivery.integration_id, []).append(delivery)
            limits[delivery.integration_id] = lim
    if not by_integration or runtime.throttle is None:
        return []
    bookings = [(integration_id, limits[integration_id], [d.id for d in deliveries])
                for integration_id, deliveries in by_integration.items()]
    try:
        answers = await runtime.throttle.book(bookings)
    except (OSError, RedisError):  # published all the same (Redis being away is reported by its health check)
        return []
    for deliveries, waits in zip(by_integration.values(), answers, strict=True):
        for delivery, wait in zip(deliveries, waits, strict=True):
            if wait > 0:
                delivery.next_attempt_at = now + timedelta(seconds=wait)
    return [d for deliveries in by_integration.values() for d in deliveries]


async def unbook(deliveries: Sequence[Delivery], runtime: Runtime) -> None:
    """Gives back the slots `book` gave deliveries that were not written (their publish failed): the sends
    booked after them are not held back behind empty slots. (An event that loses its idempotency key to a
    concurrent publish keeps its deliveries' slots until they expire, a minute after their time.)"""
    by_integration: dict[str, list[str]] = {}
    for delivery in deliveries:
        by_integration.setdefault(delivery.integration_id, []).append(delivery.id)
    if by_integration and runtime.throttle is not None:
        try:
            await runtime.throttle.unbook(list(by_integration.items()))
        except (OSError, RedisError):  # the slots expire a minute after their time
            pass


def booked_run_at(delivery: Delivery, now: datetime) -> datetime | None:
    """When the job of a new delivery should run: None (now) unless `book` gave it a slot more than a tick
    away; then that slot's tick, which it shares with the sends due within the same tick."""
    due = delivery.next_attempt_at
    if due is None or (due - now).total_seconds() <= JOB_TICK_SECONDS:
        return None
    return _next_tick(due)


def _took(paced: Paced, delivery: Delivery, lease: str, runtime: Runtime) -> None:
    paced.leases[delivery.id] = (delivery.integration_id, lease)
    runtime.slots.took(delivery.integration_id)


async def wait_for_slot(paced: Paced, delivery: Delivery, limits: throttle.Limits, runtime: Runtime,
                        after: float = 0.0) -> bool:
    """For a send in `paced.waiting`: waits for this process to give back a slot of its integration and
    takes one (True: send it now), or puts it back to waiting (False) when CHAIN_SECONDS have passed since
    the batch began, the slots are held elsewhere, or the limits now refuse it for another reason. For one
    in `paced.sleeping`, the same once the `after` seconds the rate gave it have passed; a send the rate
    holds back again for no longer than RATE_WAIT_SECONDS (within the chain time) waits again."""
    integration_id = delivery.integration_id
    deadline = paced.began + CHAIN_SECONDS
    try:
        while True:
            remaining = deadline - time.monotonic()
            handed = None  # the lease of the send that finished, handed over to this one
            if after > 0:
                await asyncio.sleep(after)
                after = 0.0
            elif remaining > 0 and runtime.slots.holding(integration_id):
                handed = await runtime.slots.next_turn(integration_id, remaining)
            try:
                [admission] = await runtime.throttle.admit([(integration_id, limits)], [delivery.id], [handed])
            except Exception:  # Redis away: back to waiting, the job or the sweeper brings it (a lease expires)
                admission = throttle.Admission(wait=CONCURRENCY_SPACING, why=throttle.NO_SLOT)
            if admission.wait == 0:
                if admission.lease:
                    _took(paced, delivery, admission.lease, runtime)
                return True
            if (admission.why == throttle.RATE and admission.wait <= RATE_WAIT_SECONDS
                    and time.monotonic() + admission.wait < deadline):
                after = admission.wait
                continue
            if (admission.why != throttle.NO_SLOT or time.monotonic() >= deadline
                    or not runtime.slots.holding(integration_id)):
                wait = (admission.wait if admission.why != throttle.NO_SLOT
                        else runtime.slots.look_again_in(integration_id, limits))
                await _put_back([(delivery, wait, limits)], paced.trigger, runtime)
                return False
    except asyncio.CancelledError:  # the worker stops: it waits as PENDING, not as a send in flight
        await asyncio.shield(_put_back([(delivery, CONCURRENCY_SPACING, limits)], paced.trigger, runtime))
        raise


async def release(paced: Paced, delivery: Delivery, runtime: Runtime) -> None:
    """After a send: its concurrency slot goes to a send waiting for one here (which gives the lease back
    in the limiter call that takes a new one: one round trip, not two), else back to Redis."""
    held = paced.leases.pop(delivery.id, None)
    if held is None:
        return
    integration_id, lease = held
    if runtime.slots.gave_back(integration_id, lease):
        return
    if runtime.throttle is not None:
        try:
            await runtime.throttle.release(integration_id, lease)
        except Exception:  # Redis away: the lease expires on its own
            pass


async def after_response(delivery: Delivery, status: int | None, retry_after: float | None,
                         runtime: Runtime) -> None:
    """A 429 pauses the integration for every worker (its Retry-After, else a few seconds) and slows it."""
    if status == 429 and runtime.throttle is not None:
        await runtime.throttle.pause(delivery.integration_id, retry_after)


def _next_tick(when: datetime) -> datetime:
    """`when` rounded up to the next tick of JOB_TICK_SECONDS (never earlier: the send is due by then)."""
    tick = int(JOB_TICK_SECONDS * 1_000_000)
    micros = int(when.timestamp() * 1_000_000)
    return datetime.fromtimestamp(-(-micros // tick) * tick / 1_000_000, UTC)


async def _put_back(later: list[tuple[Delivery, float, throttle.Limits]], trigger: str,
                    runtime: Runtime) -> list[Delivery]:
    now = datetime.now(UTC)
    stamp = int(time.time() * 1000)
    queued_per_integration: dict[str, int] = {}
    sends = []
    for delivery, wait, lim in sorted(later, key=lambda item: item[0].id):
        n = queued_per_integration.get(delivery.integration_id, 0)
        queued_per_integration[delivery.integration_id] = n + 1
        # The rate gave each send held back a time of its own, and so did `LocalSlots.look_again_in` those
        # that found every concurrency slot taken; those of an integration without limits of its own, held
        # back by a 429's pause, are spaced here.
        spacing = 0.0 if lim.requests or lim.max_concurrency else CONCURRENCY_SPACING
        delivery.status = DeliveryStatus.RETRYING if delivery.attempt_count else DeliveryStatus.PENDING
        delivery.next_attempt_at = now + timedelta(seconds=wait + n * spacing)
        delivery.locked_until = None
        delivery.updated_at = now
        # A job id of its own: the job running now still holds the attempt's id in arq. Jobs due in the same
        # tick of JOB_TICK_SECONDS are one job: a backlog going out at its integration's pace costs a job per
        # tick, not one per send.
        sends.append(QueuedSend(delivery.id, delivery.attempt_count + 1, trigger,
                                _next_tick(delivery.next_attempt_at), retake=f"w{stamp}"))
    deliveries = [d for d, _, _ in later]
    await batch_sql.save_many(deliveries, HELD_BACK_FIELDS)
    if runtime.redis is not None:
        await enqueue_sends(runtime.redis, sends, batch=True)
        await updates.announce(runtime.redis, deliveries)
    return deliveries
