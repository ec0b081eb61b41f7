"""templatePreview: what a payload template makes of an event, before it is saved. No side effects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core import ids
from app.core.errors import CommonErrorCode, FieldError, IntegrationErrorCode
from app.delivery.fanout import validate_event
from app.integrations.base import RequestNotBuilt
from app.integrations.registry import get_kind
from app.integrations.templates import envelope, run, validate_template
from app.services.result import Done

PREVIEW_WORKSPACE = "preview"


def preview(template: Any, event_type: Any, payload: Any = None, type_name: str = "WEBHOOK") -> Done[Any]:
    """The body (or message) an integration of `type_name` would send for this event under `template`.

    Without a payload the type's sample payload for `event_type` is used. The envelope is the one a
    delivery gets, with a fresh delivery id, the current time and the workspace `preview`.
    """
    kind = get_kind(type_name)
    errors: list[FieldError] = []
    if kind is None:
        return Done.refused(FieldError("type", f"unknown integration type {type_name!r}",
                                       IntegrationErrorCode.UNKNOWN_TYPE))
    if not kind.supports_template:
        errors.append(FieldError("type", f"{kind.label} integrations cannot use a template (webhook, Slack and "
                                         "Discord integrations can)", CommonErrorCode.NOT_SUPPORTED))
    errors += validate_template(template, "template")
    if payload is None and isinstance(event_type, str):
        payload = kind.sample_payload(event_type)
    errors += [FieldError("event", e.message, e.code) if e.field == "type" else e
               for e in validate_event(event_type, payload, None)]
    if errors:
        return Done.refused(*errors)
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    data = envelope(event_type, payload, id=ids.delivery_id(), timestamp=now, test=False,
                    workspace_slug=PREVIEW_WORKSPACE, workspace_name="Preview")
    try:
        return Done(kind.body_from_template(run(template, data)))
    except RequestNotBuilt as exc:
        return Done.refused(FieldError("template", str(exc), IntegrationErrorCode.INVALID_TEMPLATE))
