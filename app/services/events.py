"""Publishing an event from the host product."""

from __future__ import annotations

from typing import Any

from app.delivery import fanout
from app.delivery.unit import Unit
from app.models import Workspace
from app.services.result import Done


async def publish(unit: Unit, workspace: Workspace, type_name: str, payload: Any, *, form_slug: str | None = None,
                  idempotency_key: str | None = None) -> Done[fanout.Published]:
    """The event and its deliveries, written in the unit; queued once it commits."""
    published = await fanout.publish_event(unit, workspace.id, type_name, payload, form_slug=form_slug,
                                           idempotency_key=idempotency_key)
    return Done(published, published.errors)
