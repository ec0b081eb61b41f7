"""The event catalog: event types registered for a workspace (or, by an instance operator, for every
workspace) with a description, a JSON Schema for their payloads and an example; listing them with the
types seen in published events and Hookyard's own; and the example `integrationTest` sends.

Publishing checks payloads against the schema in `app.delivery.event_schemas`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Max

from app.core.errors import CommonErrorCode, EventErrorCode, FieldError
from app.delivery import event_schemas, filters
from app.delivery.health import DELIVERY_FAILED, DISABLED, SYSTEM_EVENTS, SYSTEM_PREFIX
from app.delivery.unit import Unit
from app.models import Event, EventType, EventValidation, Workspace
from app.services.result import Done

MAX_DESCRIPTION = 2000
MAX_REASON = 500
MAX_EXAMPLE_BYTES = 64 * 1024
TEST_MARKER = "test"  # the key integrationTest adds, set to true, at the top of a catalog example

SYSTEM_DESCRIPTIONS = {
    DELIVERY_FAILED: "Hookyard's own: a delivery to another integration of the workspace failed for good.",
    DISABLED: "Hookyard's own: another integration of the workspace was switched off (failing too long, or its "
              "receiver answered 410 Gone).",
}


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()  # an `update` argument left out: the stored value stays


@dataclass
class EventTypeSpec:
    """What `eventTypeRegister` stores."""

    name: str
    description: str = ""
    schema: Any = None
    example: Any = None
    validation: EventValidation = EventValidation.LENIENT


@dataclass
class CatalogEntry:
    """One row of `eventTypes`: a registered type, one seen in the workspace's events, or a system event."""

    name: str
    system: bool
    last_seen_at: datetime | None = None
    registered: EventType | None = None
    description: str | None = None

    @property
    def is_global(self) -> bool:
        return self.registered is not None and self.registered.workspace_id is None


@dataclass
class Changes:
    description: Any = KEEP
    schema: Any = KEEP
    example: Any = KEEP
    validation: Any = KEEP


def name_errors(name: Any) -> list[FieldError]:
    if not isinstance(name, str) or not filters.is_valid_event_name(name):
        return [FieldError("name", "must be an event name like 'session.completed': up to 100 characters of "
                                   "segments of a-z, 0-9 and _ joined by '.' or ':'")]
    if name.startswith(SYSTEM_PREFIX):
        return [FieldError("name", f"names starting with {SYSTEM_PREFIX!r} are Hookyard's own events",
                           CommonErrorCode.NOT_ALLOWED)]
    return []


def content_errors(description: Any, schema: Any, example: Any) -> list[FieldError]:
    """The description, schema and example of a type: each valid, and the example matching the schema."""
    errors: list[FieldError] = []
    if not isinstance(description, str):
        errors.append(FieldError("description", "must be text"))
    elif len(description) > MAX_DESCRIPTION:
        errors.append(FieldError("description", f"is longer than {MAX_DESCRIPTION} characters",
                                 CommonErrorCode.TOO_LONG))
    schema_ok = True
    if schema is not None:
        problems = event_schemas.schema_problems(schema)
        errors += event_schemas.field_errors("schema", problems, EventErrorCode.INVALID_SCHEMA)
        schema_ok = not problems
    if example is not None:
        if not isinstance(example, dict):
            errors.append(FieldError("example", "must be a JSON object, as event payloads are"))
        elif (size := event_schemas.encoded_size(example)) is None:
            errors.append(FieldError("example", event_schemas.NOT_ENCODABLE))
        elif size > MAX_EXAMPLE_BYTES:
            errors.append(FieldError("example", f"is larger than {MAX_EXAMPLE_BYTES // 1024} KiB",
                                     CommonErrorCode.TOO_LONG))
        elif schema is not None and schema_ok:
            found = event_schemas.violations(event_schemas.compile_schema(schema), example)
            errors += event_schemas.field_errors("example", found, EventErrorCode.INVALID_PAYLOAD)
    return errors


async def find(workspace: Workspace | None, name: str) -> EventType | None:
    """The workspace's registered type of that name, or the global one when `workspace` is None."""
    if not isinstance(name, str) or len(name) > filters.EVENT_NAME_MAX_LENGTH:
        return None
    if workspace is None:
        return await EventType.filter(workspace_id__isnull=True, name=name).first()
    return await EventType.get_or_none(workspace_id=workspace.id, name=name)


async def register(unit: Unit, workspace: Workspace | None, spec: EventTypeSpec) -> Done[EventType]:
    """Adds a type to the workspace's catalog, or to every workspace's when `workspace` is None."""
    errors = name_errors(spec.name) + content_errors(spec.description, spec.schema, spec.example)
    if errors:
        return Done.refused(*errors)
    if await find(workspace, spec.name) is not None:
        where = "this workspace's catalog" if workspace else "the global catalog"
        return Done.refused(FieldError("name", f"{spec.name!r} is in {where} already; change it with "
                                               "eventTypeUpdate", CommonErrorCode.TAKEN))
    made = await EventType.create(workspace=workspace, name=spec.name, description=spec.description,
                                  json_schema=spec.schema, example=spec.example, validation=spec.validation)
    event_schemas.forget_lookups()
    return Done(made)


async def update(unit: Unit, workspace: Workspace | None, name: str, changes: Changes) -> Done[EventType]:
    """Changes what is given of a registered type; None removes a schema or an example."""
    found = await find(workspace, name)
    if found is None:
        return Done.refused(_not_registered(workspace, name))
    description = found.description if changes.description is KEEP else (changes.description or "")
    schema = found.json_schema if changes.schema is KEEP else changes.schema
    example = found.example if changes.example is KEEP else changes.example
    errors = content_errors(description, schema, example)
    if errors:
        return Done.refused(*errors)
    found.description, found.json_schema, found.example = description, schema, example
    if changes.validation is not KEEP and changes.validation is not None:
        found.validation = EventValidation(changes.validation)
    await found.save()  # moves updated_at: publishers compile the new schema
    event_schemas.forget_lookups()
    return Done(found)


async def deprecate(unit: Unit, workspace: Workspace | None, name: str, reason: str | None,
                    deprecated: bool = True) -> Done[EventType]:
    """Marks a registered type deprecated (or not any more). Its events are still checked and delivered."""
    found = await find(workspace, name)
    if found is None:
        return Done.refused(_not_registered(workspace, name))
    if reason is not None and len(reason) > MAX_REASON:
        return Done.refused(FieldError("reason", f"is longer than {MAX_REASON} characters", CommonErrorCode.TOO_LONG))
    if deprecated:
        found.deprecated_at = found.deprecated_at or datetime.now(UTC)
        found.deprecation_reason = reason if reason is not None else found.deprecation_reason
    else:
        found.deprecated_at = found.deprecation_reason = None
    await found.save()
    event_schemas.forget_lookups()
    return Done(found)


def _not_registered(workspace: Workspace | None, name: str) -> FieldError:
    where = "this workspace's catalog" if workspace else "the global catalog"
    return FieldError("name", f"no event type {name[:100]!r} in {where}", CommonErrorCode.NOT_FOUND)


async def registered_for(workspace_id: str | None) -> dict[str, EventType]:
    """The types a workspace's events are checked against, by name: its own, then global ones."""
    if workspace_id is None:
        rows = await EventType.filter(workspace_id__isnull=True)
    else:
        rows = await EventType.filter(Q(workspace_id=workspace_id) | Q(workspace_id__isnull=True))
    out: dict[str, EventType] = {}
    for row in sorted(rows, key=lambda r: r.workspace_id is not None):  # global first, the workspace's over them
        out[row.name] = row
    return out


async def list_types(workspace_id: str | None) -> list[CatalogEntry]:
    """The registered types, the types seen in the workspace's events, by name, then Hookyard's own
    events not seen yet. Without a workspace: the global catalog and the system events."""
    registered = await registered_for(workspace_id)
    seen: dict[str, datetime] = {}
    if workspace_id is not None:
        rows = await (Event.filter(workspace_id=workspace_id).annotate(last=Max("created_at")).group_by("type")
                      .values("type", "last"))
        seen = {row["type"]: row["last"] for row in rows}
    out = [CatalogEntry(name=name, system=name in SYSTEM_EVENTS, last_seen_at=seen.get(name),
                        registered=registered.get(name),
                        description=registered[name].description if name in registered
                        else SYSTEM_DESCRIPTIONS.get(name))
           for name in sorted(registered.keys() | seen.keys())]
    out += [CatalogEntry(name=name, system=True, description=SYSTEM_DESCRIPTIONS.get(name))
            for name in SYSTEM_EVENTS if name not in seen]
    return out


async def test_payload(workspace_id: str, name: str) -> Done[dict | None]:
    """What `integrationTest` sends for the event type `name`: the catalog's example with `"test": true`
    added at its top level; None (the integration type's generic sample) when the catalog has no such
    type; refused when the type is registered without an example."""
    found = await registered_for_name(workspace_id, name)
    if found is None:
        return Done(None)
    if not isinstance(found.example, dict):
        return Done.refused(FieldError("event", f"the event type {name!r} has no example in the catalog; add one "
                                                "with eventTypeUpdate", CommonErrorCode.NOT_SUPPORTED))
    return Done({**found.example, TEST_MARKER: True})


async def registered_for_name(workspace_id: str, name: str) -> EventType | None:
    """The type of that name a workspace's events are checked against: its own, else the global one."""
    if len(name) > filters.EVENT_NAME_MAX_LENGTH:
        return None
    rows = await EventType.filter(Q(workspace_id=workspace_id) | Q(workspace_id__isnull=True), name=name)
    return min(rows, key=lambda r: r.workspace_id is None) if rows else None
