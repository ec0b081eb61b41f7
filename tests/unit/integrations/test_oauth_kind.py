"""OAuthKind: what the three OAuth types share (tokens only by connecting, default config delivers)."""

from __future__ import annotations

import pytest

from app.integrations.google_sheets import GoogleSheetsKind
from app.integrations.hubspot import HubSpotKind
from app.integrations.pipedrive import PipedriveKind
from tests.unit.integrations.helpers import SHEET_ID, connected, errors_of, make_ctx, valid_config

hubspot, pipedrive, sheets = HubSpotKind(), PipedriveKind(), GoogleSheetsKind()


def test_tokens_cannot_be_set_through_validate():
    existing = {"access_token": "at", "refresh_token": "rt", "expires_at": 1.0}
    errors, validated = errors_of(hubspot, {}, secrets={"access_token": "mine"}, existing=existing)
    assert errors == {("secrets.access_token", "NOT_ALLOWED")}
    assert validated.secrets == existing
    ok, validated = errors_of(pipedrive, {}, existing=existing)
    assert ok == set() and validated.secrets == existing


@pytest.mark.parametrize("kind", [hubspot, pipedrive, sheets])
async def test_sample_payload_passes_default_mapping(kind, fake, provider_settings, exchange):
    fake.sheets[SHEET_ID] = []
    config = valid_config(kind, {"spreadsheet_id": SHEET_ID} if kind is sheets else {}, provider_settings)
    provider = {"HUBSPOT": "hubspot", "PIPEDRIVE": "pipedrive", "GOOGLE_SHEETS": "google"}[kind.type]
    ctx = make_ctx(
        config,
        kind.sample_payload("session.completed"),
        secrets=connected(fake, provider),
        settings=provider_settings,
        is_test=True,
    )
    outcome = await kind.deliver(ctx, exchange)
    assert outcome.success, outcome.error
