"""HubSpot deliveries against the fake provider, over real HTTP, and its config."""

from __future__ import annotations

import time

from app.integrations.hubspot import HubSpotKind
from tests.unit.integrations.helpers import connected, errors_of, make_ctx, valid_config

hubspot = HubSpotKind()


async def test_hubspot_creates_then_updates_contact(fake, provider_settings, exchange):
    config = valid_config(
        hubspot,
        {"mapping": {"email": "post.author.email", "firstname": "post.author.name", "company": "org"}},
        provider_settings,
    )
    secrets = connected(fake, "hubspot")
    payload = {"post": {"author": {"email": "ada@example.com", "name": "Ada"}}, "org": "Engines"}
    ctx = make_ctx(config, payload, secrets=secrets, settings=provider_settings)
    outcome = await hubspot.deliver(ctx, exchange)
    assert outcome.success, outcome.error
    call = fake.requests[-1]
    assert (call.method, call.path) == ("POST", "/hubspot/crm/v3/objects/contacts/batch/upsert")
    assert call.authorization == f"Bearer {secrets['access_token']}"
    assert call.headers["Content-Type"] == "application/json"
    assert call.json == {
        "inputs": [
            {
                "idProperty": "email",
                "id": "ada@example.com",
                "properties": {"email": "ada@example.com", "firstname": "Ada", "company": "Engines"},
            }
        ]
    }
    assert not ctx.secrets_changed and len(fake.requests) == 1
    assert exchange.records[0].request.secret_headers == frozenset({"authorization"})

    payload["post"]["author"]["name"] = "Augusta Ada"
    assert (
        await hubspot.deliver(make_ctx(config, payload, secrets=secrets, settings=provider_settings), exchange)
    ).success
    assert list(fake.contacts) == ["ada@example.com"]
    assert fake.contacts["ada@example.com"]["properties"]["firstname"] == "Augusta Ada"


async def test_missing_email_and_not_connected(provider_settings, exchange):
    config = valid_config(hubspot, {}, provider_settings)
    ctx = make_ctx(
        config,
        {"fields": {}},
        secrets={"access_token": "x", "expires_at": time.time() + 999},
        settings=provider_settings,
    )
    outcome = await hubspot.deliver(ctx, exchange)
    assert not outcome.success and not outcome.retryable and "fields.email" in outcome.error
    not_connected = await hubspot.deliver(make_ctx(config, {}, settings=provider_settings), exchange)
    assert not_connected.needs_reauth and "integrationOAuthConnectUrl" in not_connected.error
    assert exchange.records == []


def test_hubspot_mapping_errors():
    errors, _ = errors_of(hubspot, {"mapping": {"firstname": "post..name", "bad key": "a", "phone": 3}, "extra": 1})
    assert errors == {
        ("config.mapping.email", "REQUIRED"),
        ("config.mapping.firstname", "INVALID_PATH"),
        ("config.mapping.bad key", "INVALID"),
        ("config.mapping.phone", "INVALID"),
        ("config.extra", "UNKNOWN_FIELD"),
    }
    assert errors_of(hubspot, {"mapping": "email"})[0] == {("config.mapping", "INVALID")}
    assert errors_of(hubspot, {"mapping": {"email": "$nope"}})[0] == {("config.mapping.email", "INVALID_PATH")}
