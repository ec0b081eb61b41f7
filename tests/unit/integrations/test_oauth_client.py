"""The OAuth 2 client: PKCE, provider URLs, and the token endpoint of the fake providers over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from app.config import Settings
from app.core.http import MASK, HttpExchange
from app.core.ssrf import SSRFError
from app.integrations.oauth import provider_for
from app.integrations.oauth_client import (
    OAuthError,
    authorization_url,
    exchange_code,
    make_pkce,
    refresh,
    refresh_request,
)
from tests.fakes.providers import CLIENTS


def test_pkce_s256():
    verifier, challenge = make_pkce()
    assert 43 <= len(verifier) <= 128 and re.fullmatch(r"[A-Za-z0-9\-._~]+", verifier)
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected
    assert make_pkce()[0] != verifier


def test_authorization_urls():
    settings = Settings(
        hubspot_client_id="hid",
        hubspot_client_secret="s",
        google_client_id="gid",
        google_client_secret="s",
        pipedrive_client_id="pid",
        pipedrive_client_secret="s",
    )
    hub = urlsplit(authorization_url(provider_for("HUBSPOT", settings), "https://h.example/cb", "st", None))
    assert f"{hub.scheme}://{hub.netloc}{hub.path}" == "https://app.hubspot.com/oauth/authorize"
    q = parse_qs(hub.query)
    assert q["client_id"] == ["hid"] and q["redirect_uri"] == ["https://h.example/cb"] and q["state"] == ["st"]
    assert q["scope"] == ["crm.objects.contacts.read crm.objects.contacts.write"] and "code_challenge" not in q
    google = parse_qs(
        urlsplit(authorization_url(provider_for("GOOGLE_SHEETS", settings), "https://h.example/cb", "st", "chal")).query
    )
    assert google["code_challenge"] == ["chal"] and google["code_challenge_method"] == ["S256"]
    assert google["access_type"] == ["offline"] and google["response_type"] == ["code"]
    pipedrive = parse_qs(
        urlsplit(authorization_url(provider_for("PIPEDRIVE", settings), "https://h.example/cb", "st", None)).query
    )
    assert pipedrive["client_id"] == ["pid"] and "scope" not in pipedrive


def test_token_request_log_body_masks_secrets():
    settings = Settings(hubspot_client_id="hid", hubspot_client_secret="topsecret")
    request = refresh_request(provider_for("HUBSPOT", settings), "my-refresh-token")
    assert b"topsecret" in request.body and b"my-refresh-token" in request.body
    assert b"topsecret" not in request.log_body and b"my-refresh-token" not in request.log_body
    assert request.mask_response_body


async def test_google_code_exchange_with_pkce(fake, provider_settings, exchange):
    provider = provider_for("GOOGLE_SHEETS", provider_settings)
    verifier, challenge = make_pkce()
    code = fake.issue_code("google", "https://h.example/cb", challenge)
    tokens = await exchange_code(exchange, provider, code, "https://h.example/cb", verifier)
    assert tokens.access_token in fake.access_tokens and tokens.refresh_token in fake.refresh_tokens
    assert tokens.expires_at == pytest.approx(time.time() + fake.expires_in, abs=5)
    form = fake.requests[-1].form
    assert form == {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "https://h.example/cb",
        "code_verifier": verifier,
        "client_id": CLIENTS["google"][0],
        "client_secret": CLIENTS["google"][1],
    }
    refreshed = await refresh(exchange, provider, tokens.refresh_token)
    assert refreshed.access_token != tokens.access_token
    assert refreshed.refresh_token == tokens.refresh_token  # Google omits it on refresh


async def test_wrong_pkce_verifier_is_refused(fake, provider_settings, exchange):
    provider = provider_for("GOOGLE_SHEETS", provider_settings)
    _, challenge = make_pkce()
    code = fake.issue_code("google", "https://h.example/cb", challenge)
    with pytest.raises(OAuthError) as info:
        await exchange_code(exchange, provider, code, "https://h.example/cb", make_pkce()[0])
    assert info.value.status == 400 and info.value.code == "invalid_grant"
    assert "expired or revoked" in info.value.message


async def test_pipedrive_uses_basic_auth(fake, provider_settings, exchange):
    provider = provider_for("PIPEDRIVE", provider_settings)
    code = fake.issue_code("pipedrive", "https://h.example/cb")
    tokens = await exchange_code(exchange, provider, code, "https://h.example/cb", None)
    recorded = fake.requests[-1]
    assert recorded.authorization == "Basic " + base64.b64encode(b"pd-client:pd-secret").decode()
    assert "client_secret" not in recorded.form
    assert tokens.extra["api_domain"].endswith("/pipedrive")


async def test_hubspot_code_exchange_and_bad_refresh(fake, provider_settings, exchange):
    provider = provider_for("HUBSPOT", provider_settings)
    code = fake.issue_code("hubspot", "https://h.example/cb")
    tokens = await exchange_code(exchange, provider, code, "https://h.example/cb", None)
    assert fake.requests[-1].path == "/hubspot/oauth/v1/token"
    assert fake.requests[-1].form["client_secret"] == CLIENTS["hubspot"][1]
    with pytest.raises(OAuthError) as info:
        await exchange_code(exchange, provider, code, "https://h.example/cb", None)  # codes are single-use
    assert info.value.status == 400
    fake.revoke_refresh(tokens.refresh_token)
    with pytest.raises(OAuthError):
        await refresh(exchange, provider, tokens.refresh_token)


async def test_fake_authorize_redirects_with_code_and_state(fake, provider_settings, session, exchange):
    provider = provider_for("GOOGLE_SHEETS", provider_settings)
    verifier, challenge = make_pkce()
    url = authorization_url(provider, "https://h.example/cb", "the-state", challenge)
    async with session.get(url, allow_redirects=False) as response:
        assert response.status == 302
        location = parse_qs(urlsplit(response.headers["Location"]).query)
    assert location["state"] == ["the-state"]
    tokens = await exchange_code(exchange, provider, location["code"][0], "https://h.example/cb", verifier)
    assert tokens.access_token


async def test_code_exchange_log_is_masked(fake, provider_settings, exchange):
    provider = provider_for("HUBSPOT", provider_settings)
    code = fake.issue_code("hubspot", "https://h.example/cb")
    tokens = await exchange_code(exchange, provider, code, "https://h.example/cb", None)
    (record,) = exchange.records
    logged = parse_qs(record.request.log_body.decode())
    assert logged["code"] == ["***"] and logged["client_secret"] == ["***"] and logged["client_id"] == ["hs-client"]
    assert record.status == 200 and record.body == MASK.encode()  # the answer holds the tokens
    assert tokens.access_token.encode() not in record.body


async def test_code_exchange_goes_through_the_ssrf_guard(fake, provider_settings, session):
    provider = provider_for("GOOGLE_SHEETS", provider_settings)  # the fake listens on 127.0.0.1
    code = fake.issue_code("google", "https://h.example/cb")
    guarded = HttpExchange(session, (), 10.0)  # loopback not allowed
    with pytest.raises(SSRFError):
        await exchange_code(guarded, provider, code, "https://h.example/cb", None)
    assert fake.requests == [] and guarded.records[0].error.startswith("blocked:")


async def test_code_exchange_does_not_follow_redirects(fake, provider_settings, exchange):
    provider = provider_for("GOOGLE_SHEETS", provider_settings)
    code = fake.issue_code("google", "https://h.example/cb")
    fake.answer_next("/google/token", 307, {"Location": provider_settings.google_token_url})
    with pytest.raises(OAuthError) as info:
        await exchange_code(exchange, provider, code, "https://h.example/cb", None)
    assert info.value.status == 307 and len(fake.requests) == 1
