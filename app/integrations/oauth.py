"""OAuth 2 authorization-code helpers and the base class of the OAuth CRM types.

Plain functions for the connect flow (signed `state`, PKCE, the provider URL, code
exchange and refresh) plus :class:`OAuthKind`, which keeps tokens fresh while a
HubSpot, Pipedrive or Google Sheets delivery makes its calls.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets as _secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import aiohttp
import orjson

from app.config import Settings
from app.core.errors import CommonErrorCode, FieldError, IntegrationErrorCode
from app.core.http import USER_AGENT, OutgoingRequest
from app.core.retry import header, retry_after
from app.integrations.base import (
    DeliveryContext,
    Exchange,
    IntegrationKind,
    Outcome,
    Validated,
)

REFRESH_MARGIN_SECONDS = 60
MAX_ERROR_LENGTH = 500
NOT_CONNECTED = "not connected: connect the account through integrationOAuthConnectUrl"
SECRETS_NOT_ALLOWED = "OAuth tokens are set by connecting through integrationOAuthConnectUrl"


class OAuthError(Exception):
    """The token endpoint refused a grant; `code` is the provider's `error` value when it gave one."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.headers: dict[str, str] = {}  # of the token endpoint's answer, when there was one


class OAuthStateError(ValueError):
    """A `state` value is malformed, forged or expired."""


@dataclass(frozen=True)
class OAuthProvider:
    type_name: str
    auth_url: str
    token_url: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = ()
    pkce: bool = False
    extra_auth_params: dict[str, str] = field(default_factory=dict, hash=False)
    # Send the client credentials as HTTP Basic auth instead of form fields (Pipedrive documents this).
    basic_auth: bool = False


@dataclass
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: float  # epoch seconds; 0 when the provider gave no expiry
    extra: dict[str, Any] = field(default_factory=dict)

    def to_secrets(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token, "expires_at": self.expires_at}

    @classmethod
    def from_secrets(cls, secrets: dict[str, Any]) -> TokenSet | None:
        if not secrets.get("access_token") and not secrets.get("refresh_token"):
            return None
        return cls(
            access_token=secrets.get("access_token") or "",
            refresh_token=secrets.get("refresh_token"),
            expires_at=float(secrets.get("expires_at") or 0),
        )

    def expires_within(self, seconds: float, now: float) -> bool:
        if not self.access_token:
            return True
        return self.expires_at > 0 and self.expires_at - now < seconds


# ---------------------------------------------------------------- providers


def provider_for(type_name: str, settings: Settings) -> OAuthProvider | None:
    """The OAuth app of a type, or None when its client id or secret is not configured."""
    builder = _PROVIDERS.get(type_name.upper())
    return builder(settings) if builder else None


def _hubspot(settings: Settings) -> OAuthProvider | None:
    if not (settings.hubspot_client_id and settings.hubspot_client_secret):
        return None
    token_url = settings.hubspot_token_url or settings.hubspot_api_url.rstrip("/") + "/oauth/v1/token"
    return OAuthProvider(
        type_name="HUBSPOT",
        auth_url=settings.hubspot_auth_url,
        token_url=token_url,
        client_id=settings.hubspot_client_id,
        client_secret=settings.hubspot_client_secret,
        scopes=("crm.objects.contacts.read", "crm.objects.contacts.write"),
    )


def _pipedrive(settings: Settings) -> OAuthProvider | None:
    if not (settings.pipedrive_client_id and settings.pipedrive_client_secret):
        return None
    # Pipedrive scopes are chosen in the app's Developer Hub settings, not in the URL.
    return OAuthProvider(
        type_name="PIPEDRIVE",
        auth_url=settings.pipedrive_auth_url,
        token_url=settings.pipedrive_token_url,
        client_id=settings.pipedrive_client_id,
        client_secret=settings.pipedrive_client_secret,
        basic_auth=True,
    )


def _google(settings: Settings) -> OAuthProvider | None:
    if not (settings.google_client_id and settings.google_client_secret):
        return None
    return OAuthProvider(
        type_name="GOOGLE_SHEETS",
        auth_url=settings.google_auth_url,
        token_url=settings.google_token_url,
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret,
        scopes=("https://www.googleapis.com/auth/spreadsheets",),
        pkce=True,
        # offline + consent: Google only returns a refresh token on a consent screen.
        extra_auth_params={"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
    )


_PROVIDERS = {"HUBSPOT": _hubspot, "PIPEDRIVE": _pipedrive, "GOOGLE_SHEETS": _google}


# ---------------------------------------------------------------- state and PKCE


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(body: str, key: bytes) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def make_state(payload: dict[str, Any], key: bytes, ttl: int, *, now: float | None = None) -> str:
    """A signed, expiring state: base64url(JSON) "." base64url(HMAC-SHA256)."""
    issued = time.time() if now is None else now
    claims = {"d": payload, "exp": int(issued + ttl), "jti": _secrets.token_urlsafe(16)}
    body = _b64(orjson.dumps(claims))
    return f"{body}.{_sign(body, key)}"


def _claims(state: str) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(state, str) or state.count(".") != 1 or len(state) > 4096:
        raise OAuthStateError("malformed state")
    body, signature = state.split(".")
    try:
        claims = orjson.loads(_unb64(body))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise OAuthStateError("malformed state") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("d"), dict):
        raise OAuthStateError("malformed state")
    return body, signature, claims


def read_state(state: str, key: bytes, now: float) -> dict[str, Any]:
    """The payload of a valid state; raises OAuthStateError when forged, malformed or expired."""
    body, signature, claims = _claims(state)
    if not hmac.compare_digest(signature, _sign(body, key)):
        raise OAuthStateError("state signature does not match")
    if not isinstance(claims.get("exp"), int) or now >= claims["exp"]:
        raise OAuthStateError("state has expired")
    return claims["d"]


def state_nonce(state: str) -> str:
    """The state's unique `jti`, for the caller's single-use check (call after read_state)."""
    return str(_claims(state)[2].get("jti", ""))


def make_pkce() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    verifier = _secrets.token_urlsafe(64)  # 86 characters, inside the 43..128 range
    return verifier, _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def authorization_url(provider: OAuthProvider, redirect_uri: str, state: str, code_challenge: str | None) -> str:
    params = {"response_type": "code", "client_id": provider.client_id, "redirect_uri": redirect_uri, "state": state}
    if provider.scopes:
        params["scope"] = " ".join(provider.scopes)
    if code_challenge:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    params.update(provider.extra_auth_params)
    separator = "&" if "?" in provider.auth_url else "?"
    return provider.auth_url + separator + urlencode(params)


# ---------------------------------------------------------------- token endpoint


_SECRET_FORM_FIELDS = frozenset({"client_secret", "code", "code_verifier", "refresh_token"})


def token_request(provider: OAuthProvider, form: dict[str, str]) -> OutgoingRequest:
    """A token-endpoint call. Its bodies carry the client secret and tokens, so the delivery log
    keeps a masked copy of the request body and none of the answer's."""
    headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
    secret_headers: frozenset[str] = frozenset()
    if provider.basic_auth:
        pair = f"{provider.client_id}:{provider.client_secret}".encode()
        headers["authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        secret_headers = frozenset({"authorization"})
    else:
        form = {**form, "client_id": provider.client_id, "client_secret": provider.client_secret}
    masked = {k: ("***" if k in _SECRET_FORM_FIELDS else v) for k, v in form.items()}
    return OutgoingRequest(
        method="POST",
        url=provider.token_url,
        headers=headers,
        body=urlencode(form).encode("ascii"),
        secret_headers=secret_headers,
        log_body=urlencode(masked).encode("ascii"),
        mask_response_body=True,
    )


def code_request(provider: OAuthProvider, code: str, redirect_uri: str, code_verifier: str | None) -> OutgoingRequest:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier:
        form["code_verifier"] = code_verifier
    return token_request(provider, form)


def refresh_request(provider: OAuthProvider, refresh_token: str) -> OutgoingRequest:
    return token_request(provider, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def parse_token_response(status: int, body: bytes, *, previous_refresh: str | None, now: float) -> TokenSet:
    """A TokenSet from a token-endpoint answer; raises OAuthError for a refusal."""
    data = _json(body)
    if not 200 <= status < 300 or not isinstance(data, dict) or not data.get("access_token"):
        code = _error_code(data)
        raise OAuthError(provider_error(body) or f"token endpoint answered HTTP {status}", status, code)
    expires_at = _expires_at(data.get("expires_in"), now)
    extra = {k: v for k, v in data.items() if k not in ("access_token", "refresh_token", "expires_in")}
    # Google omits the refresh token on refresh: the old one stays valid.
    refresh_token = data.get("refresh_token") or previous_refresh
    return TokenSet(str(data["access_token"]), refresh_token, expires_at, extra)


def _error_code(data: Any) -> str | None:
    """OAuth's `error`, or HubSpot's `status` such as BAD_REFRESH_TOKEN."""
    if not isinstance(data, dict):
        return None
    code = data.get("error") or data.get("status")
    return code if isinstance(code, str) else None


def _expires_at(expires_in: Any, now: float) -> float:
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return 0.0
    return now + seconds if seconds > 0 else 0.0


async def _post_token(session: aiohttp.ClientSession, request: OutgoingRequest) -> tuple[int, bytes]:
    async with session.request(
        request.method,
        request.url,
        headers=request.headers,
        data=request.body,
        allow_redirects=False,
    ) as response:
        return response.status, await response.read()


async def exchange_code(
    session: aiohttp.ClientSession,
    provider: OAuthProvider,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
) -> TokenSet:
    status, body = await _post_token(session, code_request(provider, code, redirect_uri, code_verifier))
    return parse_token_response(status, body, previous_refresh=None, now=time.time())


async def refresh(session: aiohttp.ClientSession, provider: OAuthProvider, refresh_token: str) -> TokenSet:
    status, body = await _post_token(session, refresh_request(provider, refresh_token))
    return parse_token_response(status, body, previous_refresh=refresh_token, now=time.time())


# ---------------------------------------------------------------- response helpers


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def provider_error(body: bytes) -> str:
    """The provider's error text from the JSON shapes of OAuth, HubSpot, Pipedrive and Google."""
    data = _json(body)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # Google APIs: {"error": {"code", "message", "status"}}
            return str(error.get("message") or error.get("status") or "")[:MAX_ERROR_LENGTH]
        # OAuth: error + error_description; Pipedrive: error + error_info; HubSpot: status/category + message
        detail = data.get("error_description") or data.get("error_info") or data.get("message")
        return ": ".join(str(p) for p in (error, detail) if p)[:MAX_ERROR_LENGTH]
    return body[:MAX_ERROR_LENGTH].decode("utf-8", "replace").strip()


def error_outcome(label: str, status: int, headers: dict[str, str], body: bytes) -> Outcome:
    """A failed API call: 429 waits, 5xx retries, other 4xx are final."""
    message = f"{label} answered HTTP {status}"
    if detail := provider_error(body):
        message = f"{message}: {detail}"
    if status == 429:
        return Outcome(success=False, error=message, retry_after=retry_after(headers))
    if status >= 500 or status == 408:
        return Outcome(success=False, error=message, retry_after=retry_after(headers))
    if status == 401:
        return Outcome(success=False, error=message, needs_reauth=True, retryable=False)
    return Outcome(success=False, error=message, retryable=False)


# ---------------------------------------------------------------- payload paths

PATH_RE = re.compile(r"^(\$[a-z_]+|[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*)$")
PSEUDO_PATHS = frozenset({"$event", "$timestamp", "$delivery_id", "$form", "$workspace"})
MAX_PATH_LENGTH = 200


def validate_path(value: Any, path: str, *, required: bool = True) -> FieldError | None:
    if value is None or value == "":
        return FieldError(path, "is required", CommonErrorCode.REQUIRED) if required else None
    if not isinstance(value, str):
        return FieldError(path, "must be a payload path such as post.author.email", CommonErrorCode.INVALID)
    if len(value) > MAX_PATH_LENGTH or not PATH_RE.match(value):
        return FieldError(path, f"{value!r} is not a payload path such as post.author.email", IntegrationErrorCode.INVALID_PATH)
    if value.startswith("$") and value not in PSEUDO_PATHS:
        return FieldError(path, f"unknown special path; use one of {', '.join(sorted(PSEUDO_PATHS))}", IntegrationErrorCode.INVALID_PATH)
    return None


def resolve_path(ctx: DeliveryContext, path: str) -> Any:
    """The payload value at a dotted path (list items by index), or None when absent."""
    if path.startswith("$"):
        return _pseudo(ctx, path)
    value: Any = ctx.payload
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _pseudo(ctx: DeliveryContext, path: str) -> Any:
    return {
        "$event": ctx.event_type,
        "$timestamp": ctx.timestamp.isoformat().replace("+00:00", "Z"),
        "$delivery_id": ctx.delivery_id,
        "$form": ctx.form_slug,
        "$workspace": ctx.workspace_slug,
    }.get(path)


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def validate_mapping(
    value: Any,
    path: str,
    *,
    key_re: re.Pattern[str],
    required_keys: tuple[str, ...] = (),
    max_items: int = 100,
) -> tuple[dict[str, str], list[FieldError]]:
    """`{provider field: payload path}`; errors point at `path.<field>`."""
    if not isinstance(value, dict):
        return {}, [FieldError(path, "must be an object of field name to payload path", CommonErrorCode.INVALID)]
    errors: list[FieldError] = []
    if len(value) > max_items:
        errors.append(FieldError(path, f"may map at most {max_items} fields", CommonErrorCode.TOO_LONG))
    clean: dict[str, str] = {}
    for key, source in value.items():
        sub = f"{path}.{key}"
        if not isinstance(key, str) or not key_re.match(key):
            errors.append(FieldError(sub, f"{key!r} is not a valid field name", CommonErrorCode.INVALID))
        elif err := validate_path(source, sub):
            errors.append(err)
        else:
            clean[key] = source
    for key in required_keys:
        if key not in value:
            errors.append(FieldError(f"{path}.{key}", "is required", CommonErrorCode.REQUIRED))
    return clean, errors


def unknown_fields(config: dict[str, Any], prefix: str = "config") -> list[FieldError]:
    return [FieldError(f"{prefix}.{k}", f"unknown config field {k!r}", CommonErrorCode.UNKNOWN_FIELD) for k in config]


# ---------------------------------------------------------------- delivering with tokens


class StopDelivery(Exception):
    """Ends a delivery early with a final outcome (a refused refresh, a failed call)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return _json(self.body)


class TokenCaller:
    """Makes bearer-authenticated calls through the exchange, refreshing the token when needed.

    At most one refresh happens per delivery: a 401 right after a refresh means the
    provider no longer accepts this connection.
    """

    def __init__(self, ctx: DeliveryContext, exchange: Exchange, provider: OAuthProvider, label: str) -> None:
        self.ctx, self.exchange, self.provider, self.label = ctx, exchange, provider, label
        self.tokens = TokenSet.from_secrets(ctx.secrets)
        self.refreshed = False

    async def ensure_fresh(self) -> None:
        if self.tokens is None:
            raise StopDelivery(Outcome(success=False, error=NOT_CONNECTED, needs_reauth=True, retryable=False))
        if self.tokens.expires_within(REFRESH_MARGIN_SECONDS, time.time()):
            await self.refresh()

    async def refresh(self) -> None:
        assert self.tokens is not None
        if not self.tokens.refresh_token:
            raise StopDelivery(
                Outcome(
                    success=False,
                    error=f"{self.label} access expired and no refresh token is stored; reconnect",
                    needs_reauth=True,
                    retryable=False,
                )
            )
        self.refreshed = True
        try:
            refreshes = self.ctx.shared.setdefault("oauth_refreshes", {})
            self.tokens = await shared_refresh(refreshes, self.exchange, self.provider, self.tokens.refresh_token)
        except OAuthError as exc:
            raise StopDelivery(_refresh_failure(self.label, exc, exc.headers)) from exc
        self.ctx.secrets.update(self.tokens.to_secrets())
        self.ctx.secrets_changed = True

    async def call(self, method: str, url: str, json_body: Any = None) -> Response:
        response = await self._send(method, url, json_body)
        if response.status == 401 and not self.refreshed:
            await self.refresh()
            response = await self._send(method, url, json_body)
        return response

    async def call_ok(self, method: str, url: str, json_body: Any = None) -> Response:
        """Like `call`, but any non-2xx answer ends the delivery with its outcome."""
        response = await self.call(method, url, json_body)
        if not response.ok:
            raise StopDelivery(error_outcome(self.label, response.status, response.headers, response.body))
        return response

    async def _send(self, method: str, url: str, json_body: Any) -> Response:
        assert self.tokens is not None
        headers = {
            "authorization": f"Bearer {self.tokens.access_token}",
            "accept": "application/json",
            "user-agent": USER_AGENT,
        }
        body = b""
        if json_body is not None:
            headers["content-type"] = "application/json"
            body = orjson.dumps(json_body)
        request = OutgoingRequest(
            method=method, url=url, headers=headers, body=body, secret_headers=frozenset({"authorization"})
        )
        return Response(*await self.exchange.send(request))


REFRESH_REUSE_SECONDS = 60.0
Refreshes = dict[tuple[str, str], tuple[float, asyncio.Task]]


async def shared_refresh(_refreshes: Refreshes, exchange: Exchange, provider: OAuthProvider,
                         refresh_token: str) -> TokenSet:
    """Refreshes in flight or just done in this process, by (token URL, refresh token), are kept in
    `_refreshes` (the runtime's). Deliveries of one integration often run together (a batch of events
    for a CRM): they share one refresh instead of each spending the refresh token, which providers
    that rotate it would accept only once."""
    now = time.monotonic()
    for key, (started, _) in list(_refreshes.items()):
        if now - started > REFRESH_REUSE_SECONDS:
            del _refreshes[key]
    key = (provider.token_url, refresh_token)
    entry = _refreshes.get(key)
    if entry is None or (entry[1].done() and entry[1].exception() is not None):
        entry = _refreshes[key] = (now, asyncio.ensure_future(_refresh_call(exchange, provider, refresh_token)))
    # The call is recorded in the log of the delivery that made it; a caller going away does not cancel it.
    return await asyncio.shield(entry[1])


async def _refresh_call(exchange: Exchange, provider: OAuthProvider, refresh_token: str) -> TokenSet:
    status, headers, body = await exchange.send(refresh_request(provider, refresh_token))
    try:
        return parse_token_response(status, body, previous_refresh=refresh_token, now=time.time())
    except OAuthError as exc:
        exc.headers = headers
        raise


def _refresh_failure(label: str, exc: OAuthError, headers: dict[str, str]) -> Outcome:
    message = f"{label} token refresh failed (HTTP {exc.status}): {exc.message}"
    if exc.status in (400, 401):  # invalid_grant / invalid_client: only reconnecting helps
        return Outcome(success=False, error=message, needs_reauth=True, retryable=False)
    return Outcome(success=False, error=message, retry_after=retry_after(headers))


class OAuthKind(IntegrationKind):
    """Shared validate/deliver of the OAuth types; subclasses map config and make their calls."""

    auth = "oauth2"
    env_name: ClassVar[str]  # HOOKYARD_<env_name>_CLIENT_ID

    def unavailable_reason(self, settings: Settings) -> str | None:
        if provider_for(self.type, settings) is not None:
            return None
        return (
            f"{self.label} OAuth app is not configured: set HOOKYARD_{self.env_name}_CLIENT_ID "
            f"and HOOKYARD_{self.env_name}_CLIENT_SECRET"
        )

    def validate(
        self,
        config: dict[str, Any],
        secrets: dict[str, Any],
        *,
        existing_secrets: dict[str, Any] | None,
        settings: Settings,
    ) -> Validated:
        errors = [FieldError(f"secrets.{key}", SECRETS_NOT_ALLOWED, CommonErrorCode.NOT_ALLOWED) for key in secrets]
        clean, config_errors = self.validate_config(dict(config), settings)
        return Validated(config=clean, secrets=dict(existing_secrets or {}), errors=errors + config_errors)

    def validate_config(self, config: dict[str, Any], settings: Settings) -> tuple[dict[str, Any], list[FieldError]]:
        raise NotImplementedError

    async def deliver(self, ctx: DeliveryContext, exchange: Exchange) -> Outcome:
        settings = ctx.settings
        provider = provider_for(self.type, settings)
        if provider is None:
            return Outcome(success=False, error=self.unavailable_reason(settings), retryable=False)
        caller = TokenCaller(ctx, exchange, provider, self.label)
        try:
            await caller.ensure_fresh()
            return await self.send_event(ctx, caller, settings)
        except StopDelivery as stop:
            return stop.outcome

    async def send_event(self, ctx: DeliveryContext, caller: TokenCaller, settings: Settings) -> Outcome:
        raise NotImplementedError


def payload_problem(message: str) -> StopDelivery:
    """The event lacks data the mapping needs: retrying the same payload cannot help."""
    return StopDelivery(Outcome(success=False, error=message, retryable=False))
