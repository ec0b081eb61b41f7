"""The OAuth 2 authorization-code client: provider URL, PKCE, and the token endpoint.

Token-endpoint calls go through an :class:`~app.integrations.base.Exchange`: the connect flow
passes an :class:`app.core.http.HttpExchange` (SSRF guard, no redirects, timeout), a delivery
passes the exchange that records its log.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from app.core.http import HttpExchange, OutgoingRequest
from app.integrations.base import Exchange
from app.integrations.oauth_tokens import TokenSet

MAX_ERROR_LENGTH = 500
# Form fields of a token request that the delivery log shows masked.
_SECRET_FORM_FIELDS = frozenset({"client_secret", "code", "code_verifier", "refresh_token"})


class OAuthError(Exception):
    """The token endpoint refused a grant; `code` is the provider's `error` value when it gave one."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.headers: dict[str, str] = {}  # of the token endpoint's answer, when there was one


@dataclass(frozen=True)
class OAuthProvider:
    """An OAuth app: where to send the user and where to trade codes and refresh tokens."""

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


# ---------------------------------------------------------------- the user's side: URL and PKCE


def make_pkce() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(64)  # 86 characters, inside the 43..128 range
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


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


# ---------------------------------------------------------------- token endpoint requests


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


# ---------------------------------------------------------------- token endpoint calls


async def exchange_code(
    exchange: HttpExchange,
    provider: OAuthProvider,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
) -> TokenSet:
    """Trades the authorization code for tokens; raises OAuthError when the provider refuses."""
    return await _token_call(exchange, code_request(provider, code, redirect_uri, code_verifier), None)


async def refresh(exchange: Exchange, provider: OAuthProvider, refresh_token: str) -> TokenSet:
    """New tokens for a refresh token; raises OAuthError (with the answer's headers) when refused."""
    return await _token_call(exchange, refresh_request(provider, refresh_token), refresh_token)


async def _token_call(exchange: Exchange, request: OutgoingRequest, previous_refresh: str | None) -> TokenSet:
    status, headers, body = await exchange.send(request)
    try:
        return parse_token_response(status, body, previous_refresh=previous_refresh, now=time.time())
    except OAuthError as exc:
        exc.headers = headers
        raise


def parse_token_response(status: int, body: bytes, *, previous_refresh: str | None, now: float) -> TokenSet:
    """A TokenSet from a token-endpoint answer; raises OAuthError for a refusal."""
    data = json_or_none(body)
    if not 200 <= status < 300 or not isinstance(data, dict) or not data.get("access_token"):
        raise OAuthError(provider_error(body) or f"token endpoint answered HTTP {status}", status, _error_code(data))
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


# ---------------------------------------------------------------- provider answers


def json_or_none(body: bytes) -> Any:
    """A provider's JSON answer, or None when the body is empty or not JSON."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def provider_error(body: bytes) -> str:
    """The provider's error text from the JSON shapes of OAuth, HubSpot, Pipedrive and Google."""
    data = json_or_none(body)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # Google APIs: {"error": {"code", "message", "status"}}
            return str(error.get("message") or error.get("status") or "")[:MAX_ERROR_LENGTH]
        # OAuth: error + error_description; Pipedrive: error + error_info; HubSpot: status/category + message
        detail = data.get("error_description") or data.get("error_info") or data.get("message")
        return ": ".join(str(p) for p in (error, detail) if p)[:MAX_ERROR_LENGTH]
    return body[:MAX_ERROR_LENGTH].decode("utf-8", "replace").strip()
