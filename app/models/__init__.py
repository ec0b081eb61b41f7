"""Tortoise models, one module per aggregate."""

from app.models.catalog import EventType, EventValidation
from app.models.delivery import Delivery, DeliveryAttempt, DeliveryStatus, Event
from app.models.integration import (
    HOLDING_STATUSES,
    Form,
    FormIntegration,
    Integration,
    IntegrationScope,
    IntegrationStatus,
)
from app.models.workspace import ADMIN_ROLES, ApiToken, Membership, Plan, PortalSession, Role, User, Workspace

__all__ = [
    "ApiToken",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryStatus",
    "Event",
    "EventType",
    "EventValidation",
    "Form",
    "FormIntegration",
    "HOLDING_STATUSES",
    "Integration",
    "IntegrationScope",
    "IntegrationStatus",
    "Membership",
    "Plan",
    "PortalSession",
    "Role",
    "ADMIN_ROLES",
    "User",
    "Workspace",
]
