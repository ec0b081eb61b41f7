"""Integration health after each attempt: FAILING, DISABLED, NEEDS_REAUTH and the system events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.delivery.queue import QueuedSend, enqueue_sends
from app.delivery.runtime import Runtime
from app.integrations.base import Outcome
from app.models import Delivery, DeliveryStatus, FormIntegration, Integration, IntegrationStatus, Workspace

SYSTEM_PREFIX = "integration."
DELIVERY_FAILED = "integration.delivery_failed"
DISABLED = "integration.disabled"
RECENT_SUCCESS = timedelta(seconds=60)


# Integration id -> when this process last wrote a success for it. Sends load the integration
# before earlier sends are recorded, so without this a burst would write the same success many times.
_success_written: dict[str, datetime] = {}


async def after_attempt(integration: Integration, delivery: Delivery, outcome: Outcome, runtime: Runtime) -> None:
    now = datetime.now(UTC)
    if outcome.success:
        last = max(filter(None, (integration.last_success_at, _success_written.get(integration.id))), default=None)
        stale = last is None or now - last > RECENT_SUCCESS
        if stale or integration.status != IntegrationStatus.ACTIVE or integration.failing_since:
            # Written at most once a minute while healthy: not one extra write per delivery.
            await Integration.filter(id=integration.id).update(
                last_success_at=now, status=IntegrationStatus.ACTIVE, failing_since=None
            )
            if len(_success_written) > 10_000:
                _success_written.clear()
            _success_written[integration.id] = now
        return
    if outcome.needs_reauth:
        await Integration.filter(id=integration.id).update(status=IntegrationStatus.NEEDS_REAUTH)
    elif outcome.gone:
        await disable(integration, runtime, f"the receiver answered 410 Gone ({delivery.id})")
    else:
        await Integration.filter(id=integration.id, failing_since__isnull=True).update(
            failing_since=now, status=IntegrationStatus.FAILING
        )
        cutoff = now - timedelta(seconds=runtime.settings.disable_after_seconds)
        if await Integration.filter(
            id=integration.id, status=IntegrationStatus.FAILING, failing_since__lte=cutoff
        ).exists():
            await disable(integration, runtime, "no successful delivery for "
                          f"{runtime.settings.disable_after_seconds:g} s")
    if delivery.status == DeliveryStatus.FAILED:
        await notify_failure(integration, delivery, runtime)


async def disable(integration: Integration, runtime: Runtime, reason: str) -> None:
    changed = await Integration.filter(
        id=integration.id, status__in=[IntegrationStatus.ACTIVE, IntegrationStatus.FAILING]
    ).update(status=IntegrationStatus.DISABLED)
    if changed:  # only the transition publishes, however many workers see the failure
        await _system_event(integration, DISABLED, {
            "integration": {"id": integration.id, "name": integration.name, "type": integration.type},
            "reason": reason,
        }, runtime)


async def notify_failure(integration: Integration, delivery: Delivery, runtime: Runtime) -> None:
    if delivery.event_type.startswith(SYSTEM_PREFIX) or not delivery.attachment_id:
        return  # never notify about a notification: two failing integrations would loop
    attachment = await FormIntegration.get_or_none(id=delivery.attachment_id)
    if attachment is None or not attachment.notify_on_failure:
        return
    await _system_event(integration, DELIVERY_FAILED, {
        "integration": {"id": integration.id, "name": integration.name, "type": integration.type},
        "delivery": {"id": delivery.id, "event": delivery.event_type, "attempts": delivery.attempt_count,
                     "error": delivery.last_error, "responseCode": delivery.response_code},
        "formSlug": None,
    }, runtime, form_id=delivery.form_id)


async def _system_event(integration: Integration, type_name: str, payload: dict, runtime: Runtime,
                        form_id: str | None = None) -> None:
    from app.delivery.fanout import publish_event  # fanout imports this module's neighbours

    workspace = await Workspace.get(id=integration.workspace_id)
    form_slug = None
    if form_id:
        from app.models import Form

        form = await Form.get_or_none(id=form_id)
        form_slug = form.slug if form else None
        payload["formSlug"] = form_slug
    await publish_event(workspace, type_name, payload, runtime=runtime, form_slug=form_slug,
                        exclude_integration_id=integration.id)


async def release_held(integration: Integration, runtime: Runtime | None) -> int:
    """After an owner re-enables an integration, its HELD deliveries go out."""
    now = datetime.now(UTC)
    held = await Delivery.filter(integration_id=integration.id, status=DeliveryStatus.HELD).values_list(
        "id", "attempt_count"
    )
    if not held:
        return 0
    await Delivery.filter(id__in=[h[0] for h in held], status=DeliveryStatus.HELD).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now, last_error=None
    )
    if runtime is not None and runtime.redis is not None:
        await enqueue_sends(runtime.redis, [QueuedSend(i, n + 1, "recover") for i, n in held])
    return len(held)
