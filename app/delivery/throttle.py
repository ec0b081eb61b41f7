"""Per-integration rate limits and concurrency, shared by every worker through Redis.

An integration's config may hold `rateLimit: {requests, perSeconds}` and `maxConcurrency`; Slack and
Discord default to one request a second (their incoming webhooks take about that), the others to no
limit. Before a send, one Lua script per integration decides atomically, for all workers at once, whether
it may go now: a sliding window log (no window of `perSeconds` ever holds more than `requests` sends)
and a lease set of the sends in flight (each lease expires, so a worker that dies frees its slot). A send
that may not go now is not a failure: the sender puts it back with the time it may go, and no attempt is
recorded. A 429 from the receiver pauses the integration for its `Retry-After` (or a few seconds) and
halves its rate for a minute; an integration without limits of its own is then only checked for that
pause. When an event is published, each send to a rate-limited integration is booked its slot in the same
schedule (`Throttle.book`), so its job is queued for then; the check before the send finds it kept.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from app.core.errors import CommonErrorCode, FieldError

RATE_KEY = "rateLimit"
CONCURRENCY_KEY = "maxConcurrency"
MAX_REQUESTS = 10_000
MAX_PER_SECONDS = 86_400
MAX_CONCURRENCY = 1_000
# Integration types whose receivers take about one request a second; the others have no default limit.
DEFAULT_RATES: Mapping[str, tuple[int, float]] = {"SLACK": (1, 1.0), "DISCORD": (1, 1.0)}
# After a 429: no sends for Retry-After (else this), then half the rate for SLOW_SECONDS.
PAUSE_SECONDS = 5.0
SLOW_SECONDS = 60.0
SLOW_FACTOR = 2  # the window is this many times as long while slowed
MAX_PAUSE_SECONDS = 3600.0
# How long a concurrency lease lives when its worker never gives it back (it died mid-send).
LEASE_SECONDS = 60.0

_PREFIX = "hookyard:throttle:"
# Sends waiting in a worker for a concurrency slot it holds: at least this many per slot, more when the
# integration's sends are quick, as many as should go within WAITING_SECONDS; the others are put back.
WAITING_PER_SLOT = 2
WAITING_SECONDS = 1.0
# How long a send is assumed to hold a slot before this process has timed one, and the bounds of the
# spacing of the sends put back for a slot.
DEFAULT_SEND_SECONDS = 0.05
MIN_LOOK_AGAIN_SECONDS = 0.005
MAX_LOOK_AGAIN_SECONDS = 30.0


@dataclass(frozen=True)
class Limits:
    requests: int | None = None  # None: no rate limit
    per_seconds: float = 1.0
    max_concurrency: int | None = None  # None: no limit

    @property
    def limited(self) -> bool:
        return self.requests is not None or self.max_concurrency is not None

    def describe(self) -> str:
        parts = []
        if self.requests is not None:
            parts.append(f"{self.requests} per {self.per_seconds:g} s")
        if self.max_concurrency is not None:
            parts.append(f"{self.max_concurrency} at a time")
        return ", ".join(parts) or "no limit"


def limits_of(integration_type: str, config: Mapping[str, Any] | None) -> Limits:
    """The integration's limits from its (validated) config, with its type's defaults."""
    config = config or {}
    rate = config.get(RATE_KEY, ...)
    if rate is ...:
        default = DEFAULT_RATES.get(str(getattr(integration_type, "value", integration_type)))
        requests, per = default if default else (None, 1.0)
    elif rate is None:  # explicitly no limit
        requests, per = None, 1.0
    else:
        requests, per = int(rate["requests"]), float(rate["perSeconds"])
    concurrency = config.get(CONCURRENCY_KEY)
    return Limits(requests, per, int(concurrency) if concurrency is not None else None)


def validate_limits(config: Mapping[str, Any], path: str = "config") -> tuple[dict[str, Any], list[FieldError]]:
    """The `rateLimit` and `maxConcurrency` of a config, checked: what to store, and any errors.
    `rateLimit: null` stores "no limit" (also for Slack and Discord, whose default is 1/s)."""
    clean: dict[str, Any] = {}
    errors: list[FieldError] = []
    if RATE_KEY in config:
        rate = config[RATE_KEY]
        where = f"{path}.{RATE_KEY}"
        if rate is None:
            clean[RATE_KEY] = None
        elif not isinstance(rate, dict) or set(rate) - {"requests", "perSeconds"}:
            errors.append(FieldError(where, 'must be {"requests": n, "perSeconds": s} (or null for no limit)',
                                     CommonErrorCode.INVALID))
        else:
            requests, per = rate.get("requests"), rate.get("perSeconds", 1)
            if not _number(requests, integer=True) or not 1 <= requests <= MAX_REQUESTS:
                errors.append(FieldError(f"{where}.requests", f"must be a whole number from 1 to {MAX_REQUESTS}",
                                         CommonErrorCode.OUT_OF_RANGE))
            elif not _number(per) or not 0.1 <= per <= MAX_PER_SECONDS:
                errors.append(FieldError(f"{where}.perSeconds", f"must be a number of seconds from 0.1 to "
                                                                f"{MAX_PER_SECONDS}", CommonErrorCode.OUT_OF_RANGE))
            else:
                clean[RATE_KEY] = {"requests": int(requests), "perSeconds": per}
    if CONCURRENCY_KEY in config:
        value = config[CONCURRENCY_KEY]
        if value is None:
            clean[CONCURRENCY_KEY] = None
        elif not _number(value, integer=True) or not 1 <= value <= MAX_CONCURRENCY:
            errors.append(FieldError(f"{path}.{CONCURRENCY_KEY}", f"must be a whole number from 1 to "
                                                                  f"{MAX_CONCURRENCY} (or null for no limit)",
                                     CommonErrorCode.OUT_OF_RANGE))
        else:
            clean[CONCURRENCY_KEY] = int(value)
    return clean, errors


def _number(value: Any, integer: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return not integer or float(value).is_integer()


# KEYS: sent (a sorted set of send times), pause, slow, leases, next (the slot the last send held back
# was given), reserved (the slots given to sends held back, by the sends' names). ARGV: now_ms, window_ms
# (0: no rate), requests, max_concurrency (0: none), lease_token, lease_until_ms, slow_factor, the send's
# name, the lease handed over to this send ("" for none: it is given back first, in the same call).
# Answers {wait_ms, took_lease, why} (why: 0 go, 1 paused, 2 every concurrency slot taken, 3 the rate).
#
# No window ever holds more than `requests` sends. Sends held back for the rate are given slots one
# interval (window / requests) apart, so a backlog wakes at the rate, not all at once. A send keeps its
# slot: coming back for it (late, too, when the worker had a backlog of its own), it goes as soon as the
# window has room, else waits only until it has, never sent behind the sends that came after it. A newer
# send goes whenever the window has room: a slot whose send is late is not left empty.
_ADMIT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local requests = tonumber(ARGV[3])
local max_cc = tonumber(ARGV[4])
if ARGV[9] ~= '' then redis.call('ZREM', KEYS[4], ARGV[9]) end
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > now then return {pause - now, 0, 1} end
if max_cc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= max_cc then
    local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    return {math.max(50, math.min(1000, tonumber(first[2]) - now)), 0, 2}
  end
end
if window > 0 then
  if redis.call('EXISTS', KEYS[3]) == 1 then window = window * tonumber(ARGV[7]) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - 60000)
  local full = redis.call('ZCARD', KEYS[1]) >= requests
  local room_at = now
  if full then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    room_at = tonumber(oldest[2]) + window
  end
  local slot = redis.call('ZSCORE', KEYS[6], ARGV[8])
  if slot then
    if tonumber(slot) > now then return {tonumber(slot) - now, 0, 3} end
    if full then return {math.max(1, room_at - now), 0, 3} end
    redis.call('ZREM', KEYS[6], ARGV[8])
  else
    if full then
      local last = tonumber(redis.call('GET', KEYS[5]) or '0')
      slot = math.max(room_at, last + window / requests)
      redis.call('SET', KEYS[5], slot, 'PX', math.ceil(slot - now + window + 1000))
      redis.call('ZADD', KEYS[6], slot, ARGV[8])
      if redis.call('PTTL', KEYS[6]) < slot - now + 61000 then
        redis.call('PEXPIRE', KEYS[6], math.ceil(slot - now + 61000))
      end
      return {slot - now, 0, 3}
    end
  end
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window + 1000))
end
if max_cc > 0 then
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[5])
  redis.call('PEXPIRE', KEYS[4], math.ceil(tonumber(ARGV[6]) - now + 1000))
  return {0, 1, 0}
end
return {0, 0, 0}
"""


# Booking, when deliveries are published: each send of a rate-limited integration is given its slot
# in the schedule (the sends made and the slots given), so the job that carries it is queued for then
# and the worker never has to claim it, put it back and claim it again. KEYS as above; ARGV: now_ms,
# window_ms, requests, slow_factor, then the sends' names. Answers each send's wait_ms, in order.
#
# A slot is the earliest time, not before the slots given before it (so sends go in publish order) nor
# before a 429's pause ends, at which the window ending there holds fewer than `requests` sends and
# slots: a burst within the rate goes at once, the rest at the rate. Only the newest entry and the one
# `requests` places before the end of the schedule decide it, and the slots still to come are newer than
# every send made: with a backlog, booking one send reads two entries, however long the backlog.
_BOOK = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local requests = tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[3]) == 1 then window = window * tonumber(ARGV[4]) end
local start = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0'))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - 60000)
local n = #ARGV - 4
local future = redis.call('ZCOUNT', KEYS[6], '(' .. now, '+inf')
local count = redis.call('ZCARD', KEYS[1]) + redis.call('ZCOUNT', KEYS[6], '(' .. (now - window), '+inf')
-- The schedule's entries by rank, newest first (0: the newest), for the ranks [lo, hi]: the slots to
-- come by rank; below them the sends made and the slots not yet taken up, merged.
local ranked = {}
local function fetch(lo, hi)
  if hi < lo then return end
  if lo < future then
    local top = redis.call('ZREVRANGE', KEYS[6], lo, math.min(hi, future - 1), 'WITHSCORES')
    for i = 2, #top, 2 do ranked[lo + i / 2 - 1] = tonumber(top[i]) end
  end
  if hi >= future then
    local want = hi - future + 1
    local sent = redis.call('ZREVRANGE', KEYS[1], 0, want - 1, 'WITHSCORES')
    local given = redis.call('ZREVRANGEBYSCORE', KEYS[6], now, '-inf', 'WITHSCORES', 'LIMIT', 0, want)
    local i, j, p = 2, 2, 0
    while p < want and (i <= #sent or j <= #given) do
      local a = sent[i] and tonumber(sent[i]) or nil
      local b = given[j] and tonumber(given[j]) or nil
      local value
      if b == nil or (a ~= nil and a >= b) then value = a; i = i + 2 else value = b; j = j + 2 end
      if future + p >= lo then ranked[future + p] = value end
      p = p + 1
    end
  end
end
if count > 0 then fetch(0, 0) end
fetch(math.max(1, requests - n), math.min(requests, count) - 1)
local booked = {}
local waits = {}
local slot = start
for j = 0, n - 1 do
  slot = start
  local newest = ranked[0]
  if j > 0 then newest = booked[j - 1] end
  if newest then slot = math.max(slot, newest) end
  if count + j >= requests then
    local kth
    if j >= requests then kth = booked[j - requests] else kth = ranked[requests - 1 - j] end
    if kth then slot = math.max(slot, kth + window) end
  end
  booked[j] = slot
  redis.call('ZADD', KEYS[6], slot, ARGV[5 + j])
  waits[j + 1] = slot - now
end
if redis.call('PTTL', KEYS[6]) < slot - now + 61000 then
  redis.call('PEXPIRE', KEYS[6], math.ceil(slot - now + 61000))
end
local last = tonumber(redis.call('GET', KEYS[5]) or '0')
if slot > last then redis.call('SET', KEYS[5], slot, 'PX', math.ceil(slot - now + window + 1000)) end
return waits
"""


# Giving back the slots booked for sends that will not be made (their publish failed). KEYS: reserved,
# next. ARGV: the sends' names. `next` (where the admit script puts a send it holds back) moves back to
# the last slot still given.
_UNBOOK = """
for n = 1, #ARGV do redis.call('ZREM', KEYS[1], ARGV[n]) end
local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #top == 0 then
  redis.call('DEL', KEYS[2])
elseif tonumber(redis.call('GET', KEYS[2]) or '0') > tonumber(top[2]) then
  redis.call('SET', KEYS[2], top[2], 'KEEPTTL')
end
return 0
"""


PAUSED, NO_SLOT, RATE = 1, 2, 3  # why a send may not go now


@dataclass(frozen=True)
class Admission:
    wait: float  # seconds until it may go; 0: go now
    lease: str | None = None  # the concurrency slot taken; give it back with `release`
    why: int = 0  # PAUSED, NO_SLOT (every concurrency slot is taken) or RATE when it may not go now


def _keys(integration_id: str) -> list[str]:
    base = _PREFIX + integration_id
    return [f"{base}:sent", f"{base}:pause", f"{base}:slow", f"{base}:leases", f"{base}:next", f"{base}:reserved"]


class Throttle:
    """The limiter over one Redis connection (arq's pool)."""

    def __init__(self, redis: Any, lease_seconds: float = LEASE_SECONDS):
        self.redis = redis
        self.lease_seconds = lease_seconds
        self._script = redis.register_script(_ADMIT)
        self._book = redis.register_script(_BOOK)
        self._unbook = redis.register_script(_UNBOOK)

    async def book(self, bookings: Sequence[tuple[str, Limits, Sequence[str]]]) -> list[list[float]]:
        """For each (integration id, limits with a rate, the sends' names in publish order): the seconds
        until each send's slot, kept for it (see `admit`). One round trip for all."""
        now_ms = int(time.time() * 1000)

        async def run() -> list:
            async with self.redis.pipeline(transaction=False) as pipe:
                for integration_id, limits, names in bookings:
                    keys = _keys(integration_id)
                    pipe.evalsha(self._book.sha, len(keys), *keys, now_ms, limits.per_seconds * 1000,
                                 limits.requests, SLOW_FACTOR, *(f"r:{name}" for name in names))
                return await pipe.execute()

        if not bookings:
            return []
        answers = await self._loaded(_BOOK, run)
        return [[max(int(wait), 0) / 1000 for wait in waits] for waits in answers]

    async def admit(self, requests: Sequence[tuple[str, Limits]],
                    send_ids: Sequence[str | None] | None = None,
                    handed: Sequence[str | None] | None = None) -> list[Admission]:
        """For each (integration id, limits), in order: may a send go now? One round trip for all.

        `send_ids` (the deliveries' ids) name each send's slot when the rate holds it back: asked again
        for the same send, its slot is kept for it, ahead of sends that came later. `handed`: a lease a
        finished send of this process handed over to this one (`LocalSlots.gave_back`), given back in the
        same call, before the check.
        A limited integration runs the Lua script once per send; one without limits of its own only
        has to be not paused by a 429, so all of those are read with one MGET of their pause keys."""
        now_ms = int(time.time() * 1000)
        tokens = [secrets.token_hex(8) if limits.limited else None for _, limits in requests]
        names = list(send_ids) if send_ids is not None else [None] * len(requests)
        reservations = [f"r:{name or token}" for name, token in zip(names, tokens, strict=True)]
        leases = [lease or "" for lease in handed] if handed is not None else [""] * len(requests)
        answers = await self._loaded(_ADMIT, lambda: self._run(requests, tokens, reservations, leases, now_ms))
        return [Admission(wait=int(wait_ms) / 1000, lease=token if took else None, why=int(why))
                for (wait_ms, took, why), token in zip(answers, tokens, strict=True)]

    async def _run(self, requests: Sequence[tuple[str, Limits]], tokens: list[str | None], reservations: list[str],
                   leases: list[str], now_ms: int) -> list:
        unlimited = list(dict.fromkeys(i for (i, limits) in requests if not limits.limited))
        scripted = await self._scripted(requests, tokens, reservations, leases, now_ms,
                                        [_keys(i)[1] for i in unlimited])
        pauses = dict(zip(unlimited, scripted.pop(), strict=True)) if unlimited else {}
        answers = []
        scripted_answers = iter(scripted)
        for integration_id, limits in requests:
            if limits.limited:
                answers.append(next(scripted_answers))
            else:
                until = int(pauses[integration_id] or 0)
                answers.append((until - now_ms, 0, PAUSED) if until > now_ms else (0, 0, 0))
        return answers

    async def _scripted(self, requests: Sequence[tuple[str, Limits]], tokens: list[str | None],
                        reservations: list[str], leases: list[str], now_ms: int, pause_keys: list[str]) -> list:
        """The script's answers for the limited requests, then (when there are `pause_keys`) their MGET."""
        # EVALSHA in a plain pipeline: a pipeline given the Script object asks Redis whether the script
        # exists, in a round trip of its own, every time.
        async with self.redis.pipeline(transaction=False) as pipe:
            for (integration_id, limits), token, reservation, lease in zip(requests, tokens, reservations, leases,
                                                                          strict=True):
                if not limits.limited:
                    continue
                window = 0 if limits.requests is None else limits.per_seconds * 1000
                keys = _keys(integration_id)
                pipe.evalsha(self._script.sha, len(keys), *keys, now_ms, window, limits.requests or 1,
                             limits.max_concurrency or 0, token, now_ms + int(self.lease_seconds * 1000), SLOW_FACTOR,
                             reservation, lease)
            if pause_keys:
                pipe.mget(pause_keys)
            return await pipe.execute()

    async def unbook(self, bookings: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Gives back the slots `book` gave these sends, (integration id, the sends' names): their publish
        failed. One round trip for all."""

        async def run() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for integration_id, names in bookings:
                    keys = _keys(integration_id)
                    pipe.evalsha(self._unbook.sha, 2, keys[5], keys[4], *(f"r:{name}" for name in names))
                await pipe.execute()

        if not bookings:
            return
        await self._loaded(_UNBOOK, run)

    async def _loaded(self, script: str, run: Callable[[], Awaitable[Any]]) -> Any:
        """`run()`, which calls `script` by its SHA; once more after loading it when Redis no longer has it
        (restarted or flushed since)."""
        try:
            return await run()
        except NoScriptError:
            await self.redis.script_load(script)
            return await run()

    async def release(self, integration_id: str, lease: str) -> None:
        await self.redis.zrem(_keys(integration_id)[3], lease)

    async def pause(self, integration_id: str, seconds: float | None) -> None:
        """After a 429: nothing for `seconds` (Retry-After, else PAUSE_SECONDS), then half the rate a while."""
        pause = min(max(seconds if seconds is not None else PAUSE_SECONDS, 0.1), MAX_PAUSE_SECONDS)
        until = int((time.time() + pause) * 1000)
        _, pause_key, slow_key, *_ = _keys(integration_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(pause_key, until, px=int(pause * 1000) + 1000)
            pipe.set(slow_key, 1, px=int((pause + SLOW_SECONDS) * 1000))
            await pipe.execute()


class LocalSlots:
    """The concurrency slots this process holds, per integration, and its sends waiting for one of them
    to be given back: a burst to an integration limited to a few at a time goes out here as the slots
    free, instead of each send being put back, queued and claimed again. (Slots other workers hold
    free without notice here: a send waiting for those is put back.)

    Only the sends its slots should get through within about a second wait here (`room_to_wait`), at
    least WAITING_PER_SLOT per slot; the rest of a burst is put back, each told to
    look again when the sends ahead of it should be done (`look_again_in`), from how long this process
    has seen the integration's sends take. A backlog thus comes back about as fast as the receiver takes
    it, not all at once every second."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._waiters: dict[str, deque[asyncio.Future]] = {}
        self._waiting: dict[str, int] = {}  # sends in `next_turn` now, per integration
        self._taken_at: dict[str, deque[float]] = {}
        self._send_seconds: dict[str, float] = {}  # a moving average of how long a slot is held
        self._horizon: dict[str, float] = {}  # when the last send put back for a slot should look again

    def took(self, integration_id: str) -> None:
        self._held[integration_id] = self._held.get(integration_id, 0) + 1
        self._taken_at.setdefault(integration_id, deque()).append(time.monotonic())

    def gave_back(self, integration_id: str, lease: str | None = None) -> bool:
        """A send of the integration finished. The first send waiting here for one of its slots takes the
        slot over, `lease` and all (True: the caller must not give the lease back to Redis; the waiting send
        does, in its own limiter call). False: no send waits here, give it back."""
        if taken := self._taken_at.get(integration_id):
            seconds = time.monotonic() - taken.popleft()
            if not taken:
                self._taken_at.pop(integration_id, None)
            average = self._send_seconds.get(integration_id)
            self._send_seconds[integration_id] = seconds if average is None else average + (seconds - average) / 5
        held = self._held.get(integration_id, 0) - 1
        if held > 0:
            self._held[integration_id] = held
        else:
            self._held.pop(integration_id, None)
        queue = self._waiters.get(integration_id)
        handed = False
        while queue:
            turn = queue.popleft()
            if not turn.done():  # one that gave up waiting is skipped
                turn.set_result(lease)
                handed = lease is not None
                break
        if queue is not None and not queue:
            self._waiters.pop(integration_id, None)
        return handed

    def waiting(self, integration_id: str) -> int:
        return self._waiting.get(integration_id, 0)

    def room_to_wait(self, integration_id: str, limits: Limits, already: int = 0) -> bool:
        """May one more send wait here for a slot of the integration (`already`: those a batch is adding)?
        As many as its slots should get through in WAITING_SECONDS, at the pace its sends have been taking,
        and at least WAITING_PER_SLOT per slot."""
        slots = limits.max_concurrency or 1
        room = slots * WAITING_PER_SLOT
        if seconds := self._send_seconds.get(integration_id):
            room = max(room, int(slots * WAITING_SECONDS / seconds))
        return self.waiting(integration_id) + already < room

    def look_again_in(self, integration_id: str, limits: Limits, already: int = 0) -> float:
        """Seconds until a send that found every slot taken should be tried again: one estimated send per
        slot after the last one put back for the integration, or after those waiting here (`already`:
        those a batch is adding)."""
        now = time.monotonic()
        step = self._send_seconds.get(integration_id, DEFAULT_SEND_SECONDS) / (limits.max_concurrency or 1)
        step = min(max(step, MIN_LOOK_AGAIN_SECONDS), MAX_LOOK_AGAIN_SECONDS)
        start = max(self._horizon.get(integration_id, 0.0), now + step * (self.waiting(integration_id) + already + 1))
        self._horizon[integration_id] = start + step
        return start - now

    def holding(self, integration_id: str) -> bool:
        return self._held.get(integration_id, 0) > 0

    async def next_turn(self, integration_id: str, timeout: float) -> str | None:
        """Waits until this process gives back a slot of the integration, or `timeout`: the lease handed
        over with it (see `gave_back`), else None."""
        turn = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(integration_id, deque()).append(turn)
        self._waiting[integration_id] = self._waiting.get(integration_id, 0) + 1
        try:
            # A lease handed over is never lost to a cancel: wait_for (Python 3.11) answers a result that came
            # with the cancel, and the send goes.
            return await asyncio.wait_for(turn, timeout)
        except TimeoutError:
            return None
        finally:
            if (left := self._waiting[integration_id] - 1) > 0:
                self._waiting[integration_id] = left
            else:
                del self._waiting[integration_id]
