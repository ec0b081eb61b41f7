"""All integration types by their GraphQL enum name."""

from __future__ import annotations

from app.integrations.base import IntegrationKind
from app.integrations.webhook import WebhookKind

_KINDS: dict[str, IntegrationKind] = {}


def register(kind: IntegrationKind) -> None:
    _KINDS[kind.type] = kind


def get_kind(type_name: str) -> IntegrationKind | None:
    return _KINDS.get(type_name.upper())


def all_kinds() -> list[IntegrationKind]:
    return list(_KINDS.values())


register(WebhookKind())
