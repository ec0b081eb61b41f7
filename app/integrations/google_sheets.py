"""Google Sheets: append one row per event.

``POST /v4/spreadsheets/{id}/values/{range}:append?valueInputOption=USER_ENTERED&insertDataOption=INSERT_ROWS``
with ``{"values": [[...]]}``. USER_ENTERED lets dates and numbers parse as the sheet
expects, so text that would start a formula is prefixed with an apostrophe.

The spreadsheet may be chosen after consenting: without ``spreadsheet_id`` the integration needs
setup (`needs_setup`), and `list_spreadsheets` lists the account's spreadsheets through the Drive v3
API (``GET /drive/v3/files``) with the stored token, for the account to pick one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from app.config import Settings
from app.core.errors import CommonErrorCode, FieldError
from app.integrations.base import ConfigField, DeliveryContext, Outcome
from app.integrations.field_mapping import as_text, resolve_path, unknown_fields, validate_path
from app.integrations.oauth_caller import TokenCaller, payload_problem
from app.integrations.oauth_client import OAuthProvider
from app.integrations.oauth_kind import OAuthKind

DEFAULT_RANGE = "Sheet1!A:Z"
DEFAULT_COLUMNS = ["$timestamp", "$event", "fields.name", "fields.email"]
MAX_COLUMNS = 100
MAX_CELL = 50_000  # Google Sheets' per-cell character limit
SPREADSHEET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{10,128}$")
SPREADSHEET_URL_RE = re.compile(r"/spreadsheets/d/([A-Za-z0-9_-]{10,128})")
_SHEET = r"(?:'(?:[^']|'')+'|[A-Za-z0-9_]+)"
_CELL = r"(?:[A-Za-z]{1,3}[0-9]{0,7}|[0-9]{1,7})"
A1_RE = re.compile(rf"^(?:{_SHEET}!)?{_CELL}(?::{_CELL})?$|^{_SHEET}$")
FORMULA_STARTS = ("=", "+", "-", "@")
# drive.metadata.readonly lists the account's spreadsheets (names and dates, never their contents) to pick one.
SCOPES = ("https://www.googleapis.com/auth/spreadsheets", "https://www.googleapis.com/auth/drive.metadata.readonly")
SPREADSHEET_MIME = "application/vnd.google-apps.spreadsheet"
LIST_PAGE_SIZE = 100
MAX_SEARCH = 200
NEEDS_SPREADSHEET = "choose a spreadsheet (integrationSpreadsheets lists them) and set config.spreadsheet_id"


class GoogleSheetsKind(OAuthKind):
    type = "GOOGLE_SHEETS"
    label = "Google Sheets"
    env_name = "GOOGLE"
    config_fields = (
        ConfigField(
            "spreadsheet_id",
            "Spreadsheet",
            "string",
            description="spreadsheet id or its docs.google.com URL; may be chosen after connecting",
        ),
        ConfigField("range", "Range", "string", description=f"A1 notation, default {DEFAULT_RANGE}"),
        ConfigField(
            "columns",
            "Columns",
            "mapping",
            description="payload paths, one per column; $event and $timestamp are special",
        ),
    )

    @classmethod
    def oauth_app(cls, settings: Settings) -> OAuthProvider | None:
        if not (settings.google_client_id and settings.google_client_secret):
            return None
        return OAuthProvider(
            type_name=cls.type,
            auth_url=settings.google_auth_url,
            token_url=settings.google_token_url,
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret,
            scopes=SCOPES,
            pkce=True,
            # offline + consent: Google only returns a refresh token on a consent screen.
            extra_auth_params={"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
        )

    def validate_config(self, config: dict[str, Any], settings: Settings) -> tuple[dict[str, Any], list[FieldError]]:
        spreadsheet_id, errors = _spreadsheet_id(config.pop("spreadsheet_id", None))
        range_, range_error = _range(config.pop("range", DEFAULT_RANGE))
        columns, column_errors = _columns(config.pop("columns", DEFAULT_COLUMNS))
        errors += ([range_error] if range_error else []) + column_errors + unknown_fields(config)
        return {"spreadsheet_id": spreadsheet_id, "range": range_, "columns": columns}, errors

    def needs_setup(self, config: dict[str, Any]) -> str | None:
        return None if config.get("spreadsheet_id") else NEEDS_SPREADSHEET

    async def send_event(self, ctx: DeliveryContext, caller: TokenCaller, settings: Settings) -> Outcome:
        if not ctx.config.get("spreadsheet_id"):
            return Outcome(success=False, error=NEEDS_SPREADSHEET, retryable=False)
        await caller.call_ok("POST", append_url(settings, ctx.config), {"values": [row(ctx)]})
        return Outcome(success=True)


def append_url(settings: Settings, config: dict[str, Any]) -> str:
    api = settings.google_sheets_api_url.rstrip("/")
    target = quote(config["range"], safe="!:")
    return (
        f"{api}/v4/spreadsheets/{config['spreadsheet_id']}/values/{target}:append"
        "?valueInputOption=USER_ENTERED&insertDataOption=INSERT_ROWS"
    )


@dataclass(frozen=True)
class Spreadsheet:
    id: str
    name: str
    modified_time: str | None
    url: str


def list_url(settings: Settings, search: str | None, page_size: int = LIST_PAGE_SIZE) -> str:
    """Drive v3 files.list: the account's spreadsheets not in the trash, most recently modified first."""
    q = f"mimeType='{SPREADSHEET_MIME}' and trashed=false"
    if search:  # Drive's query language: backslash and single quote are escaped with a backslash
        escaped = search.replace("\\", "\\\\").replace("'", "\\'")
        q += f" and name contains '{escaped}'"
    params = {"q": q, "fields": "files(id,name,modifiedTime,webViewLink),nextPageToken",
              "orderBy": "modifiedTime desc", "pageSize": str(page_size)}
    return f"{settings.google_drive_api_url.rstrip('/')}/drive/v3/files?{urlencode(params)}"


async def list_spreadsheets(caller: TokenCaller, settings: Settings, search: str | None = None) -> list[Spreadsheet]:
    """The first page of the account's spreadsheets (narrow it with `search`, part of the name).
    A failed call raises StopDelivery with the provider's answer as its outcome."""
    await caller.ensure_fresh()
    body = (await caller.call_ok("GET", list_url(settings, search))).json()
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list):
        raise payload_problem("Google Drive answered without a list of files")
    found = []
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not SPREADSHEET_ID_RE.match(item["id"]):
            continue
        modified = item.get("modifiedTime")
        link = item.get("webViewLink")
        found.append(Spreadsheet(
            id=item["id"], name=str(item.get("name") or item["id"]),
            modified_time=modified if isinstance(modified, str) else None,
            url=link if isinstance(link, str) and link.startswith("https://")
            else f"https://docs.google.com/spreadsheets/d/{item['id']}/edit",
        ))
    return found


def row(ctx: DeliveryContext) -> list[Any]:
    return [cell(resolve_path(ctx, path)) for path in ctx.config["columns"]]


def cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = (as_text(value) or "")[:MAX_CELL]
    if text.startswith(FORMULA_STARTS) and not _is_number(text):
        return "'" + text[: MAX_CELL - 1]
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _spreadsheet_id(value: Any) -> tuple[str | None, list[FieldError]]:
    path = "config.spreadsheet_id"
    if not value:  # chosen later: the integration needs setup until then
        return None, []
    if isinstance(value, str) and (match := SPREADSHEET_URL_RE.search(value)):
        return match.group(1), []
    if not isinstance(value, str) or not SPREADSHEET_ID_RE.match(value.strip()):
        return None, [FieldError(path, "is not a Google spreadsheet id or URL", CommonErrorCode.INVALID)]
    return value.strip(), []


def _range(value: Any) -> tuple[str | None, FieldError | None]:
    path = "config.range"
    if not isinstance(value, str) or len(value) > 200 or not A1_RE.match(value.strip()):
        return None, FieldError(path, "must be a range in A1 notation such as Sheet1!A:Z", CommonErrorCode.INVALID)
    return value.strip(), None


def _columns(value: Any) -> tuple[list[str], list[FieldError]]:
    path = "config.columns"
    if not isinstance(value, list) or not value:
        return [], [FieldError(path, "must be a non-empty list of payload paths", CommonErrorCode.INVALID)]
    if len(value) > MAX_COLUMNS:
        return [], [FieldError(path, f"may have at most {MAX_COLUMNS} columns", CommonErrorCode.TOO_LONG)]
    errors = [err for i, item in enumerate(value) if (err := validate_path(item, f"{path}.{i}"))]
    return ([] if errors else list(value)), errors
