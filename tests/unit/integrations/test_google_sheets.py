"""Google Sheets deliveries against the fake provider, over real HTTP, and its config."""

from __future__ import annotations

import pytest

from app.integrations.google_sheets import NEEDS_SPREADSHEET, GoogleSheetsKind, list_spreadsheets
from app.integrations.oauth_caller import StopDelivery, TokenCaller
from tests.unit.integrations.helpers import SHEET_ID, connected, errors_of, make_ctx, valid_config

sheets = GoogleSheetsKind()


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


@pytest.mark.parametrize("rng", ["Sheet1!A:Z", "A1:B2", "Sheet1", "'My sheet'!A1", "'It''s'!A:C", "Data!1:3"])
def test_sheets_accepts_a1_ranges(rng):
    assert errors_of(sheets, {"spreadsheet_id": SHEET_ID, "range": rng})[0] == set()


def test_sheets_config_errors():
    errors, _ = errors_of(sheets, {"range": "Sheet 1!A:Z", "columns": ["fields.name", "", "a..b"], "x": 1})
    assert errors == {
        ("config.range", "INVALID"),
        ("config.columns.1", "REQUIRED"),
        ("config.columns.2", "INVALID_PATH"),
        ("config.x", "UNKNOWN_FIELD"),
    }
    assert errors_of(sheets, {"spreadsheet_id": "short", "columns": []})[0] == {
        ("config.spreadsheet_id", "INVALID"),
        ("config.columns", "INVALID"),
    }


async def test_sheets_without_a_spreadsheet_needs_setup_and_sends_nothing(fake, provider_settings, exchange):
    config = valid_config(sheets, {"range": "Sheet1!A:B"}, provider_settings)  # chosen after consenting
    assert config["spreadsheet_id"] is None and sheets.needs_setup(config) == NEEDS_SPREADSHEET
    assert sheets.needs_setup(valid_config(sheets, {"spreadsheet_id": SHEET_ID}, provider_settings)) is None
    ctx = make_ctx(config, sheets.sample_payload("x"), secrets=connected(fake, "google"), settings=provider_settings)
    outcome = await sheets.deliver(ctx, exchange)
    assert not outcome.success and not outcome.retryable and outcome.error == NEEDS_SPREADSHEET
    assert not fake.calls("/sheets")


async def test_sheets_lists_the_accounts_spreadsheets_through_drive(fake, provider_settings, exchange):
    fake.add_spreadsheet(SHEET_ID, "Leads 2026", "2026-03-01T10:00:00.000Z")
    fake.add_spreadsheet("1OlderSheetIdAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "It's old", "2025-01-01T10:00:00.000Z")
    fake.add_spreadsheet("1TrashedSheetIdAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Leads (old)", trashed=True)
    fake.drive_files.append({"id": "1DocIdAAAAAAAAAAAA", "name": "Leads memo", "trashed": False,
                             "mimeType": "application/vnd.google-apps.document", "modifiedTime": "2026-04-01T00:00:00Z",
                             "webViewLink": "https://docs.google.com/document/d/1DocIdAAAAAAAAAAAA/edit"})
    secrets = connected(fake, "google")
    fake.expire(secrets["access_token"])  # listing refreshes like a delivery does
    ctx = make_ctx({}, None, secrets=secrets, settings=provider_settings)
    caller = TokenCaller(ctx, exchange, sheets.oauth_app(provider_settings), "Google Drive")
    listed = await list_spreadsheets(caller, provider_settings)
    assert [(s.id, s.name) for s in listed] == [(SHEET_ID, "Leads 2026"),
                                                ("1OlderSheetIdAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "It's old")]
    assert listed[0].modified_time == "2026-03-01T10:00:00.000Z" and listed[0].url.startswith("https://docs.google.com/")
    assert ctx.secrets_changed and ctx.secrets["access_token"] != secrets["access_token"]
    call = fake.calls("/drive")[-1]
    assert call.authorization == f"Bearer {ctx.secrets['access_token']}"
    assert call.query["q"] == "mimeType='application/vnd.google-apps.spreadsheet' and trashed=false"
    assert call.query["fields"] == "files(id,name,modifiedTime,webViewLink),nextPageToken"
    assert call.query["orderBy"] == "modifiedTime desc"
    assert [s.name for s in await list_spreadsheets(caller, provider_settings, "it's")] == ["It's old"]

    fake.answer_next("/drive/drive/v3/files", 403, body={"error": {"code": 403, "status": "PERMISSION_DENIED",
                                                                   "message": "Insufficient Permission"}})
    with pytest.raises(StopDelivery) as refused:
        await list_spreadsheets(caller, provider_settings)
    assert "HTTP 403" in refused.value.outcome.error and "Insufficient Permission" in refused.value.outcome.error
