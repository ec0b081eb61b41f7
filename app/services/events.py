"""Publishing events from the host product: one at a time, or up to MAX_BATCH in one call."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from app.core.errors import CommonErrorCode, FieldError
from app.delivery import fanout
from app.delivery.fanout import EventInput, Published
from app.delivery.unit import Unit
from app.models import Workspace
from app.services.result import Done

MAX_BATCH = 500  # events per `eventsPublish`
__all__ = ["MAX_BATCH", "EventInput", "Published", "publish", "publish_many"]


async def publish(unit: Unit, workspace: Workspace, type_name: str, payload: Any, *, form_slug: str | None = None,
                  idempotency_key: str | None = None) -> Done[fanout.Published]:
    """The event and its deliveries, written in the unit; queued once it commits."""
    published = await fanout.publish_event(unit, workspace.id, type_name, payload, form_slug=form_slug,
                                           idempotency_key=idempotency_key)
    return Done(published, published.errors)


async def publish_many(unit: Unit, workspace: Workspace, items: Sequence[fanout.EventInput], *,
                       forms: Collection[str] | None = None) -> Done[list[fanout.Published]]:
    """Every valid item published, in the unit, with its deliveries (queued once it commits); one result
    per item, in order, the invalid ones with their errors (fields `events.<index>.…`). `errors` holds
    every item's errors. More than MAX_BATCH items: refused as a whole (TOO_LONG on `events`).

    `forms`: the form slugs the caller may publish to (a portal session's), None for any; an item
    outside them is refused as if the form did not exist."""
    if len(items) > MAX_BATCH:
        return Done.refused(FieldError("events", f"at most {MAX_BATCH} events in one call (got {len(items)})",
                                       CommonErrorCode.TOO_LONG))
    results: list[fanout.Published | None] = [None] * len(items)
    allowed: list[tuple[int, fanout.EventInput]] = []
    for index, item in enumerate(items):
        item = fanout.EventInput(item.type, item.payload, item.form_slug, item.idempotency_key, f"events.{index}.")
        if forms is not None and item.form_slug not in forms:
            results[index] = fanout.Published(event=None, errors=[_outside(item)])
        else:
            allowed.append((index, item))
    published = await fanout.publish_events(unit, workspace.id, [item for _, item in allowed])
    for (index, _), result in zip(allowed, published, strict=True):
        results[index] = result
    done: list[fanout.Published] = [r for r in results if r is not None]
    return Done(done, [e for r in done for e in r.errors])


def _outside(item: fanout.EventInput) -> FieldError:
    if item.form_slug is None:
        return FieldError(item.path + "formSlug", "required: this session publishes to its forms only",
                          CommonErrorCode.REQUIRED)
    return FieldError(item.path + "formSlug", f"no form {item.form_slug!r} in this workspace",
                      CommonErrorCode.NOT_FOUND)
