"""`integrationTest`: send a sample payload now and say how it went."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.delivery import filters
from app.delivery.runtime import Runtime
from app.delivery.sender import attempt_delivery
from app.integrations.base import FieldError
from app.integrations.registry import get_kind
from app.models import Delivery, DeliveryStatus, Event, Integration


@dataclass
class ProbeResult:
    success: bool
    response_code: int | None
    duration_ms: int | None
    error_message: str | None
    delivery: Delivery | None


async def send_test(
    integration: Integration, event_type: str | None, runtime: Runtime
) -> tuple[ProbeResult | None, list[FieldError]]:
    event_type = event_type or "integration.test"
    if not filters.is_valid_event_name(event_type):
        return None, [FieldError("event", "must be an event name like 'session.completed'", "INVALID")]
    payload = get_kind(integration.type).sample_payload(event_type)
    now = datetime.now(UTC)
    event = await Event.create(workspace_id=integration.workspace_id, type=event_type, payload=payload,
                               created_at=now)
    delivery = await Delivery.create(
        workspace_id=integration.workspace_id, event=event, integration=integration, event_type=event_type,
        status=DeliveryStatus.PENDING, is_test=True, next_attempt_at=now,
    )
    result = await attempt_delivery(delivery.id, runtime, trigger="test")
    done = result.delivery if result else await Delivery.get(id=delivery.id)
    return ProbeResult(
        success=done.status == DeliveryStatus.SUCCEEDED,
        response_code=done.response_code,
        duration_ms=done.duration_ms,
        error_message=done.last_error,
        delivery=done,
    ), []
