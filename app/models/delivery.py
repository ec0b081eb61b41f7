from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.core import ids
from app.models.indexes import WhereIndex


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    SUCCEEDED = "SUCCEEDED"
    RETRYING = "RETRYING"
    FAILED = "FAILED"
    HELD = "HELD"


class Event(Model):
    id = fields.CharField(max_length=32, primary_key=True, default=ids.event_id)
    workspace = fields.ForeignKeyField("models.Workspace", related_name="events", on_delete=fields.CASCADE)
    form = fields.ForeignKeyField("models.Form", related_name="events", null=True, on_delete=fields.SET_NULL)
    type = fields.CharField(max_length=100)
    payload = fields.JSONField(default=dict)
    idempotency_key = fields.CharField(max_length=200, null=True)
    # Where the payload broke its event type's JSON Schema when the type validates LENIENT
    # ([{"pointer", "message"}]); null when it matched or the type has no schema.
    schema_errors = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "event"
        unique_together = (("workspace", "idempotency_key"),)
        indexes = (("created_at",),)  # the purge of old events


class Delivery(Model):
    # The id doubles as the Standard Webhooks `webhook-id`: stable across retries.
    id = fields.CharField(max_length=32, primary_key=True, default=ids.delivery_id)
    workspace = fields.ForeignKeyField("models.Workspace", related_name="deliveries", on_delete=fields.CASCADE)
    event = fields.ForeignKeyField("models.Event", related_name="deliveries", on_delete=fields.CASCADE)
    integration = fields.ForeignKeyField(
        "models.Integration", related_name="deliveries", on_delete=fields.CASCADE
    )
    form = fields.ForeignKeyField("models.Form", related_name="deliveries", null=True, on_delete=fields.SET_NULL)
    attachment = fields.ForeignKeyField(
        "models.FormIntegration", related_name="deliveries", null=True, on_delete=fields.SET_NULL
    )
    event_type = fields.CharField(max_length=100)
    status = fields.CharEnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING)
    is_test = fields.BooleanField(default=False)
    attempt_count = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    locked_until = fields.DatetimeField(null=True)
    response_code = fields.IntField(null=True)
    duration_ms = fields.IntField(null=True)
    last_error = fields.TextField(null=True)
    request = fields.JSONField(null=True)
    response = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)
    delivered_at = fields.DatetimeField(null=True)
    # Ordered integrations only: the lane (the payload's ordering key, "" without one) it goes out in, one
    # at a time in publish order; and the earlier delivery of its lane it waits for, while it does.
    ordering_key = fields.CharField(max_length=200, null=True)
    blocked_by = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "delivery"
        indexes = (("integration_id", "created_at"),  # recovering an integration's deliveries of a time range
                   # The sweeper's due and stuck deliveries, and the ordered lanes' heads: only the rows they can
                   # find are indexed, so the most common change (a send that succeeded) writes neither.
                   WhereIndex(fields=("next_attempt_at",), name="idx_delivery_waiting",
                              where="\"status\" IN ('PENDING', 'RETRYING')"),
                   WhereIndex(fields=("locked_until",), name="idx_delivery_sending", where="\"status\" = 'SENDING'"),
                   WhereIndex(fields=("integration_id", "ordering_key", "status", "id"), name="idx_delivery_lanes",
                              where="\"ordering_key\" IS NOT NULL"),
                   # The delivery log pages newest first (by id) under each filter: see app/delivery/log.py.
                   ("workspace_id", "id"), ("workspace_id", "integration_id", "id"), ("workspace_id", "form_id", "id"),
                   ("workspace_id", "status", "id"),
                   # The event filter's index, (workspace_id, event_type, id), is made by migration 0010 with
                   # an operator class Tortoise cannot describe: see there.
                   ("event_id",))  # deleting an event (the purge) finds its deliveries


class DeliveryAttempt(Model):
    id = fields.CharField(max_length=32, primary_key=True, default=ids.attempt_id)
    delivery = fields.ForeignKeyField("models.Delivery", related_name="attempts", on_delete=fields.CASCADE)
    number = fields.IntField()
    trigger = fields.CharField(max_length=16)
    request_url = fields.TextField(null=True)
    response_code = fields.IntField(null=True)
    response_headers = fields.JSONField(null=True)
    response_body = fields.TextField(null=True)
    duration_ms = fields.IntField(null=True)
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "delivery_attempt"
        indexes = (("delivery_id", "id"),)  # a delivery's attempts; deleting a delivery deletes them
