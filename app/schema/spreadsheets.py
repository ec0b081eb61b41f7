"""`integrationSpreadsheets`: the spreadsheets a Google Sheets integration's account can choose from.

Connecting Google Sheets without a spreadsheet leaves the integration NEEDS_SETUP; the account picks one
from this list and sets it with `integrationUpdate(config: {spreadsheet_id})`.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.schema.context import Info
from app.schema.errors import ApiError, BadInput
from app.schema.queries import load_integration
from app.services import spreadsheets


class ProviderError(ApiError):
    """The provider (Google) refused or failed the call; the message says what it answered."""

    code = "PROVIDER_ERROR"


@strawberry.type(description="A spreadsheet of the connected Google account.")
class Spreadsheet:
    id: strawberry.ID = strawberry.field(description="the spreadsheet id, the value of config.spreadsheet_id")
    name: str = strawberry.field(description="the spreadsheet's title")
    modified_time: str | None = strawberry.field(
        description="when it was last modified (RFC 3339, as Google Drive reports it)")
    url: str = strawberry.field(description="where it opens in Google Sheets")


@strawberry.type
class SpreadsheetQueries:
    @strawberry.field(description="The spreadsheets of a Google Sheets integration's account, most recently "
                                  "modified first (at most 100): choose one and set it with integrationUpdate "
                                  "(config.spreadsheet_id). Google's failures answer PROVIDER_ERROR.")
    async def integration_spreadsheets(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="a GOOGLE_SHEETS integration")],  # noqa: A002
        search: Annotated[str | None, strawberry.argument(description="only names containing this text")] = None,
    ) -> list[Spreadsheet]:
        integration = await load_integration(info, id)
        done = await spreadsheets.list_spreadsheets(info.context.runtime, integration, search)
        if not done.ok:
            error = done.errors[0]
            raise (BadInput(f"{error.field}: {error.message}") if error.field else ProviderError(error.message))
        return [Spreadsheet(id=s.id, name=s.name, modified_time=s.modified_time, url=s.url) for s in done.value]
