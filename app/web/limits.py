"""Rate limits kept in Redis, so every API replica counts against the same budgets.

Three budgets, each a fixed one-minute window counted with INCR (and EXPIRE when the key is new) in
one small Lua script, one round trip and one command per request, which also reads the address's
failed-authentication count when a token is presented (the window's index is part of the key, so a
key lives at most two minutes):

- general: GraphQL requests per token, or per client IP for requests without one
  (`rate_limit_per_minute`);
- publish: `eventPublish` and `eventsPublish` requests per token or IP, counted apart (`publish_rate_limit_per_minute`);
- auth: requests whose token is bad, unknown, revoked or expired, per client IP
  (`auth_failures_per_minute`). Past it, requests from that IP that present a token are refused
  before the token is looked up.

A token is identified by a hash of what the client sent, so counting needs no database. Over a
budget: RateLimited (HTTP 429, Retry-After = seconds left in the window). When Redis does not
answer the limiter lets requests through (fail open) and `Outages` logs it once.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript as Script
from redis.exceptions import RedisError

from app.config import Settings
from app.services.tokens import bearer_value
from app.web.errors import RateLimited
from app.web.operations import GENERAL, PUBLISH
from app.web.outages import REDIS, Outages

WINDOW_SECONDS = 60
KEY_PREFIX = "hookyard:ratelimit"
AUTH = "auth"
# How long a limiter call waits for Redis before letting the request through.
REDIS_TIMEOUT = 1.0
# KEYS[1]: the budget's counter, counted; KEYS[2] (when given): the address's failed-authentication
# counter, read. ARGV[1]: the counter's life in seconds. Answers {count, failures}.
ADMIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local failures = 0
if #KEYS > 1 then failures = tonumber(redis.call('GET', KEYS[2]) or '0') end
return {count, failures}
"""


@dataclass(frozen=True)
class Window:
    index: int
    remaining: float  # seconds until the next window starts


def window_at(now: float, seconds: int = WINDOW_SECONDS) -> Window:
    index = int(now // seconds)
    return Window(index, (index + 1) * seconds - now)


def token_subject(authorization: str | None) -> str | None:
    """A short hash of the credential a request presents (any non-blank Authorization), or None."""
    if not authorization or not authorization.strip():
        return None
    credential = bearer_value(authorization) or authorization.strip()
    return "token:" + hashlib.sha256(credential.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def subject_of(authorization: str | None, client_ip: str | None) -> str:
    """Whose budget a request draws on: its token's, or its client IP's when it has none."""
    return token_subject(authorization) or f"ip:{client_ip or 'unknown'}"


def counter_key(budget: str, subject: str, window: Window) -> str:
    return f"{KEY_PREFIX}:{budget}:{subject}:{window.index}"


def budgets(settings: Settings) -> dict[str, int]:
    return {GENERAL: settings.rate_limit_per_minute, PUBLISH: settings.publish_rate_limit_per_minute,
            AUTH: settings.auth_failures_per_minute}


def _too_many(budget: str, limit: int, window: Window) -> RateLimited:
    if budget == AUTH:
        message = (f"more than {limit} requests with a bad or unknown token came from this address in a minute; "
                   f"try again in {int(window.remaining) + 1} s")
    else:
        what = "eventPublish/eventsPublish requests" if budget == PUBLISH else "requests"
        message = f"more than {limit} {what} a minute; try again in {int(window.remaining) + 1} s"
    return RateLimited(message, window.remaining)


class RateLimiter:
    def __init__(self, settings: Settings, redis: Callable[[], Redis | None], outages: Outages,
                 clock: Callable[[], float] = time.time):
        self.enabled = settings.rate_limit_enabled
        self.limits = budgets(settings)
        self.redis = redis
        self.outages = outages
        self.clock = clock
        self._admit_script = Script(None, ADMIT_SCRIPT.encode())  # EVALSHA; loaded again when Redis lacks it

    def _client(self) -> Redis | None:
        if not self.enabled or self.outages.is_down(REDIS):
            return None  # fail open: the probe notices when Redis is back
        return self.redis()

    async def admit(self, authorization: str | None, client_ip: str | None, budget: str = GENERAL) -> None:
        """Counts a request against its budget; RateLimited when it is over that, or when it presents a
        token from an address over its failed-authentication budget."""
        redis = self._client()
        if redis is None:
            return
        window = window_at(self.clock())
        token = token_subject(authorization)
        keys = [counter_key(budget, token or f"ip:{client_ip or 'unknown'}", window)]
        if token is not None:  # a request with a token: is its address over the failed-authentication budget?
            keys.append(counter_key(AUTH, f"ip:{client_ip or 'unknown'}", window))
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                count, failures = await self._admit_script(keys=keys, args=[WINDOW_SECONDS * 2], client=redis)
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            self.outages.down(REDIS, exc)
            return
        if token is not None and int(failures) >= self.limits[AUTH]:
            raise _too_many(AUTH, self.limits[AUTH], window)
        if int(count) > self.limits[budget]:
            raise _too_many(budget, self.limits[budget], window)

    async def check_auth_failures(self, client_ip: str | None) -> None:
        """RateLimited when the address is over its failed-authentication budget (WebSocket connects)."""
        redis = self._client()
        if redis is None:
            return
        window = window_at(self.clock())
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                failures = await redis.get(counter_key(AUTH, f"ip:{client_ip or 'unknown'}", window))
        except (RedisError, OSError) as exc:
            self.outages.down(REDIS, exc)
            return
        if int(failures or 0) >= self.limits[AUTH]:
            raise _too_many(AUTH, self.limits[AUTH], window)

    async def auth_failed(self, client_ip: str | None) -> None:
        """Counts a request whose token was refused against its address's failed-authentication budget."""
        redis = self._client()
        if redis is None:
            return
        key = counter_key(AUTH, f"ip:{client_ip or 'unknown'}", window_at(self.clock()))
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW_SECONDS * 2)
                    await pipe.execute()
        except (RedisError, OSError) as exc:
            self.outages.down(REDIS, exc)
