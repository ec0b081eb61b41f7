"""Making one attempt at a delivery and recording what happened."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q

from app.delivery import backoff, health, updates
from app.delivery.exchange import HttpExchange, describe_error, request_record, response_record
from app.delivery.queue import QueuedSend, enqueue_sends
from app.delivery.runtime import Runtime
from app.integrations.base import DeliveryContext, Outcome
from app.integrations.registry import get_kind
from app.models import Delivery, DeliveryAttempt, DeliveryStatus, Integration, IntegrationStatus
from app.secrets_box import decrypt_json, encrypt_json

HOLD_STATUSES = (IntegrationStatus.DISABLED, IntegrationStatus.NEEDS_REAUTH)


@dataclass
class AttemptResult:
    delivery: Delivery
    attempt: DeliveryAttempt | None
    outcome: Outcome | None


def _now() -> datetime:
    return datetime.now(UTC)


async def claim(delivery_id: str, runtime: Runtime, *, force: bool = False) -> bool:
    """Atomically moves a due delivery to SENDING, so two workers never send it at once.

    A plain conditional UPDATE works the same on SQLite and PostgreSQL. A SENDING row
    whose lease ran out (its worker died mid-send) can be claimed again.
    """
    now = _now()
    due = Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING]) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=1))
    )
    if force:
        due = Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.FAILED])
    stale = Q(status=DeliveryStatus.SENDING) & Q(locked_until__lt=now)
    lease = now + timedelta(seconds=max(runtime.settings.send_lease_seconds, runtime.settings.request_timeout))
    changed = await Delivery.filter(Q(id=delivery_id) & (due | stale)).update(
        status=DeliveryStatus.SENDING, locked_until=lease, updated_at=now
    )
    return changed == 1


def _context(delivery: Delivery, integration: Integration, runtime: Runtime) -> DeliveryContext:
    event = delivery.event
    return DeliveryContext(
        delivery_id=delivery.id,
        event_type=delivery.event_type,
        payload=event.payload,
        timestamp=_now(),
        is_test=delivery.is_test,
        config=dict(integration.config or {}),
        secrets=decrypt_json(integration.secrets_encrypted),
        workspace_slug=delivery.workspace.slug,
        integration_name=integration.name,
        form_slug=delivery.form.slug if delivery.form_id and delivery.form else None,
        settings=runtime.settings,
    )


async def attempt_delivery(delivery_id: str, runtime: Runtime, trigger: str = "automatic") -> AttemptResult | None:
    """Claims, sends and records one attempt. Returns None when the delivery was not due."""
    if not await claim(delivery_id, runtime, force=trigger == "test"):
        return None
    delivery = await Delivery.get(id=delivery_id).select_related("event", "integration", "workspace", "form")
    integration = delivery.integration
    form_slug = delivery.form.slug if delivery.form else None
    await updates.publish(runtime.redis, [updates.encode_update(delivery, None, form_slug)])

    if not integration.enabled and trigger != "test":
        return await _finish_without_send(delivery, runtime, DeliveryStatus.FAILED,
                                          "the integration was switched off before this was sent", form_slug)
    if integration.status in HOLD_STATUSES and trigger != "test":
        return await _finish_without_send(delivery, runtime, DeliveryStatus.HELD,
                                          f"held while the integration is {integration.status.value}", form_slug)

    kind = get_kind(integration.type)
    ctx = _context(delivery, integration, runtime)
    exchange = HttpExchange(runtime.session, runtime.settings.networks, runtime.settings.request_timeout)
    outcome: Outcome
    try:
        outcome = await kind.deliver(ctx, exchange)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # network failures and anything a type raises are retried, never lost
        last = exchange.records[-1] if exchange.records else None
        outcome = Outcome(success=False, error=(last.error if last and last.error else
                                                describe_error(exc, runtime.settings.request_timeout)))
    if ctx.secrets_changed:
        integration.secrets_encrypted = encrypt_json(ctx.secrets)
        await Integration.filter(id=integration.id).update(secrets_encrypted=integration.secrets_encrypted)
    return await _record(delivery, integration, exchange, outcome, trigger, runtime, form_slug)


async def _finish_without_send(
    delivery: Delivery, runtime: Runtime, status: DeliveryStatus, reason: str, form_slug: str | None
) -> AttemptResult:
    delivery.status = status
    delivery.last_error = reason
    delivery.locked_until = None
    delivery.next_attempt_at = None
    await delivery.save(update_fields=["status", "last_error", "locked_until", "next_attempt_at", "updated_at"])
    await updates.publish(runtime.redis, [updates.encode_update(delivery, None, form_slug)])
    return AttemptResult(delivery=delivery, attempt=None, outcome=None)


def _retry_delay(delivery: Delivery, outcome: Outcome, status_code: int | None, runtime: Runtime) -> float | None:
    delay = backoff.next_delay(delivery.attempt_count, runtime.settings.schedule,
                               jitter=runtime.settings.retry_jitter, rng=runtime.rng)
    if delay is None:
        return None
    if outcome.retry_after is not None and (status_code in backoff.RETRY_AFTER_STATUSES or status_code is None):
        return backoff.clamp_retry_after(outcome.retry_after)
    return delay


async def _record(
    delivery: Delivery,
    integration: Integration,
    exchange: HttpExchange,
    outcome: Outcome,
    trigger: str,
    runtime: Runtime,
    form_slug: str | None,
) -> AttemptResult:
    now = _now()
    main = exchange.records[-1] if exchange.records else None
    delivery.attempt_count += 1
    attempt = DeliveryAttempt(
        delivery_id=delivery.id,
        number=delivery.attempt_count,
        trigger=trigger,
        request_url=main.request.url if main else None,
        response_code=main.status if main else None,
        response_headers=main.headers if main and main.status is not None else None,
        response_body=main.body.decode("utf-8", "replace") if main and main.status is not None else None,
        duration_ms=sum(r.duration_ms for r in exchange.records),
        error=None if outcome.success else outcome.error,
    )
    await attempt.save()

    delivery.request = request_record(main.request) if main else delivery.request
    delivery.response = response_record(main) if main else None
    delivery.response_code = attempt.response_code
    delivery.duration_ms = attempt.duration_ms
    delivery.last_error = attempt.error
    delivery.locked_until = None
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
            follow_up = QueuedSend(delivery.id, delivery.attempt_count + 1, "automatic", delivery.next_attempt_at)
    await delivery.save(update_fields=[
        "status", "attempt_count", "next_attempt_at", "locked_until", "response_code", "duration_ms",
        "last_error", "request", "response", "delivered_at", "updated_at",
    ])
    messages = [updates.encode_update(delivery, attempt, form_slug)]
    if follow_up and runtime.redis is not None:
        await enqueue_sends(runtime.redis, [follow_up])
    await updates.publish(runtime.redis, messages)
    if not delivery.is_test:
        await health.after_attempt(integration, delivery, outcome, runtime)
    return AttemptResult(delivery=delivery, attempt=attempt, outcome=outcome)
