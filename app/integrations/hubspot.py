"""HubSpot: create or update a contact for each event.

Uses HubSpot's documented upsert by unique property,
``POST /crm/v3/objects/contacts/batch/upsert`` with ``idProperty: "email"``: one call
creates the contact or updates the one with that email, so retries never duplicate.
"""

from __future__ import annotations

import re
from typing import Any

from app.config import Settings
from app.core.errors import FieldError
from app.integrations.base import ConfigField, DeliveryContext, Outcome, sample_payload
from app.integrations.field_mapping import as_text, resolve_path, unknown_fields, validate_mapping
from app.integrations.oauth_caller import TokenCaller, payload_problem
from app.integrations.oauth_client import OAuthProvider, provider_error
from app.integrations.oauth_kind import OAuthKind

DEFAULT_MAPPING = {"email": "fields.email", "firstname": "fields.first_name", "lastname": "fields.last_name"}
PROPERTY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
UPSERT_PATH = "/crm/v3/objects/contacts/batch/upsert"
SCOPES = ("crm.objects.contacts.read", "crm.objects.contacts.write")


class HubSpotKind(OAuthKind):
    type = "HUBSPOT"
    label = "HubSpot"
    env_name = "HUBSPOT"
    config_fields = (
        ConfigField(
            "mapping",
            "Contact properties",
            "mapping",
            required=True,
            description='HubSpot property name → payload path, e.g. {"email": "post.author.email"}; email is required',
        ),
    )

    @classmethod
    def oauth_app(cls, settings: Settings) -> OAuthProvider | None:
        if not (settings.hubspot_client_id and settings.hubspot_client_secret):
            return None
        token_url = settings.hubspot_token_url or settings.hubspot_api_url.rstrip("/") + "/oauth/v1/token"
        return OAuthProvider(
            type_name=cls.type,
            auth_url=settings.hubspot_auth_url,
            token_url=token_url,
            client_id=settings.hubspot_client_id,
            client_secret=settings.hubspot_client_secret,
            scopes=SCOPES,
        )

    def validate_config(self, config: dict[str, Any], settings: Settings) -> tuple[dict[str, Any], list[FieldError]]:
        mapping, errors = validate_mapping(
            config.pop("mapping", DEFAULT_MAPPING),
            "config.mapping",
            key_re=PROPERTY_RE,
            required_keys=("email",),
        )
        return {"mapping": mapping}, errors + unknown_fields(config)

    async def send_event(self, ctx: DeliveryContext, caller: TokenCaller, settings: Settings) -> Outcome:
        properties = mapped_properties(ctx)
        email = properties.get("email")
        if not email or not EMAIL_RE.match(email):
            raise payload_problem(f"no valid email at payload path {ctx.config['mapping']['email']!r}")
        body = {"inputs": [{"idProperty": "email", "id": email, "properties": properties}]}
        url = settings.hubspot_api_url.rstrip("/") + UPSERT_PATH
        response = await caller.call_ok("POST", url, body)
        return batch_outcome(response.json(), response.body)

    def sample_payload(self, event_type: str) -> dict[str, Any]:
        payload = sample_payload(event_type)
        payload["fields"].update({"first_name": "Ada", "last_name": "Lovelace"})
        return payload


def mapped_properties(ctx: DeliveryContext) -> dict[str, str]:
    """Mapped values as HubSpot property strings; paths absent from the payload are left out."""
    out: dict[str, str] = {}
    for prop, path in ctx.config["mapping"].items():
        text = as_text(resolve_path(ctx, path))
        if text is not None:
            out[prop] = text.strip() if prop == "email" else text
    return out


def batch_outcome(data: Any, raw: bytes) -> Outcome:
    """Batch endpoints can answer 2xx (207) while the input itself failed."""
    errors = data.get("errors") if isinstance(data, dict) else None
    if errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        message = first.get("message") or provider_error(raw)
        return Outcome(success=False, error=f"HubSpot rejected the contact: {message}", retryable=False)
    return Outcome(success=True)
