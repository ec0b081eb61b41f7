"""Integration health after each attempt: FAILING, DISABLED, NEEDS_REAUTH, and the system events
those transitions call for. The caller publishes the events (see `sender`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.delivery.runtime import Runtime
from app.integrations.base import Outcome
from app.models import Delivery, DeliveryStatus, FormIntegration, Integration, IntegrationStatus

DELIVERY_FAILED = "integration.delivery_failed"
DISABLED = "integration.disabled"
SYSTEM_EVENTS = (DELIVERY_FAILED, DISABLED)
SYSTEM_PREFIX = "integration."
RECENT_SUCCESS = timedelta(seconds=60)
MAX_REMEMBERED = 10_000


@dataclass
class SystemEvent:
    """An event Hookyard itself publishes to a workspace's other integrations."""

    workspace_id: str
    type: str
    payload: dict
    form_id: str | None = None
    exclude_integration_id: str | None = None


async def after_attempt(integration: Integration, delivery: Delivery, outcome: Outcome,
                        runtime: Runtime) -> list[SystemEvent]:
    """Records what the attempt says about the integration's health; returns the events to publish."""
    now = datetime.now(UTC)
    if outcome.success:
        await _record_success(integration, now, runtime)
        return []
    events: list[SystemEvent] = []
    if outcome.needs_reauth:
        await Integration.filter(id=integration.id).update(status=IntegrationStatus.NEEDS_REAUTH)
    elif outcome.gone:
        events += await disable(integration, f"the receiver answered 410 Gone ({delivery.id})")
    else:
        await Integration.filter(id=integration.id, failing_since__isnull=True).update(
            failing_since=now, status=IntegrationStatus.FAILING
        )
        cutoff = now - timedelta(seconds=runtime.settings.disable_after_seconds)
        if await Integration.filter(
            id=integration.id, status=IntegrationStatus.FAILING, failing_since__lte=cutoff
        ).exists():
            events += await disable(integration, f"no successful delivery for "
                                                 f"{runtime.settings.disable_after_seconds:g} s")
    if delivery.status == DeliveryStatus.FAILED:
        events += await failure_notice(integration, delivery)
    return events


async def _record_success(integration: Integration, now: datetime, runtime: Runtime) -> None:
    # Sends load the integration before earlier sends are recorded, so without the runtime's memory
    # of what this process wrote, a burst would write the same success many times.
    written = runtime.success_written
    last = max(filter(None, (integration.last_success_at, written.get(integration.id))), default=None)
    stale = last is None or now - last > RECENT_SUCCESS
    if stale or integration.status != IntegrationStatus.ACTIVE or integration.failing_since:
        # Written at most once a minute while healthy: not one extra write per delivery.
        await Integration.filter(id=integration.id).update(
            last_success_at=now, status=IntegrationStatus.ACTIVE, failing_since=None
        )
        if len(written) > MAX_REMEMBERED:
            written.clear()
        written[integration.id] = now


def _about(integration: Integration) -> dict:
    return {"id": integration.id, "name": integration.name, "type": integration.type}


async def disable(integration: Integration, reason: str) -> list[SystemEvent]:
    changed = await Integration.filter(
        id=integration.id, status__in=[IntegrationStatus.ACTIVE, IntegrationStatus.FAILING]
    ).update(status=IntegrationStatus.DISABLED)
    if not changed:  # only the transition publishes, however many workers see the failure
        return []
    return [SystemEvent(integration.workspace_id, DISABLED, {"integration": _about(integration), "reason": reason},
                        exclude_integration_id=integration.id)]


async def failure_notice(integration: Integration, delivery: Delivery) -> list[SystemEvent]:
    if delivery.event_type.startswith(SYSTEM_PREFIX) or not delivery.attachment_id:
        return []  # never notify about a notification: two failing integrations would loop
    attachment = await FormIntegration.get_or_none(id=delivery.attachment_id)
    if attachment is None or not attachment.notify_on_failure:
        return []
    payload = {
        "integration": _about(integration),
        "delivery": {"id": delivery.id, "event": delivery.event_type, "attempts": delivery.attempt_count,
                     "error": delivery.last_error, "responseCode": delivery.response_code},
        "formSlug": None,
    }
    return [SystemEvent(integration.workspace_id, DELIVERY_FAILED, payload, form_id=delivery.form_id,
                        exclude_integration_id=integration.id)]
