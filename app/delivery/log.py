"""Queries over the delivery log (used by GraphQL and by recovery)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.queryset import QuerySet

from app.models import Delivery, DeliveryStatus


@dataclass
class DeliveryFilter:
    integration_id: str | None = None
    form_slug: str | None = None
    status: list[DeliveryStatus] | None = None
    event: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def delivery_query(workspace_id: str, flt: DeliveryFilter | None = None) -> QuerySet[Delivery]:
    qs = Delivery.filter(workspace_id=workspace_id)
    if flt is None:
        return qs
    # A value longer than its column matches nothing, and tortoise refuses to compare it with one.
    event = (flt.event or "").removesuffix("*")
    if len(flt.integration_id or "") > 32 or len(flt.form_slug or "") > 64 or len(event) > 100:
        return qs.filter(id__in=[])
    if flt.integration_id:
        qs = qs.filter(integration_id=flt.integration_id)
    if flt.form_slug:
        qs = qs.filter(form__slug=flt.form_slug)
    if flt.status:
        qs = qs.filter(status__in=list(flt.status))
    if flt.event:
        if flt.event.endswith("*"):
            qs = qs.filter(event_type__startswith=flt.event[:-1])
        else:
            qs = qs.filter(event_type=flt.event)
    if flt.since:
        qs = qs.filter(created_at__gte=flt.since)
    if flt.until:
        qs = qs.filter(created_at__lte=flt.until)
    return qs
