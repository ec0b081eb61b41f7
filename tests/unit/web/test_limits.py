"""Fixed one-minute windows counted in a real Redis; over a budget, RateLimited; Redis down, fail open."""

from __future__ import annotations

import socket
import uuid

import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.web.errors import RateLimited
from app.web.limits import RateLimiter, counter_key, subject_of, token_subject, window_at
from app.web.operations import GENERAL, PUBLISH
from app.web.outages import REDIS, Outages


def test_windows_are_minutes():
    window = window_at(120.0)
    assert window.index == 2 and window.remaining == 60
    assert window_at(179.5).index == 2 and window_at(179.5).remaining == pytest.approx(0.5)


def test_subjects_and_keys():
    token = "hyk_" + "a" * 43
    assert token_subject(f"Bearer {token}") == token_subject(f"bearer  {token} ")
    assert token_subject(f"Bearer {token}").startswith("token:") and token not in token_subject(f"Bearer {token}")
    assert token_subject("Basic abc").startswith("token:")  # any credential presented is a token's budget
    assert token_subject("  ") is None and token_subject(None) is None
    assert subject_of(None, "10.0.0.1") == "ip:10.0.0.1" and subject_of("", None) == "ip:unknown"
    assert counter_key("general", "ip:10.0.0.1", window_at(60.0)) == "hookyard:ratelimit:general:ip:10.0.0.1:1"


def limiter_for(redis: Redis | None, outages: Outages, now: float, **limits) -> RateLimiter:
    settings = Settings(rate_limit_per_minute=3, publish_rate_limit_per_minute=5, auth_failures_per_minute=2,
                        **limits)
    return RateLimiter(settings, lambda: redis, outages, clock=lambda: now)


@pytest.fixture
async def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_budgets_are_counted_apart_and_refused_past_their_limit(redis):
    now = 1_000_000 * 60 + uuid.uuid4().int % 1_000_000 * 60 + 10.0  # a window of this test's own
    limiter = limiter_for(redis, Outages(), now)
    token = f"Bearer hyk_{uuid.uuid4().hex}"
    for _ in range(3):
        await limiter.admit(token, "10.0.0.1", GENERAL)
    with pytest.raises(RateLimited) as caught:
        await limiter.admit(token, "10.0.0.1", GENERAL)
    assert caught.value.retry_after == 50 and "3 requests a minute" in caught.value.message
    for _ in range(5):
        await limiter.admit(token, "10.0.0.1", PUBLISH)
    with pytest.raises(RateLimited):
        await limiter.admit(token, "10.0.0.1", PUBLISH)
    await limiter.admit(None, "10.0.0.1", GENERAL)  # the address has a budget of its own
    next_minute = limiter_for(redis, Outages(), now + 60)
    await next_minute.admit(token, "10.0.0.1", GENERAL)


async def test_a_counter_lives_two_windows_and_redis_losing_the_script_is_no_error(redis):
    now = 3_000_000 * 60 + uuid.uuid4().int % 1_000_000 * 60 + 5.0
    limiter = limiter_for(redis, Outages(), now)
    token = f"Bearer hyk_{uuid.uuid4().hex}"
    await limiter.admit(token, "10.0.0.1", GENERAL)
    key = counter_key(GENERAL, subject_of(token, "10.0.0.1"), window_at(now))
    assert 0 < await redis.ttl(key) <= 120
    limiter._admit_script.sha = "0" * 40  # as if Redis had restarted and lost the script: it is loaded again
    await limiter.admit(token, "10.0.0.1", GENERAL)
    assert int(await redis.get(key)) == 2 and 0 < await redis.ttl(key) <= 120


async def test_failed_authentication_blocks_tokens_from_the_address(redis):
    now = 2_000_000 * 60 + uuid.uuid4().int % 1_000_000 * 60 + 1.0
    limiter = limiter_for(redis, Outages(), now)
    ip = f"10.9.{uuid.uuid4().int % 250}.1"
    await limiter.auth_failed(ip)
    await limiter.check_auth_failures(ip)
    await limiter.auth_failed(ip)
    with pytest.raises(RateLimited) as caught:
        await limiter.check_auth_failures(ip)
    assert "bad or unknown token" in caught.value.message
    with pytest.raises(RateLimited):
        await limiter.admit(f"Bearer hyk_{uuid.uuid4().hex}", ip, GENERAL)
    await limiter.admit(None, ip, GENERAL)  # without a token nothing is looked up


async def test_a_disabled_limiter_counts_nothing(redis):
    limiter = limiter_for(redis, Outages(), 60.0, rate_limit_enabled=False)
    for _ in range(10):
        await limiter.admit("Bearer x", "10.0.0.1", GENERAL)


async def test_redis_down_lets_requests_through_and_is_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Redis.from_url(f"redis://127.0.0.1:{port}/0")
    outages = Outages()
    limiter = limiter_for(dead, outages, 60.0)
    try:
        for _ in range(10):
            await limiter.admit("Bearer x", "10.0.0.1", GENERAL)
        await limiter.auth_failed("10.0.0.1")
        await limiter.check_auth_failures("10.0.0.1")
    finally:
        await dead.aclose()
    assert outages.is_down(REDIS)
    await outages.close()
