"""The spreadsheets a Google Sheets integration's account can pick from, listed with its stored OAuth token.

The call goes through the same guarded exchange and token caller as deliveries (SSRF guard, no redirects,
the integration's timeout, a refresh a minute before expiry and once on a 401); refreshed tokens are
stored encrypted again. An answer of the provider that says only reconnecting helps marks the
integration NEEDS_REAUTH, as a delivery would.

Errors: a FieldError with a `field` is about the request (the id, the search); one without is the
provider's failure, worded for people.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.core.errors import CommonErrorCode, FieldError, IntegrationErrorCode
from app.core.http import HttpExchange, describe_error
from app.delivery.runtime import Runtime
from app.delivery.sender import request_timeout
from app.integrations import google_sheets
from app.integrations.base import DeliveryContext
from app.integrations.google_sheets import GoogleSheetsKind, Spreadsheet
from app.integrations.oauth_caller import StopDelivery, TokenCaller
from app.integrations.registry import get_kind
from app.models import Integration, IntegrationStatus
from app.services.result import Done


async def list_spreadsheets(runtime: Runtime, integration: Integration, search: str | None) -> Done[list[Spreadsheet]]:
    """The account's spreadsheets, most recently modified first (one page), narrowed by `search`."""
    settings = runtime.settings
    kind = get_kind(integration.type)
    if not isinstance(kind, GoogleSheetsKind):
        return Done.refused(FieldError("id", "only Google Sheets integrations have spreadsheets to list",
                                       CommonErrorCode.NOT_SUPPORTED))
    search = (search or "").strip() or None
    if search is not None and len(search) > google_sheets.MAX_SEARCH:
        return Done.refused(FieldError("search", f"may be at most {google_sheets.MAX_SEARCH} characters",
                                       CommonErrorCode.TOO_LONG))
    provider = kind.oauth_app(settings)
    if provider is None:
        return Done.refused(FieldError("id", kind.unavailable_reason(settings) or "not configured",
                                       IntegrationErrorCode.TYPE_UNAVAILABLE))
    ctx = DeliveryContext(
        delivery_id="", event_type="", payload=None, timestamp=datetime.now(UTC), is_test=False,
        config=dict(integration.config or {}), secrets=runtime.box.open(integration.secrets_encrypted),
        workspace_slug="", integration_name=integration.name, settings=settings, shared=runtime.plugin_state,
    )
    timeout = request_timeout(integration, runtime)
    exchange = HttpExchange(runtime.session, settings.allowed_networks, timeout)
    caller = TokenCaller(ctx, exchange, provider, "Google Drive")
    try:
        found = await google_sheets.list_spreadsheets(caller, settings, search)
    except StopDelivery as stop:
        outcome = stop.outcome
        message = outcome.error or "Google Drive refused the request"
        if outcome.needs_reauth:
            await Integration.filter(id=integration.id).update(status=IntegrationStatus.NEEDS_REAUTH)
            message = f"{message}; reconnect the Google account"
        return await _stored(runtime, integration, ctx, Done.refused(FieldError(None, message)))
    except Exception as exc:  # the network: refused, DNS, timeout, an address the SSRF guard blocks
        last = exchange.records[-1] if exchange.records else None
        message = last.error if last and last.error else describe_error(exc, timeout)
        return await _stored(runtime, integration, ctx, Done.refused(FieldError(None, f"Google Drive: {message}")))
    return await _stored(runtime, integration, ctx, Done(found))


async def _stored(runtime: Runtime, integration: Integration, ctx: DeliveryContext,
                  done: Done[list[Spreadsheet]]) -> Done[list[Spreadsheet]]:
    """Tokens refreshed on the way are kept, whatever the listing answered."""
    if ctx.secrets_changed:
        integration.secrets_encrypted = runtime.box.seal(ctx.secrets)
        await Integration.filter(id=integration.id).update(secrets_encrypted=integration.secrets_encrypted)
    return done
