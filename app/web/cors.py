"""CORS on /graphql for browsers on the host product's origins.

Allowed: the origins in HOOKYARD_ALLOWED_ORIGINS, and those of every live portal session's
`allowedOrigins`. Starlette's CORSMiddleware answers the preflight and adds the headers; it is given the
per-request answer for session origins, which a preflight cannot tie to a session (it carries no
`Authorization`), so any live session's origin is allowed. That grants nothing by itself: every request
still needs a token, and no cookies are involved (credentials are not allowed).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from collections.abc import Awaitable, Callable, Iterable

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.logging import get_logger

log = get_logger(__name__)

ALLOWED_HEADERS = ("authorization", "content-type", "accept", "idempotency-key")
EXPOSED_HEADERS = ("retry-after", "x-ratelimit-limit", "x-ratelimit-remaining")

_origin_ok: contextvars.ContextVar[bool] = contextvars.ContextVar("hookyard_session_origin_ok", default=False)


class SessionOrigins:
    """The origins of live portal sessions, read from the database at most every `min_interval` seconds
    when an unknown origin asks, and again when older than `max_age`."""

    def __init__(self, load: Callable[[], Awaitable[Iterable[str]]], min_interval: float = 1.0,
                 max_age: float = 5.0):
        self.load = load
        self.min_interval = min_interval
        self.max_age = max_age
        self.origins: frozenset[str] = frozenset()
        self.loaded_at = -math.inf
        self._lock = asyncio.Lock()

    def __contains__(self, origin: str) -> bool:
        return origin in self.origins

    async def allows(self, origin: str) -> bool:
        age = time.monotonic() - self.loaded_at
        if age >= self.max_age or (origin not in self.origins and age >= self.min_interval):
            await self.refresh()
        return origin in self.origins

    def learn(self, origins: Iterable[str]) -> None:
        """Origins of a session this process just made: allowed at once."""
        self.origins = self.origins | frozenset(origins)

    def forget(self) -> None:
        """A session was revoked here: read them again on the next request."""
        self.loaded_at = -math.inf

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self.loaded_at < min(self.min_interval, self.max_age):
                return  # another request refreshed it while this one waited
            try:
                self.origins = frozenset(await self.load())
            except Exception:  # the database is away: keep what we knew, try again later
                log.warning("cors.session_origins_unavailable", exc_info=True)
            self.loaded_at = time.monotonic()


class GraphQLCORS(CORSMiddleware):
    """Starlette's CORSMiddleware, on `path` only, with live sessions' origins allowed too."""

    def __init__(self, app: ASGIApp, allow_origins: Iterable[str], sessions: SessionOrigins | None,
                 path: str = "/graphql"):
        super().__init__(app, allow_origins=[o.rstrip("/") for o in allow_origins], allow_methods=["GET", "POST"],
                         allow_headers=list(ALLOWED_HEADERS), expose_headers=list(EXPOSED_HEADERS),
                         allow_credentials=False, max_age=600)
        self.inner = app
        self.sessions = sessions
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.inner(scope, receive, send)
            return
        origin = Headers(scope=scope).get("origin")
        ok = False
        if origin and self.sessions is not None and not super().is_allowed_origin(origin):
            ok = await self.sessions.allows(origin.rstrip("/").lower())
        reset = _origin_ok.set(ok)
        try:
            await super().__call__(scope, receive, send)
        finally:
            _origin_ok.reset(reset)

    def is_allowed_origin(self, origin: str) -> bool:
        return super().is_allowed_origin(origin) or _origin_ok.get()
