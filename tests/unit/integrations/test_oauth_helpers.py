from __future__ import annotations

import base64
import hashlib
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from app.config import Settings
from app.integrations.oauth import (
    OAuthError,
    OAuthStateError,
    TokenSet,
    authorization_url,
    exchange_code,
    make_pkce,
    make_state,
    provider_for,
    read_state,
    refresh,
    refresh_request,
    state_nonce,
)
from app.integrations.registry import get_kind
from tests.fakes.providers import CLIENTS

KEY = b"k" * 32


def test_state_round_trip_and_nonce():
    state = make_state({"workspace": "acme", "type": "HUBSPOT"}, KEY, 600)
    assert read_state(state, KEY, time.time()) == {"workspace": "acme", "type": "HUBSPOT"}
    other = make_state({"workspace": "acme", "type": "HUBSPOT"}, KEY, 600)
    assert state_nonce(state) != state_nonce(other) and len(state_nonce(state)) >= 16
    assert re.fullmatch(r"[A-Za-z0-9_\-.]+", state)  # safe in a query string unescaped


def test_state_expires():
    state = make_state({"a": 1}, KEY, 600, now=1000.0)
    assert read_state(state, KEY, 1599.0) == {"a": 1}
    with pytest.raises(OAuthStateError, match="expired"):
        read_state(state, KEY, 1600.0)


def test_state_rejects_tampering_and_wrong_key():
    state = make_state({"workspace": "acme"}, KEY, 600)
    body, sig = state.split(".")
    forged_body = (
        base64.urlsafe_b64encode(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).replace(b"acme", b"evil"))
        .rstrip(b"=")
        .decode()
    )
    for bad in (f"{forged_body}.{sig}", f"{body}.{sig[:-2]}AA", state + "x"):
        with pytest.raises(OAuthStateError):
            read_state(bad, KEY, time.time())
    with pytest.raises(OAuthStateError):
        read_state(state, b"other-key" * 4, time.time())
    for junk in ("", "abc", "a.b.c", "!!!.???"):
        with pytest.raises(OAuthStateError):
            read_state(junk, KEY, time.time())


def test_pkce_s256():
    verifier, challenge = make_pkce()
    assert 43 <= len(verifier) <= 128 and re.fullmatch(r"[A-Za-z0-9\-._~]+", verifier)
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected
    assert make_pkce()[0] != verifier


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


def test_token_set_secrets_round_trip():
    tokens = TokenSet("at", "rt", 123.5, {"scope": "x"})
    assert tokens.to_secrets() == {"access_token": "at", "refresh_token": "rt", "expires_at": 123.5}
    back = TokenSet.from_secrets({**tokens.to_secrets(), "signing_secret": "ignored"})
    assert (back.access_token, back.refresh_token, back.expires_at) == ("at", "rt", 123.5)
    assert TokenSet.from_secrets({}) is None


def test_token_request_log_body_masks_secrets():
    settings = Settings(hubspot_client_id="hid", hubspot_client_secret="topsecret")
    request = refresh_request(provider_for("HUBSPOT", settings), "my-refresh-token")
    assert b"topsecret" in request.body and b"my-refresh-token" in request.body
    assert b"topsecret" not in request.log_body and b"my-refresh-token" not in request.log_body
    assert request.mask_response_body


async def test_google_code_exchange_with_pkce(fake, provider_settings, session):
    provider = provider_for("GOOGLE_SHEETS", provider_settings)
    verifier, challenge = make_pkce()
    code = fake.issue_code("google", "https://h.example/cb", challenge)
    tokens = await exchange_code(session, provider, code, "https://h.example/cb", verifier)
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
    refreshed = await refresh(session, provider, tokens.refresh_token)
    assert refreshed.access_token != tokens.access_token
    assert refreshed.refresh_token == tokens.refresh_token  # Google omits it on refresh


async def test_wrong_pkce_verifier_is_refused(fake, provider_settings, session):
    provider = provider_for("GOOGLE_SHEETS", provider_settings)
    _, challenge = make_pkce()
    code = fake.issue_code("google", "https://h.example/cb", challenge)
    with pytest.raises(OAuthError) as info:
        await exchange_code(session, provider, code, "https://h.example/cb", make_pkce()[0])
    assert info.value.status == 400 and info.value.code == "invalid_grant"
    assert "expired or revoked" in info.value.message


async def test_pipedrive_uses_basic_auth(fake, provider_settings, session):
    provider = provider_for("PIPEDRIVE", provider_settings)
    code = fake.issue_code("pipedrive", "https://h.example/cb")
    tokens = await exchange_code(session, provider, code, "https://h.example/cb", None)
    recorded = fake.requests[-1]
    assert recorded.authorization == "Basic " + base64.b64encode(b"pd-client:pd-secret").decode()
    assert "client_secret" not in recorded.form
    assert tokens.extra["api_domain"].endswith("/pipedrive")


async def test_hubspot_code_exchange_and_bad_refresh(fake, provider_settings, session):
    provider = provider_for("HUBSPOT", provider_settings)
    code = fake.issue_code("hubspot", "https://h.example/cb")
    tokens = await exchange_code(session, provider, code, "https://h.example/cb", None)
    assert fake.requests[-1].path == "/hubspot/oauth/v1/token"
    assert fake.requests[-1].form["client_secret"] == CLIENTS["hubspot"][1]
    with pytest.raises(OAuthError) as info:
        await exchange_code(session, provider, code, "https://h.example/cb", None)  # codes are single-use
    assert info.value.status == 400
    fake.revoke_refresh(tokens.refresh_token)
    with pytest.raises(OAuthError):
        await refresh(session, provider, tokens.refresh_token)


async def test_fake_authorize_redirects_with_code_and_state(fake, provider_settings, session):
    provider = provider_for("GOOGLE_SHEETS", provider_settings)
    verifier, challenge = make_pkce()
    url = authorization_url(provider, "https://h.example/cb", "the-state", challenge)
    async with session.get(url, allow_redirects=False) as response:
        assert response.status == 302
        location = parse_qs(urlsplit(response.headers["Location"]).query)
    assert location["state"] == ["the-state"]
    tokens = await exchange_code(session, provider, location["code"][0], "https://h.example/cb", verifier)
    assert tokens.access_token
