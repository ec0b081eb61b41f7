"""provider_for: a type's OAuth app, found through the registry."""

from __future__ import annotations

from app.config import Settings
from app.integrations.oauth import provider_for
from app.integrations.registry import get_kind


def test_providers_need_client_credentials():
    empty = Settings()
    for type_name in ("HUBSPOT", "PIPEDRIVE", "GOOGLE_SHEETS"):
        assert provider_for(type_name, empty) is None
    assert provider_for("SLACK", empty) is None
    assert get_kind("HUBSPOT").unavailable_reason(empty) == (
        "HubSpot OAuth app is not configured: set HOOKYARD_HUBSPOT_CLIENT_ID and HOOKYARD_HUBSPOT_CLIENT_SECRET"
    )
    assert "HOOKYARD_GOOGLE_CLIENT_ID" in get_kind("GOOGLE_SHEETS").unavailable_reason(empty)
    assert "HOOKYARD_PIPEDRIVE_CLIENT_SECRET" in get_kind("PIPEDRIVE").unavailable_reason(empty)
    configured = Settings(hubspot_client_id="id", hubspot_client_secret="s")
    assert get_kind("HUBSPOT").unavailable_reason(configured) is None
    assert provider_for("HUBSPOT", configured).token_url == "https://api.hubapi.com/oauth/v1/token"
    custom = Settings(hubspot_client_id="id", hubspot_client_secret="s", hubspot_token_url="https://t.example/tok")
    assert provider_for("HUBSPOT", custom).token_url == "https://t.example/tok"
