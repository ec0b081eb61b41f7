"""HubSpot, Pipedrive and Google Sheets deliveries against the fake providers, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from app.config import Settings
from app.integrations.google_sheets import GoogleSheetsKind
from app.integrations.hubspot import HubSpotKind
from app.integrations.pipedrive import PipedriveKind
from tests.fakes.providers import CLIENTS
from tests.unit.integrations.helpers import make_ctx

hubspot, pipedrive, sheets = HubSpotKind(), PipedriveKind(), GoogleSheetsKind()
SHEET_ID = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"


def valid_config(kind, config, settings):
    validated = kind.validate(config, {}, existing_secrets=None, settings=settings)
    assert validated.errors == []
    return validated.config


def connected(fake, provider, **kw):
    tokens = fake.issue_tokens(provider, **kw)
    return {k: tokens[k] for k in ("access_token", "refresh_token", "expires_at")}


# ------------------------------------------------------------------ HubSpot


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
    assert exchange.sent[0].secret_headers == frozenset({"authorization"})

    payload["post"]["author"]["name"] = "Augusta Ada"
    assert (
        await hubspot.deliver(make_ctx(config, payload, secrets=secrets, settings=provider_settings), exchange)
    ).success
    assert list(fake.contacts) == ["ada@example.com"]
    assert fake.contacts["ada@example.com"]["properties"]["firstname"] == "Augusta Ada"


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
    assert exchange.sent == []


# ------------------------------------------------------------------ Pipedrive


async def test_pipedrive_person_and_deal(fake, provider_settings, exchange):
    config = valid_config(
        pipedrive,
        {"mapping": {"name": "fields.name", "email": "fields.email"}, "deal_title": "title", "note": True},
        provider_settings,
    )
    secrets = connected(fake, "pipedrive")
    payload = pipedrive.sample_payload("session.completed")
    outcome = await pipedrive.deliver(make_ctx(config, payload, secrets=secrets, settings=provider_settings), exchange)
    assert outcome.success, outcome.error
    search, person, deal, note = fake.requests
    assert (search.method, search.path) == ("GET", "/pipedrive/api/v2/persons/search")
    assert search.query == {"term": "ada@example.com", "fields": "email", "exact_match": "true", "limit": "1"}
    assert (person.method, person.path) == ("POST", "/pipedrive/api/v2/persons")
    assert person.json == {
        "name": "Ada Lovelace",
        "emails": [{"value": "ada@example.com", "primary": True, "label": "work"}],
    }
    person_id = next(iter(fake.persons))
    assert (deal.path, deal.json) == ("/pipedrive/api/v2/deals", {"title": "Sample submission", "person_id": person_id})
    assert note.path == "/pipedrive/v1/notes" and note.json["person_id"] == person_id
    assert note.json["content"].startswith("<b>session.completed</b>")
    assert all(r.authorization == f"Bearer {secrets['access_token']}" for r in fake.requests)

    fake.requests.clear()
    again = await pipedrive.deliver(make_ctx(config, payload, secrets=secrets, settings=provider_settings), exchange)
    assert again.success and len(fake.persons) == 1  # found by email, not duplicated
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == ["search", "deals", "notes"]
    assert len(fake.deals) == 2


async def test_pipedrive_refresh_uses_basic_auth(fake, provider_settings, exchange):
    config = valid_config(pipedrive, {}, provider_settings)
    secrets = connected(fake, "pipedrive", expires_in=0)
    ctx = make_ctx(config, pipedrive.sample_payload("x"), secrets=secrets, settings=provider_settings)
    outcome = await pipedrive.deliver(ctx, exchange)
    assert outcome.success, outcome.error
    token_call = fake.requests[0]
    assert token_call.path == "/pipedrive/oauth/token"
    assert token_call.authorization == "Basic " + base64.b64encode(b"pd-client:pd-secret").decode()
    assert token_call.form == {"grant_type": "refresh_token", "refresh_token": secrets["refresh_token"]}
    assert ctx.secrets_changed and fake.requests[1].authorization == f"Bearer {ctx.secrets['access_token']}"
    # default config: person only
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests[1:]] == ["search", "persons"]


async def test_pipedrive_error_message_is_reported(fake, provider_settings, exchange):
    config = valid_config(pipedrive, {}, provider_settings)
    secrets = connected(fake, "pipedrive")
    fake.answer_next(
        "/pipedrive/api/v2/persons", 400, body={"success": False, "error": "Name is too long", "error_info": "see docs"}
    )
    outcome = await pipedrive.deliver(
        make_ctx(config, pipedrive.sample_payload("x"), secrets=secrets, settings=provider_settings), exchange
    )
    assert not outcome.retryable and "Name is too long" in outcome.error


# ------------------------------------------------------------------ Google Sheets


async def test_sheets_appends_a_row(fake, provider_settings, exchange):
    fake.sheets[SHEET_ID] = []
    config = valid_config(
        sheets,
        {
            "spreadsheet_id": f"https://docs.google.com/spreadsheets/d/{SHEET_ID}/edit",
            "range": "'Form answers'!A:F",
            "columns": ["$timestamp", "$event", "fields.name", "fields.rating", "missing.path", "comment"],
        },
        provider_settings,
    )
    assert config["spreadsheet_id"] == SHEET_ID
    secrets = connected(fake, "google")
    payload = {**sheets.sample_payload("x"), "comment": '=HYPERLINK("http://evil")'}
    outcome = await sheets.deliver(make_ctx(config, payload, secrets=secrets, settings=provider_settings), exchange)
    assert outcome.success, outcome.error
    call = fake.requests[-1]
    assert (call.method, call.path) == ("POST", f"/sheets/v4/spreadsheets/{SHEET_ID}/values/'Form answers'!A:F:append")
    assert call.query == {"valueInputOption": "USER_ENTERED", "insertDataOption": "INSERT_ROWS"}
    assert call.authorization == f"Bearer {secrets['access_token']}"
    row = ["2026-01-02T03:04:05Z", "session.completed", "Ada Lovelace", 5, "", '\'=HYPERLINK("http://evil")']
    assert call.json == {"values": [row]}
    assert fake.sheets[SHEET_ID] == [row]


async def test_sheets_errors(fake, provider_settings, exchange):
    config = valid_config(sheets, {"spreadsheet_id": SHEET_ID}, provider_settings)
    secrets = connected(fake, "google")
    missing = await sheets.deliver(
        make_ctx(config, sheets.sample_payload("x"), secrets=secrets, settings=provider_settings), exchange
    )
    assert not missing.retryable and "Requested entity was not found" in missing.error
    fake.sheets[SHEET_ID] = []
    fake.answer_next(
        f"/sheets/v4/spreadsheets/{SHEET_ID}/values/Sheet1!A:Z:append",
        429,
        {"Retry-After": "12"},
        {"error": {"code": 429, "message": "Quota exceeded"}},
    )
    limited = await sheets.deliver(
        make_ctx(config, sheets.sample_payload("x"), secrets=secrets, settings=provider_settings), exchange
    )
    assert limited.retry_after == 12 and limited.retryable and "Quota exceeded" in limited.error


async def test_google_refresh_keeps_refresh_token(fake, provider_settings, exchange):
    fake.sheets[SHEET_ID] = []
    config = valid_config(sheets, {"spreadsheet_id": SHEET_ID}, provider_settings)
    secrets = connected(fake, "google")
    fake.expire(secrets["access_token"])
    ctx = make_ctx(config, sheets.sample_payload("x"), secrets=secrets, settings=provider_settings)
    assert (await sheets.deliver(ctx, exchange)).success
    assert ctx.secrets["refresh_token"] == secrets["refresh_token"]
    assert len(fake.sheets[SHEET_ID]) == 1


# ------------------------------------------------------------------ validation


def errors_of(kind, config, secrets=None, existing=None):
    validated = kind.validate(config, secrets or {}, existing_secrets=existing, settings=Settings())
    return {(e.field, e.code) for e in validated.errors}, validated


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


def test_tokens_cannot_be_set_through_validate():
    existing = {"access_token": "at", "refresh_token": "rt", "expires_at": 1.0}
    errors, validated = errors_of(hubspot, {}, secrets={"access_token": "mine"}, existing=existing)
    assert errors == {("secrets.access_token", "NOT_ALLOWED")}
    assert validated.secrets == existing
    ok, validated = errors_of(pipedrive, {}, existing=existing)
    assert ok == set() and validated.secrets == existing


def test_pipedrive_config_errors_and_defaults():
    errors, _ = errors_of(
        pipedrive, {"mapping": {"email": "fields.email", "org": "x"}, "deal_title": "a b", "note": "yes"}
    )
    assert errors == {
        ("config.mapping.name", "REQUIRED"),
        ("config.mapping.org", "INVALID"),
        ("config.deal_title", "INVALID_PATH"),
        ("config.note", "INVALID"),
    }
    ok, validated = errors_of(pipedrive, {})
    assert ok == set()
    assert validated.config == {
        "mapping": {"name": "fields.name", "email": "fields.email"},
        "deal_title": None,
        "note": False,
    }
    assert errors_of(pipedrive, validated.config)[0] == set()  # its own output validates again


@pytest.mark.parametrize("rng", ["Sheet1!A:Z", "A1:B2", "Sheet1", "'My sheet'!A1", "'It''s'!A:C", "Data!1:3"])
def test_sheets_accepts_a1_ranges(rng):
    assert errors_of(sheets, {"spreadsheet_id": SHEET_ID, "range": rng})[0] == set()


def test_sheets_config_errors():
    errors, _ = errors_of(sheets, {"range": "Sheet 1!A:Z", "columns": ["fields.name", "", "a..b"], "x": 1})
    assert errors == {
        ("config.spreadsheet_id", "REQUIRED"),
        ("config.range", "INVALID"),
        ("config.columns.1", "REQUIRED"),
        ("config.columns.2", "INVALID_PATH"),
        ("config.x", "UNKNOWN_FIELD"),
    }
    assert errors_of(sheets, {"spreadsheet_id": "short", "columns": []})[0] == {
        ("config.spreadsheet_id", "INVALID"),
        ("config.columns", "INVALID"),
    }


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
