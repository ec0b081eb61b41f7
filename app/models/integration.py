from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.core import ids


class IntegrationScope(StrEnum):
    WORKSPACE = "WORKSPACE"
    FORMS = "FORMS"


class IntegrationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    FAILING = "FAILING"
    DISABLED = "DISABLED"
    NEEDS_REAUTH = "NEEDS_REAUTH"
    # Connected, but a choice the account makes after consenting is missing (a Google Sheets spreadsheet).
    NEEDS_SETUP = "NEEDS_SETUP"


# While an integration is in one of these, its deliveries wait as HELD instead of being sent.
HOLDING_STATUSES = (IntegrationStatus.DISABLED, IntegrationStatus.NEEDS_REAUTH, IntegrationStatus.NEEDS_SETUP)


class Integration(Model):
    id = fields.CharField(max_length=32, primary_key=True, default=ids.integration_id)
    workspace = fields.ForeignKeyField("models.Workspace", related_name="integrations", on_delete=fields.CASCADE)
    type = fields.CharField(max_length=32)
    name = fields.CharField(max_length=200)
    config = fields.JSONField(default=dict)
    # Fernet-encrypted JSON: signing secret, previous secret with its grace end, OAuth tokens, header values.
    secrets_encrypted = fields.TextField(null=True)
    events = fields.JSONField(default=list)
    scope = fields.CharEnumField(IntegrationScope, max_length=16, default=IntegrationScope.WORKSPACE)
    enabled = fields.BooleanField(default=True)
    status = fields.CharEnumField(IntegrationStatus, max_length=16, default=IntegrationStatus.ACTIVE)
    last_success_at = fields.DatetimeField(null=True)
    failing_since = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "integration"


class Form(Model):
    id = fields.CharField(max_length=32, primary_key=True, default=ids.form_id)
    workspace = fields.ForeignKeyField("models.Workspace", related_name="forms", on_delete=fields.CASCADE)
    slug = fields.CharField(max_length=64)
    name = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "form"
        unique_together = (("workspace", "slug"),)


class FormIntegration(Model):
    id = fields.CharField(max_length=32, primary_key=True, default=ids.form_integration_id)
    form = fields.ForeignKeyField("models.Form", related_name="attachments", on_delete=fields.CASCADE)
    integration = fields.ForeignKeyField(
        "models.Integration", related_name="attachments", on_delete=fields.CASCADE
    )
    events = fields.JSONField(default=list)
    enabled = fields.BooleanField(default=True)
    notify_on_failure = fields.BooleanField(default=False)
    logic = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "form_integration"
        unique_together = (("form", "integration"),)
