"""The event catalog: the event types a workspace (or, for every workspace, the instance operator)
has registered, with a description, a JSON Schema for their payloads and an example."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.core import ids


class EventValidation(StrEnum):
    # The payload must match the schema; `eventPublish` refuses it (INVALID_PAYLOAD) otherwise.
    STRICT = "STRICT"
    # A payload that does not match is published and delivered; the mismatch is kept on the event.
    LENIENT = "LENIENT"


class EventType(Model):
    id = fields.CharField(max_length=32, primary_key=True, default=ids.event_type_id)
    # Null: a global type, registered by an instance operator for every workspace. A workspace's own
    # type of the same name comes first there.
    workspace = fields.ForeignKeyField("models.Workspace", related_name="event_types", null=True,
                                       on_delete=fields.CASCADE)
    name = fields.CharField(max_length=100, db_index=True)
    description = fields.TextField(default="")
    json_schema = fields.JSONField(null=True)
    example = fields.JSONField(null=True)
    validation = fields.CharEnumField(EventValidation, max_length=16, default=EventValidation.LENIENT)
    deprecated_at = fields.DatetimeField(null=True)
    deprecation_reason = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Part of the key of the compiled-validator cache: every change must move it.
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "event_type"
        # Global types (workspace null) are kept unique by the catalog's use-cases.
        unique_together = (("workspace", "name"),)
