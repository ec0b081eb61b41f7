"""TokenCaller: bearer calls while delivering, refreshing once (shared per process), and API errors.

Driven through HubSpot deliveries against the fake provider over real HTTP.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from app.integrations.hubspot import HubSpotKind
from tests.fakes.providers import CLIENTS
from tests.unit.integrations.helpers import connected, make_ctx, valid_config

hubspot = HubSpotKind()


async def test_refreshes_before_expiry(fake, provider_settings, exchange):
    config = valid_config(hubspot, {}, provider_settings)
    secrets = connected(fake, "hubspot", expires_in=30)  # inside the 60 s margin
    ctx = make_ctx(config, hubspot.sample_payload("x"), secrets=secrets, settings=provider_settings)
    outcome = await hubspot.deliver(ctx, exchange)
    assert outcome.success, outcome.error
    token_call, api_call = fake.requests
    assert token_call.path == "/hubspot/oauth/v1/token"
    assert token_call.form == {
        "grant_type": "refresh_token",
        "refresh_token": secrets["refresh_token"],
        "client_id": CLIENTS["hubspot"][0],
        "client_secret": CLIENTS["hubspot"][1],
    }
    assert ctx.secrets_changed
    assert ctx.secrets["access_token"] != secrets["access_token"]
    assert ctx.secrets["expires_at"] == pytest.approx(time.time() + fake.expires_in, abs=5)
    assert api_call.authorization == f"Bearer {ctx.secrets['access_token']}"


async def test_concurrent_deliveries_share_one_refresh(fake, provider_settings, exchange):
    config = valid_config(hubspot, {}, provider_settings)
    secrets = connected(fake, "hubspot", expires_in=30)
    process_state: dict = {}  # what the runtime shares between the deliveries of one process
    ctxs = [make_ctx(config, hubspot.sample_payload("x"), secrets=dict(secrets), settings=provider_settings,
                     shared=process_state) for _ in range(5)]
    outcomes = await asyncio.gather(*(hubspot.deliver(ctx, exchange) for ctx in ctxs))
    assert all(o.success for o in outcomes), [o.error for o in outcomes]
    token_calls = [r for r in fake.requests if r.path == "/hubspot/oauth/v1/token"]
    assert len(token_calls) == 1
    assert len({ctx.secrets["access_token"] for ctx in ctxs}) == 1
    assert all(ctx.secrets_changed for ctx in ctxs)
    # A later delivery still holding the old refresh token gets the same new tokens, without a call.
    late = make_ctx(config, hubspot.sample_payload("x"), secrets=dict(secrets), settings=provider_settings,
                    shared=process_state)
    assert (await hubspot.deliver(late, exchange)).success
    assert len([r for r in fake.requests if r.path == "/hubspot/oauth/v1/token"]) == 1
    assert late.secrets["access_token"] == ctxs[0].secrets["access_token"]


async def test_refresh_on_401_then_success(fake, provider_settings, exchange):
    config = valid_config(hubspot, {}, provider_settings)
    secrets = connected(fake, "hubspot")
    fake.expire(secrets["access_token"])  # revoked early: our stored expiry still looks fine
    ctx = make_ctx(config, hubspot.sample_payload("x"), secrets=secrets, settings=provider_settings)
    outcome = await hubspot.deliver(ctx, exchange)
    assert outcome.success, outcome.error
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == ["upsert", "token", "upsert"]
    assert fake.requests[0].authorization == f"Bearer {secrets['access_token']}"
    assert fake.requests[2].authorization == f"Bearer {ctx.secrets['access_token']}"
    assert fake.requests[0].json == fake.requests[2].json
    assert ctx.secrets_changed


async def test_failed_refresh_needs_reauth(fake, provider_settings, exchange):
    config = valid_config(hubspot, {}, provider_settings)
    secrets = connected(fake, "hubspot", expires_in=10)
    fake.revoke_refresh(secrets["refresh_token"])
    ctx = make_ctx(config, hubspot.sample_payload("x"), secrets=secrets, settings=provider_settings)
    outcome = await hubspot.deliver(ctx, exchange)
    assert not outcome.success and outcome.needs_reauth and not outcome.retryable
    assert "refresh failed (HTTP 400)" in outcome.error and "unknown token" in outcome.error
    assert not ctx.secrets_changed
    assert [r.path for r in fake.requests] == ["/hubspot/oauth/v1/token"]


async def test_401_after_refresh_needs_reauth(fake, provider_settings, exchange):
    config = valid_config(hubspot, {}, provider_settings)
    secrets = connected(fake, "hubspot")
    fake.expire(secrets["access_token"])
    fake.answer_next("/hubspot/crm/v3/objects/contacts/batch/upsert", 401, body={"message": "nope"})
    fake.answer_next("/hubspot/crm/v3/objects/contacts/batch/upsert", 401, body={"message": "still nope"})
    outcome = await hubspot.deliver(
        make_ctx(config, hubspot.sample_payload("x"), secrets=secrets, settings=provider_settings), exchange
    )
    assert outcome.needs_reauth and not outcome.retryable and "still nope" in outcome.error
    assert len(fake.requests) == 3  # call, one refresh, one retry: no loop


async def test_rate_limit_and_server_errors(fake, provider_settings, exchange):
    config = valid_config(hubspot, {}, provider_settings)
    secrets = connected(fake, "hubspot")
    path = "/hubspot/crm/v3/objects/contacts/batch/upsert"
    fake.answer_next(
        path, 429, {"Retry-After": "7"}, {"status": "error", "message": "You have reached your secondly limit."}
    )
    limited = await hubspot.deliver(
        make_ctx(config, hubspot.sample_payload("x"), secrets=secrets, settings=provider_settings), exchange
    )
    assert not limited.success and limited.retry_after == 7 and limited.retryable
    assert "secondly limit" in limited.error
    fake.answer_next(path, 502, body={"message": "bad gateway"})
    failed = await hubspot.deliver(
        make_ctx(config, hubspot.sample_payload("x"), secrets=secrets, settings=provider_settings), exchange
    )
    assert not failed.success and failed.retryable
    fake.answer_next(
        path, 400, body={"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR"}
    )
    rejected = await hubspot.deliver(
        make_ctx(config, hubspot.sample_payload("x"), secrets=secrets, settings=provider_settings), exchange
    )
    assert not rejected.retryable and "Property values were not valid" in rejected.error
