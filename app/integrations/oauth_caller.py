"""Provider API calls during a delivery with the integration's OAuth tokens, refreshed when needed.

A refresh is shared by the deliveries of one process through the dict the runtime passes as
`ctx.shared`, so a provider that rotates refresh tokens sees each one spent only once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson

from app.core.http import USER_AGENT, OutgoingRequest
from app.core.retry import retry_after
from app.integrations.base import DeliveryContext, Exchange, Outcome
from app.integrations.oauth_client import OAuthError, OAuthProvider, json_or_none, provider_error, refresh
from app.integrations.oauth_tokens import TokenSet

REFRESH_MARGIN_SECONDS = 60
REFRESH_REUSE_SECONDS = 60.0
NOT_CONNECTED = "not connected: connect the account through integrationOAuthConnectUrl"
SHARED_KEY = "oauth_refreshes"  # this module's entry in ctx.shared

Refreshes = dict[tuple[str, str], tuple[float, asyncio.Task]]


class StopDelivery(Exception):
    """Ends a delivery early with a final outcome (a refused refresh, a failed call)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


def payload_problem(message: str) -> StopDelivery:
    """The event lacks data the mapping needs: retrying the same payload cannot help."""
    return StopDelivery(Outcome(success=False, error=message, retryable=False))


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json_or_none(self.body)


def error_outcome(label: str, status: int, headers: dict[str, str], body: bytes) -> Outcome:
    """A failed API call: 429 waits, 408 and 5xx retry, 401 needs reconnecting, other 4xx are final."""
    message = f"{label} answered HTTP {status}"
    if detail := provider_error(body):
        message = f"{message}: {detail}"
    if status in (408, 429) or status >= 500:
        return Outcome(success=False, error=message, retry_after=retry_after(headers))
    if status == 401:
        return Outcome(success=False, error=message, needs_reauth=True, retryable=False)
    return Outcome(success=False, error=message, retryable=False)


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
            refreshes = self.ctx.shared.setdefault(SHARED_KEY, {})
            self.tokens = await shared_refresh(refreshes, self.exchange, self.provider, self.tokens.refresh_token)
        except OAuthError as exc:
            raise StopDelivery(_refresh_failure(self.label, exc)) from exc
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


async def shared_refresh(refreshes: Refreshes, exchange: Exchange, provider: OAuthProvider,
                         refresh_token: str) -> TokenSet:
    """Refreshes in flight or just done in this process, by (token URL, refresh token), are kept in
    `refreshes` (the runtime's). Deliveries of one integration often run together (a batch of events
    for a CRM): they share one refresh instead of each spending the refresh token, which providers
    that rotate it would accept only once."""
    now = time.monotonic()
    for key, (started, _) in list(refreshes.items()):
        if now - started > REFRESH_REUSE_SECONDS:
            del refreshes[key]
    key = (provider.token_url, refresh_token)
    entry = refreshes.get(key)
    if entry is None or (entry[1].done() and entry[1].exception() is not None):
        entry = refreshes[key] = (now, asyncio.ensure_future(refresh(exchange, provider, refresh_token)))
    # The call is recorded in the log of the delivery that made it; a caller going away does not cancel it.
    return await asyncio.shield(entry[1])


def _refresh_failure(label: str, exc: OAuthError) -> Outcome:
    message = f"{label} token refresh failed (HTTP {exc.status}): {exc.message}"
    if exc.status in (400, 401):  # invalid_grant / invalid_client: only reconnecting helps
        return Outcome(success=False, error=message, needs_reauth=True, retryable=False)
    return Outcome(success=False, error=message, retry_after=retry_after(exc.headers))
