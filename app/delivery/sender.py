"""Making attempts at deliveries and recording what happened.

One delivery or many at once: a batch (the deliveries one event fanned out to, or those
of several jobs a worker started together, see `batching`) is claimed with one UPDATE,
loaded with one SELECT, sent concurrently over the shared session, and recorded (each
attempt and its delivery's new state, all or nothing) in one database round trip per wave
of sends that finish together, with the status updates for dashboards in one Redis message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.core import retry, tracing
from app.core.http import HttpExchange, describe_error, request_record, response_record
from app.delivery import attempt_log, batch_sql, fanout, health, metrics, ordering, pacing, throttle, updates
from app.delivery.queue import QueuedSend, enqueue_sends
from app.delivery.runtime import Runtime
from app.delivery.unit import unit_of_work
from app.integrations.base import DeliveryContext, Outcome
from app.integrations.registry import get_kind
from app.models import HOLDING_STATUSES, Delivery, DeliveryAttempt, DeliveryStatus, Integration
from app.models.rows import new_row

RECORDED_FIELDS = (
    "status", "attempt_count", "next_attempt_at", "locked_until", "response_code", "duration_ms",
    "last_error", "request", "response", "delivered_at", "updated_at",
)
# Sends of one batch that finish within this many seconds of each other are recorded together;
# a slow target never holds back the record of its fast siblings for longer than this.
RECORD_WINDOW = 0.005
# Every integration may set its own request timeout in its config (validated by the use-cases).
TIMEOUT_KEY = "timeoutSeconds"
MIN_TIMEOUT_SECONDS = 1
MAX_TIMEOUT_SECONDS = 30


@dataclass
class AttemptResult:
    delivery: Delivery
    attempt: DeliveryAttempt | None
    outcome: Outcome | None


# Told which deliveries need nothing more of their jobs, with the results of those attempted (see
# `attempt_deliveries`).
Settled = Callable[[Sequence[str], Sequence[AttemptResult]], None]


def _ignore(ids: Sequence[str], results: Sequence[AttemptResult]) -> None:
    pass


@dataclass
class _Sent:
    delivery: Delivery
    exchange: HttpExchange
    outcome: Outcome
    trace: str | None = None  # the traceparent of the attempt's span (tracing on): its retry joins the trace


def _now() -> datetime:
    return datetime.now(UTC)


def request_timeout(integration: Integration, runtime: Runtime) -> float:
    """The integration's own `timeoutSeconds`, else the server's HOOKYARD_REQUEST_TIMEOUT."""
    value = (integration.config or {}).get(TIMEOUT_KEY)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return runtime.settings.request_timeout


def _lease(now: datetime, runtime: Runtime) -> datetime:
    # Claimed before the integrations are loaded: long enough for the longest timeout any of them may set.
    settings = runtime.settings
    return now + timedelta(seconds=max(settings.send_lease_seconds, settings.request_timeout, MAX_TIMEOUT_SECONDS))


async def claim_many(delivery_ids: Sequence[str], runtime: Runtime, *, force: bool = False) -> list[str]:
    """Atomically moves the due deliveries among `delivery_ids` to SENDING; returns the ids now owned.

    One conditional UPDATE works the same on SQLite and PostgreSQL. A SENDING row whose
    lease ran out (its worker died mid-send) can be claimed again. `force` (tests sent
    from the API) claims any unfinished delivery, due or not.
    """
    now = _now()
    return await batch_sql.claim(delivery_ids, now, _lease(now, runtime), now + timedelta(seconds=1), force)


def _context(delivery: Delivery, integration: Integration, runtime: Runtime) -> DeliveryContext:
    event = delivery.event
    return DeliveryContext(
        delivery_id=delivery.id,
        event_type=delivery.event_type,
        payload=event.payload,
        timestamp=_now(),
        is_test=delivery.is_test,
        config=dict(integration.config or {}),
        secrets=runtime.box.open_cached(integration.secrets_encrypted),
        workspace_slug=delivery.workspace.slug,
        workspace_name=delivery.workspace.name,
        integration_name=integration.name,
        form_slug=updates.form_slug_of(delivery),
        settings=runtime.settings,
        shared=runtime.plugin_state,
    )


async def attempt_delivery(delivery_id: str, runtime: Runtime, trigger: str = "automatic") -> AttemptResult | None:
    """Claims, sends and records one attempt. Returns None when the delivery was not due."""
    results = await attempt_deliveries([delivery_id], runtime, trigger)
    return results[0] if results else None


async def attempt_deliveries(delivery_ids: Sequence[str], runtime: Runtime, trigger: str = "automatic",
                             parents: Mapping[str, object] | None = None,
                             settled: Settled | None = None) -> list[AttemptResult]:
    """Claims, sends and records one attempt for each delivery that is due; the others are skipped.

    `parents` (tracing on) maps delivery ids to the context of the job that asked for them: each
    attempt's span is that job's child, not the child of whichever job started the batch.
    `settled(ids, results)` is told as soon as deliveries need nothing more of their jobs: not claimed,
    finished without a send, put back to wait for their lane or limits, or their attempts recorded (with
    the results). A send waiting here for a concurrency slot this process holds is settled at once: it
    goes when the slot frees, in this call, and its job does not wait for it (see `batching`)."""
    report: Settled = settled or _ignore
    unique = list(dict.fromkeys(delivery_ids))
    claimed = await claim_many(unique, runtime, force=trigger == "test")
    if len(claimed) < len(unique):
        owned = set(claimed)
        report([i for i in unique if i not in owned], ())
    if not claimed:
        return []
    deliveries = await batch_sql.load_for_send(claimed)
    await updates.announce(runtime.redis, deliveries)

    results: list[AttemptResult] = []
    sendable: list[Delivery] = []
    for delivery in deliveries:
        integration = delivery.integration
        if not integration.enabled and trigger != "test":
            results.append(await _finish_without_send(
                delivery, runtime, DeliveryStatus.FAILED, "the integration was switched off before this was sent"))
        elif integration.status in HOLDING_STATUSES and trigger != "test":
            results.append(await _finish_without_send(
                delivery, runtime, DeliveryStatus.HELD, f"held while the integration is {integration.status.value}"))
        else:
            sendable.append(delivery)
    if results:
        report([r.delivery.id for r in results], results)

    # Ordered integrations send one at a time per lane; then their rate and concurrency limits. What may not
    # go now goes back to waiting, unrecorded.
    in_lanes = sendable
    sendable, waiting_in_lane = await ordering.hold_back(in_lanes, runtime, trigger)
    paced = await pacing.pace(sendable, runtime, trigger)
    waiting = paced.held_here()
    going = {d.id for d in paced.go} | {d.id for d, _, _ in waiting}
    if waiting:  # they go when a slot frees or their time comes, in this call; their jobs need not wait
        report([d.id for d, _, _ in waiting], ())

    async def send(delivery: Delivery) -> _Sent:
        try:
            return await _traced_send(delivery, runtime, trigger, parents)
        finally:
            await pacing.release(paced, delivery, runtime)

    async def send_when_free(delivery: Delivery, limits: throttle.Limits, after: float) -> _Sent | None:
        free = await pacing.wait_for_slot(paced, delivery, limits, runtime, after)
        return await send(delivery) if free else None

    pending = {asyncio.ensure_future(send(d)) for d in paced.go}
    pending |= {asyncio.ensure_future(send_when_free(d, limits, after)) for d, limits, after in waiting}
    done: set[asyncio.Future] = set()
    try:
        await paced.settled()
        if len(going) < len(sendable):
            report([d.id for d in sendable if d.id not in going], ())
        if waiting_in_lane is not None:
            await waiting_in_lane
            allowed = {d.id for d in sendable}
            report([d.id for d in in_lanes if d.id not in allowed], ())
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if pending:  # siblings finishing at about the same moment share the writes
                more, pending = await asyncio.wait(pending, timeout=RECORD_WINDOW)
                done |= more
            wave, done = [t.result() for t in done if t.result() is not None], set()  # None: put back
            if wave:
                recorded = await _record_whole(wave, trigger, runtime)
                results.extend(recorded)
                report([r.delivery.id for r in recorded], recorded)
    except asyncio.CancelledError:
        # Worker shutdown past its grace: what the receivers already answered is still recorded (once);
        # the sends still out are cut below and stay SENDING until their lease brings them back.
        answered = [t.result() for t in done | pending
                    if t.done() and not t.cancelled() and not t.exception() and t.result() is not None]
        if answered:
            await _record_whole(answered, trigger, runtime)
        raise
    finally:
        for task in pending:
            task.cancel()
    return results


async def _record_whole(sent: list[_Sent], trigger: str, runtime: Runtime) -> list[AttemptResult]:
    """`_record_all`, which a cancel (worker shutdown) waits for rather than cuts: an answered send is
    recorded whole, never half-written (its attempt without its delivery's new state)."""
    record = asyncio.ensure_future(_record_all(sent, trigger, runtime))
    try:
        return await asyncio.shield(record)
    except asyncio.CancelledError:
        await record
        raise


async def _send(delivery: Delivery, runtime: Runtime) -> _Sent:
    integration = delivery.integration
    kind = get_kind(integration.type)
    ctx = _context(delivery, integration, runtime)
    timeout = request_timeout(integration, runtime)
    exchange = HttpExchange(runtime.session, runtime.settings.allowed_networks, timeout)
    outcome: Outcome
    try:
        outcome = await kind.deliver(ctx, exchange)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # network failures and anything a type raises are retried, never lost
        last = exchange.records[-1] if exchange.records else None
        outcome = Outcome(success=False, error=(last.error if last and last.error else
                                                describe_error(exc, timeout)))
    if exchange.records and exchange.records[-1].status == 429:
        await pacing.after_response(delivery, 429, outcome.retry_after, runtime)
    if ctx.secrets_changed:
        integration.secrets_encrypted = runtime.box.seal(ctx.secrets)
        await Integration.filter(id=integration.id).update(secrets_encrypted=integration.secrets_encrypted)
    return _Sent(delivery, exchange, outcome)


async def _traced_send(delivery: Delivery, runtime: Runtime, trigger: str,
                       parents: Mapping[str, object] | None) -> _Sent:
    if not tracing.enabled():
        return await _send(delivery, runtime)
    integration = delivery.integration
    with tracing.span(tracing.ATTEMPT_SPAN, parent=(parents or {}).get(delivery.id), attributes={
        "hookyard.delivery.id": delivery.id, "hookyard.event.type": delivery.event_type,
        "hookyard.integration.id": integration.id, "hookyard.integration.type": str(integration.type),
        "hookyard.attempt": delivery.attempt_count + 1, "hookyard.trigger": trigger,
    }) as span:
        sent = await _send(delivery, runtime)
        sent.trace = tracing.traceparent()
        main = sent.exchange.records[-1] if sent.exchange.records else None
        tracing.set_attributes(span, {"hookyard.outcome": "success" if sent.outcome.success else "failure",
                                      "http.response.status_code": main.status if main else None,
                                      "hookyard.http.requests": len(sent.exchange.records)})
        if not sent.outcome.success:
            tracing.set_error(span, sent.outcome.error)
    return sent


async def _finish_without_send(
    delivery: Delivery, runtime: Runtime, status: DeliveryStatus, reason: str
) -> AttemptResult:
    delivery.status = status
    delivery.last_error = reason
    delivery.locked_until = None
    delivery.next_attempt_at = None
    await delivery.save(update_fields=["status", "last_error", "locked_until", "next_attempt_at", "updated_at"])
    attempt_log.log_not_sent(delivery_id=delivery.id, integration_id=delivery.integration_id,
                             workspace_id=delivery.workspace_id, status=str(status), reason=reason)
    await updates.announce(runtime.redis, [delivery])
    if lanes := ordering.finished_lanes([delivery]):
        await ordering.wake_lanes(lanes, runtime)
    return AttemptResult(delivery=delivery, attempt=None, outcome=None)


def _retry_delay(delivery: Delivery, outcome: Outcome, status_code: int | None, runtime: Runtime) -> float | None:
    delay = retry.next_delay(delivery.attempt_count, runtime.settings.retry_schedule,
                               jitter=runtime.settings.retry_jitter, rng=runtime.rng)
    if delay is None:
        return None
    if outcome.retry_after is not None and (status_code in retry.RETRY_AFTER_STATUSES or status_code is None):
        return retry.clamp_retry_after(outcome.retry_after)
    return delay


def _apply(sent: _Sent, trigger: str, runtime: Runtime, now: datetime) -> tuple[DeliveryAttempt, QueuedSend | None]:
    """Sets the attempt's outcome on the delivery in memory; returns the attempt row and any retry job."""
    delivery, exchange, outcome = sent.delivery, sent.exchange, sent.outcome
    main = exchange.records[-1] if exchange.records else None
    delivery.attempt_count += 1
    attempt = new_row(
        DeliveryAttempt,
        delivery_id=delivery.id,
        number=delivery.attempt_count,
        trigger=trigger,
        request_url=main.request.log_url if main else None,
        response_code=main.status if main else None,
        response_headers=main.headers if main and main.status is not None else None,
        response_body=main.body.decode("utf-8", "replace") if main and main.status is not None else None,
        duration_ms=sum(r.duration_ms for r in exchange.records),
        error=None if outcome.success else outcome.error,
        created_at=now,
    )
    delivery.request = request_record(main.request) if main else delivery.request
    delivery.response = response_record(main) if main else None
    delivery.response_code = attempt.response_code
    delivery.duration_ms = attempt.duration_ms
    delivery.last_error = attempt.error
    delivery.locked_until = None
    delivery.updated_at = now
    follow_up: QueuedSend | None = None
    if outcome.success:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    else:
        delay = None
        if outcome.retryable and not outcome.gone and not outcome.needs_reauth and trigger != "test":
            delay = _retry_delay(delivery, outcome, attempt.response_code, runtime)
        if outcome.needs_reauth:
            delivery.status = DeliveryStatus.HELD
            delivery.next_attempt_at = None
        elif delay is None:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
        else:
            delivery.status = DeliveryStatus.RETRYING
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            follow_up = QueuedSend(delivery.id, delivery.attempt_count + 1, "automatic", delivery.next_attempt_at,
                                   traceparent=sent.trace)
    return attempt, follow_up


async def _record_all(batch: list[_Sent], trigger: str, runtime: Runtime) -> list[AttemptResult]:
    """Writes the attempts and the deliveries' new state, all or nothing, in one round trip."""
    now = _now()
    applied = [_apply(sent, trigger, runtime, now) for sent in batch]
    attempts = [attempt for attempt, _ in applied]
    await batch_sql.record(attempts, [sent.delivery for sent in batch], RECORDED_FIELDS)
    follow_ups = [f for _, f in applied if f is not None]
    if follow_ups and runtime.redis is not None:
        await enqueue_sends(runtime.redis, follow_ups)
    await updates.publish(runtime.redis, [
        updates.DeliveryUpdate.of(sent.delivery, attempt, updates.form_slug_of(sent.delivery))
        for sent, attempt in zip(batch, attempts, strict=True)
    ])
    results = []
    for sent, attempt in zip(batch, attempts, strict=True):
        if not sent.delivery.is_test:
            events = await health.after_attempt(sent.delivery.integration, sent.delivery, sent.outcome, runtime)
            if events:
                async with unit_of_work(runtime) as unit:
                    await fanout.publish_system_events(unit, events)
        results.append(AttemptResult(delivery=sent.delivery, attempt=attempt, outcome=sent.outcome))
    if lanes := ordering.finished_lanes(sent.delivery for sent in batch):
        await ordering.wake_lanes(lanes, runtime)  # the next of each ordered lane may go
    for sent, attempt in zip(batch, attempts, strict=True):  # one line per attempt, all of it recorded
        attempt_log.log_recorded(sent.delivery, attempt, sent.exchange.records, sent.outcome.success, runtime.box)
        metrics.record_attempt(sent.delivery, attempt, sent.outcome.success)
    return results
