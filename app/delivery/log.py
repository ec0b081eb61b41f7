"""Queries over the delivery log (used by GraphQL and by recovery)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from app.core import ids
from app.models import Delivery, DeliveryStatus, Form


@dataclass
class DeliveryFilter:
    integration_id: str | None = None
    form_slug: str | None = None
    status: list[DeliveryStatus] | None = None
    event: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def delivery_query(workspace_id: str, flt: DeliveryFilter | None = None,
                   forms: Collection[str] | None = None) -> QuerySet[Delivery]:
    """The workspace's deliveries that match `flt`; with `forms`, only those of these form slugs or of
    no form (a portal session limited to some forms).

    The date range goes by the moment the delivery was made as its id records it (to the millisecond;
    ids are time-sortable, app.core.ids), a few milliseconds before `created_at` is stamped on saving:
    one condition on the id, which PostgreSQL estimates right and serves from the (workspace_id, id)
    index, page and count alike. (Conditions on both the id and created_at, as correlated as they are,
    made it expect a handful of rows and gather a whole day of them through bitmaps, then sort.)"""
    qs = Delivery.filter(workspace_id=workspace_id)
    # Forms by id through a subquery, not by a join with form: the log's indexes are on form_id.
    if forms is not None:
        visible = Form.filter(workspace_id=workspace_id, slug__in=list(forms)).values("id")
        qs = qs.filter(Q(form_id__isnull=True) | Q(form_id__in=Subquery(visible)))
    if flt is None:
        return qs
    # A value longer than its column matches nothing, and tortoise refuses to compare it with one.
    event = (flt.event or "").removesuffix("*")
    if len(flt.integration_id or "") > 32 or len(flt.form_slug or "") > 64 or len(event) > 100:
        return qs.filter(id__in=[])
    if flt.integration_id:
        qs = qs.filter(integration_id=flt.integration_id)
    if flt.form_slug:
        qs = qs.filter(form_id=Subquery(Form.filter(workspace_id=workspace_id, slug=flt.form_slug).values("id")))
    if flt.status:
        qs = qs.filter(status__in=list(flt.status))
    if flt.event:
        if flt.event.endswith("*"):
            qs = qs.filter(event_type__startswith=flt.event[:-1])
        else:
            qs = qs.filter(event_type=flt.event)
    if flt.since:
        qs = qs.filter(id__gte=ids.time_bound("del", flt.since, upper=False))
    if flt.until:
        qs = qs.filter(id__lte=ids.time_bound("del", flt.until, upper=True))
    return qs
