"""All integration types by their GraphQL enum name."""

from __future__ import annotations

from app.integrations.base import IntegrationKind
from app.integrations.discord import DiscordKind
from app.integrations.google_sheets import GoogleSheetsKind
from app.integrations.hubspot import HubSpotKind
from app.integrations.pipedrive import PipedriveKind
from app.integrations.slack import SlackKind
from app.integrations.webhook import WebhookKind

_KINDS: dict[str, IntegrationKind] = {}


def register(kind: IntegrationKind) -> None:
    _KINDS[kind.type] = kind


def get_kind(type_name: str) -> IntegrationKind | None:
    return _KINDS.get(type_name.upper())


register(WebhookKind())
register(SlackKind())
register(DiscordKind())
register(HubSpotKind())
register(PipedriveKind())
register(GoogleSheetsKind())
