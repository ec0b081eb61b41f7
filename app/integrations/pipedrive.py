"""Pipedrive: find or create a person, then add a deal and/or a note for the event.

Endpoints (Pipedrive API v2 where it exists): ``GET /api/v2/persons/search`` (exact email
match, so retries reuse the person), ``POST /api/v2/persons``, ``POST /api/v2/deals``.
Notes have no v2 endpoint yet, so they use the documented ``POST /v1/notes``.
Calls go to ``HOOKYARD_PIPEDRIVE_API_URL`` rather than the token's ``api_domain`` so every
base URL comes from config.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlencode

from app.config import Settings
from app.core.errors import CommonErrorCode, FieldError
from app.integrations.base import ConfigField, DeliveryContext, Outcome
from app.integrations.field_mapping import as_text, resolve_path, unknown_fields, validate_mapping, validate_path
from app.integrations.oauth_caller import TokenCaller, payload_problem
from app.integrations.oauth_client import OAuthProvider
from app.integrations.oauth_kind import OAuthKind

PERSON_FIELDS = ("name", "email", "phone")
DEFAULT_MAPPING = {"name": "fields.name", "email": "fields.email"}
FIELD_RE = re.compile(rf"^({'|'.join(PERSON_FIELDS)})$")
MAX_NOTE_LINES = 50
MAX_TITLE = 255


class PipedriveKind(OAuthKind):
    type = "PIPEDRIVE"
    label = "Pipedrive"
    env_name = "PIPEDRIVE"
    config_fields = (
        ConfigField(
            "mapping",
            "Person fields",
            "mapping",
            required=True,
            description="name (required), email, phone → payload paths",
        ),
        ConfigField(
            "deal_title",
            "Deal title",
            "string",
            description="payload path of the deal title; a deal is created when set",
        ),
        ConfigField("note", "Add a note", "boolean", description="add a note summarizing the event"),
    )

    @classmethod
    def oauth_app(cls, settings: Settings) -> OAuthProvider | None:
        if not (settings.pipedrive_client_id and settings.pipedrive_client_secret):
            return None
        # Pipedrive scopes are chosen in the app's Developer Hub settings, not in the URL.
        return OAuthProvider(
            type_name=cls.type,
            auth_url=settings.pipedrive_auth_url,
            token_url=settings.pipedrive_token_url,
            client_id=settings.pipedrive_client_id,
            client_secret=settings.pipedrive_client_secret,
            basic_auth=True,
        )

    def validate_config(self, config: dict[str, Any], settings: Settings) -> tuple[dict[str, Any], list[FieldError]]:
        mapping, errors = validate_mapping(
            config.pop("mapping", DEFAULT_MAPPING),
            "config.mapping",
            key_re=FIELD_RE,
            required_keys=("name",),
        )
        deal_title = config.pop("deal_title", None)
        if err := validate_path(deal_title, "config.deal_title", required=False):
            errors.append(err)
        note = config.pop("note", False)
        if not isinstance(note, bool):
            errors.append(FieldError("config.note", "must be true or false", CommonErrorCode.INVALID))
        clean = {"mapping": mapping, "deal_title": deal_title or None, "note": note is True}
        return clean, errors + unknown_fields(config)

    async def send_event(self, ctx: DeliveryContext, caller: TokenCaller, settings: Settings) -> Outcome:
        api = settings.pipedrive_api_url.rstrip("/")
        person = person_fields(ctx)
        person_id = await find_person(caller, api, person.get("email"))
        if person_id is None:
            person_id = await create_person(caller, api, person)
        if ctx.config.get("deal_title"):
            title = as_text(resolve_path(ctx, ctx.config["deal_title"])) or f"{person['name']}: {ctx.event_type}"
            await caller.call_ok("POST", f"{api}/api/v2/deals", {"title": title[:MAX_TITLE], "person_id": person_id})
        if ctx.config.get("note"):
            await caller.call_ok("POST", f"{api}/v1/notes", {"content": note_content(ctx), "person_id": person_id})
        return Outcome(success=True)


def person_fields(ctx: DeliveryContext) -> dict[str, str]:
    values = {key: as_text(resolve_path(ctx, path)) for key, path in ctx.config["mapping"].items()}
    person = {key: value.strip() for key, value in values.items() if value and value.strip()}
    if "name" not in person:
        raise payload_problem(f"no person name at payload path {ctx.config['mapping']['name']!r}")
    return person


async def find_person(caller: TokenCaller, api: str, email: str | None) -> int | None:
    if not email:
        return None
    query = urlencode({"term": email, "fields": "email", "exact_match": "true", "limit": "1"})
    response = await caller.call_ok("GET", f"{api}/api/v2/persons/search?{query}")
    items = ((response.json() or {}).get("data") or {}).get("items") or []
    item = items[0].get("item") if items and isinstance(items[0], dict) else None
    return item.get("id") if isinstance(item, dict) else None


async def create_person(caller: TokenCaller, api: str, person: dict[str, str]) -> int:
    body: dict[str, Any] = {"name": person["name"]}
    if "email" in person:
        body["emails"] = [{"value": person["email"], "primary": True, "label": "work"}]
    if "phone" in person:
        body["phones"] = [{"value": person["phone"], "primary": True, "label": "work"}]
    response = await caller.call_ok("POST", f"{api}/api/v2/persons", body)
    person_id = ((response.json() or {}).get("data") or {}).get("id")
    if person_id is None:
        raise payload_problem("Pipedrive created a person but returned no id")
    return person_id


def note_content(ctx: DeliveryContext) -> str:
    """Event type and the payload's top-level values as HTML lines (Pipedrive notes are HTML)."""
    lines = [f"<b>{html.escape(ctx.event_type)}</b>" + (" (test)" if ctx.is_test else "")]
    payload = ctx.payload if isinstance(ctx.payload, dict) else {"payload": ctx.payload}
    for key, value in list(payload.items())[:MAX_NOTE_LINES]:
        lines.append(f"{html.escape(str(key))}: {html.escape(as_text(value) or '')[:1000]}")
    return "<br>".join(lines)
