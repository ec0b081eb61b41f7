"""The OAuth 2 authorization-code flow that connects HubSpot, Pipedrive and Google Sheets.

`start` validates what the user asked for, keeps it (with the PKCE verifier) in Redis under
the state's nonce and returns the provider URL. `finish` checks the signed state, takes the
pending request out of Redis exactly once and exchanges the code; `store` keeps the tokens encrypted.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from app.config import Settings
from app.core.errors import CommonErrorCode, FieldError, IntegrationErrorCode
from app.core.http import HttpExchange
from app.core.secret_box import ensure_secret_key
from app.delivery.runtime import Runtime
from app.delivery.unit import Unit
from app.integrations import oauth
from app.integrations.registry import get_kind
from app.integrations.templates import split_template
from app.models import Integration, IntegrationScope, IntegrationStatus, Workspace
from app.services.deliveries import release_held
from app.services.result import Done
from app.services.validation import split_common, with_common

PENDING_KEY = "hookyard:oauth:{}"


def state_key(settings: Settings) -> bytes:
    return hashlib.sha256(b"oauth-state:" + ensure_secret_key(settings).encode()).digest()


def callback_url(settings: Settings, type_name: str) -> str:
    return f"{settings.base_url}/oauth/{type_name.lower()}/callback"


def _valid_redirect(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


async def start(
    unit: Unit, workspace: Workspace, type_name: str, redirect_to: str, *,
    name: str | None, config: Any, integration: Integration | None,
) -> Done[str]:
    """The provider URL to send the browser to; what was asked for waits in Redis under the state."""
    redis, settings = unit.runtime.redis, unit.runtime.settings
    kind = get_kind(type_name)
    if kind is None or kind.auth != "oauth2":
        return Done.refused(FieldError("type", f"{type_name} does not connect through OAuth",
                                       CommonErrorCode.NOT_SUPPORTED))
    provider = oauth.provider_for(kind.type, settings)
    if provider is None:
        return Done.refused(FieldError("type", kind.unavailable_reason(settings) or "not configured",
                                       IntegrationErrorCode.TYPE_UNAVAILABLE))
    errors: list[FieldError] = []
    if not _valid_redirect(redirect_to):
        errors.append(FieldError("redirectTo", "must be an absolute http(s) URL", IntegrationErrorCode.INVALID_URL))
    base_config = dict(integration.config) if integration else {}
    if isinstance(config, dict):
        base_config.update(config)
    elif config is not None:
        errors.append(FieldError("config", "must be a JSON object"))
    base_config, common, timeout_errors = split_common(base_config)
    base_config, _, template_errors = split_template(kind, base_config)  # no OAuth type takes one
    timeout_errors += template_errors
    validated = kind.validate(base_config, {}, existing_secrets=None, settings=settings)
    errors += timeout_errors + validated.errors
    if errors:
        return Done.refused(*errors)
    verifier, challenge = oauth.make_pkce() if provider.pkce else (None, None)
    state = oauth.make_state({"t": kind.type}, state_key(settings), settings.oauth_state_ttl_seconds)
    pending = {
        "workspace_id": workspace.id, "type": kind.type, "integration_id": integration.id if integration else None,
        "name": name or (integration.name if integration else kind.label),
        "config": with_common(validated.config, common),
        "redirect_to": redirect_to, "verifier": verifier,
    }
    await redis.set(PENDING_KEY.format(oauth.state_nonce(state)), orjson.dumps(pending),
                    ex=settings.oauth_state_ttl_seconds)
    return Done(oauth.authorization_url(provider, callback_url(settings, kind.type), state, challenge))


@dataclass
class Finished:
    redirect: str | None  # where to send the browser; None when the state itself is bad
    error: str | None = None
    pending: dict | None = None  # what `start` kept, when the code was exchanged for tokens
    tokens: oauth.TokenSet | None = None


def _back(redirect_to: str, **params: str) -> str:
    sep = "&" if urlsplit(redirect_to).query else "?"
    return f"{redirect_to}{sep}{urlencode(params)}"


async def finish(runtime: Runtime, type_slug: str, params: dict[str, str]) -> Finished:
    """The provider's redirect back: checks the state (once), exchanges the code. Nothing is stored
    yet, and no transaction is open while the token endpoint answers; `store` comes next."""
    settings = runtime.settings
    try:
        claims = oauth.read_state(params.get("state", ""), state_key(settings), time.time())
    except oauth.OAuthStateError as exc:
        return Finished(redirect=None, error=f"invalid OAuth state: {exc}")
    raw = await runtime.redis.getdel(PENDING_KEY.format(oauth.state_nonce(params["state"])))
    if raw is None:
        return Finished(redirect=None, error="this OAuth state was already used or has expired")
    pending = orjson.loads(raw)
    if claims.get("t") != pending["type"] or pending["type"].lower() != type_slug.lower():
        return Finished(redirect=None, error="the OAuth state belongs to another integration type")
    back = pending["redirect_to"]
    if params.get("error"):
        return Finished(redirect=_back(back, status="error", error=params["error"]), error=params["error"])
    provider = oauth.provider_for(pending["type"], settings)
    if provider is None or not params.get("code"):
        return Finished(redirect=_back(back, status="error", error="missing_code"), error="missing code")
    try:
        exchange = HttpExchange(runtime.session, settings.allowed_networks, settings.request_timeout)
        tokens = await oauth.exchange_code(exchange, provider, params["code"],
                                           callback_url(settings, pending["type"]), pending["verifier"])
    except oauth.OAuthError as exc:
        return Finished(redirect=_back(back, status="error", error=exc.code or "token_exchange_failed"),
                        error=str(exc))
    return Finished(redirect=back, pending=pending, tokens=tokens)


async def store(unit: Unit, finished: Finished) -> Done[str]:
    """Creates (or reconnects) the integration with the tokens, releases what it held, and answers
    where to send the browser."""
    pending, tokens, box = finished.pending, finished.tokens, unit.runtime.box
    # A choice made after consenting (the Google Sheets spreadsheet) may still be missing: hold until it is made.
    ready = get_kind(pending["type"]).needs_setup(pending["config"]) is None
    status = IntegrationStatus.ACTIVE if ready else IntegrationStatus.NEEDS_SETUP
    integration = None
    if pending["integration_id"]:
        integration = await Integration.get_or_none(id=pending["integration_id"],
                                                    workspace_id=pending["workspace_id"])
    if integration is None:
        integration = await Integration.create(
            workspace_id=pending["workspace_id"], type=pending["type"], name=pending["name"],
            config=pending["config"], secrets_encrypted=box.seal(tokens.to_secrets()), events=["*"],
            scope=IntegrationScope.WORKSPACE, status=status,
        )
    else:
        secrets = box.open(integration.secrets_encrypted)
        secrets.update(tokens.to_secrets())
        integration.secrets_encrypted = box.seal(secrets)
        integration.config = pending["config"]
        integration.status = status
        integration.failing_since = None
        await integration.save()
    if ready:
        await release_held(unit, integration)
    return Done(_back(pending["redirect_to"], status="connected", integrationId=integration.id))
