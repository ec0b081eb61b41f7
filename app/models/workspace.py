from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.core import ids


class Plan(StrEnum):
    FREE = "free"
    STARTER = "starter"
    PROFESSIONAL = "professional"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


# Roles that see and change integrations and deliveries.
ADMIN_ROLES = (Role.OWNER, Role.ADMIN)


class Workspace(Model):
    id = fields.CharField(max_length=32, primary_key=True, default=ids.workspace_id)
    slug = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=200)
    plan = fields.CharEnumField(Plan, max_length=16, default=Plan.FREE)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "workspace"


class User(Model):
    id = fields.CharField(max_length=32, primary_key=True, default=ids.user_id)
    email = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "user_account"


class Membership(Model):
    id = fields.CharField(max_length=32, primary_key=True, default=ids.membership_id)
    workspace = fields.ForeignKeyField("models.Workspace", related_name="memberships", on_delete=fields.CASCADE)
    user = fields.ForeignKeyField("models.User", related_name="memberships", on_delete=fields.CASCADE)
    role = fields.CharEnumField(Role, max_length=16, default=Role.MEMBER)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "membership"
        unique_together = (("workspace", "user"),)


class ApiToken(Model):
    id = fields.CharField(max_length=32, primary_key=True, default=ids.token_id)
    user = fields.ForeignKeyField("models.User", related_name="tokens", on_delete=fields.CASCADE)
    name = fields.CharField(max_length=200, default="")
    token_hash = fields.CharField(max_length=64, unique=True)
    hint = fields.CharField(max_length=16)
    abilities = fields.JSONField(default=list)
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_token"


class PortalSession(Model):
    """A short-lived browser credential (`hyp_...`) for one workspace, made by an API token's holder
    for the product's customer: at most the maker's abilities, optionally only some forms."""

    id = fields.CharField(max_length=32, primary_key=True, default=ids.portal_session_id)
    workspace = fields.ForeignKeyField("models.Workspace", related_name="portal_sessions", on_delete=fields.CASCADE)
    # The session acts as this user, within the limits below; it dies with the token that made it.
    user = fields.ForeignKeyField("models.User", related_name="portal_sessions", on_delete=fields.CASCADE)
    created_by = fields.ForeignKeyField("models.ApiToken", related_name="portal_sessions", on_delete=fields.CASCADE)
    token_hash = fields.CharField(max_length=64, unique=True)
    hint = fields.CharField(max_length=16)
    abilities = fields.JSONField(default=list)
    allowed_origins = fields.JSONField(default=list)
    form_slugs = fields.JSONField(null=True)  # None: every form of the workspace
    theme = fields.JSONField(default=dict)
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "portal_session"
