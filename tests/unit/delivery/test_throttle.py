"""The per-integration limiter on a real Redis: rates, bursts, concurrency leases, pauses after a 429."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from arq.connections import create_pool

from app.delivery.runtime import redis_settings
from app.delivery.throttle import PAUSED, RATE, Limits, Throttle, limits_of, validate_limits


@pytest.fixture
async def throttle(redis_url):
    redis = await create_pool(redis_settings(redis_url))
    yield Throttle(redis)
    await redis.aclose()


def fresh() -> str:
    return f"int_{uuid.uuid4().hex}"


async def test_no_window_holds_more_than_the_rate(throttle):
    integration, limits = fresh(), Limits(requests=2, per_seconds=1.0)
    answers = await throttle.admit([(integration, limits)] * 4)
    assert [a.wait == 0 for a in answers] == [True, True, False, False]
    assert 0.9 < answers[2].wait <= 1.0  # when the first of the two leaves the window
    # Another integration is not held up by this one.
    assert (await throttle.admit([(fresh(), limits)]))[0].wait == 0


async def test_concurrency_is_a_lease_given_back_or_expiring(throttle):
    integration, limits = fresh(), Limits(max_concurrency=2)
    first, second, third = await throttle.admit([(integration, limits)] * 3)
    assert first.lease and second.lease and third.wait > 0 and third.lease is None
    await throttle.release(integration, first.lease)
    assert (await throttle.admit([(integration, limits)]))[0].lease

    short = Throttle(throttle.redis, lease_seconds=0.2)  # a worker that died holding its slot
    other = fresh()
    taken = await short.admit([(other, Limits(max_concurrency=1))])
    assert taken[0].lease
    await asyncio.sleep(0.3)
    assert (await short.admit([(other, Limits(max_concurrency=1))]))[0].lease


async def test_a_429_pauses_every_send_then_halves_the_rate(throttle):
    integration = fresh()
    await throttle.pause(integration, 0.5)
    [paused] = await throttle.admit([(integration, Limits())])  # even without limits of its own
    assert 0.3 < paused.wait <= 0.5
    await asyncio.sleep(0.55)
    limits = Limits(requests=1, per_seconds=0.2)
    first, second = await throttle.admit([(integration, limits)] * 2)
    assert first.wait == 0 and 0.3 < second.wait <= 0.4  # the 0.2 s window doubled while slowed


async def test_a_batch_mixing_limited_and_unlimited_integrations_is_answered_in_order(throttle):
    limited, paused, free = fresh(), fresh(), fresh()
    await throttle.pause(paused, 1.0)
    one_a_second = Limits(requests=1, per_seconds=1.0)
    answers = await throttle.admit([(limited, one_a_second), (paused, Limits()), (free, Limits()),
                                    (limited, one_a_second), (paused, Limits()), (free, Limits())])
    assert [a.wait == 0 for a in answers] == [True, False, True, False, False, True]
    assert answers[1].why == answers[4].why == PAUSED and 0.8 < answers[1].wait <= 1.0
    assert answers[3].why == RATE
    assert all(a.lease is None for a in answers)


def test_defaults_and_validation():
    assert limits_of("SLACK", {}) == Limits(requests=1, per_seconds=1.0)
    assert limits_of("DISCORD", {}).requests == 1
    assert not limits_of("WEBHOOK", {}).limited
    assert not limits_of("SLACK", {"rateLimit": None}).limited  # explicitly unlimited
    assert limits_of("WEBHOOK", {"rateLimit": {"requests": 5, "perSeconds": 2}, "maxConcurrency": 3}) == Limits(
        5, 2.0, 3)
    clean, errors = validate_limits({"rateLimit": {"requests": 10, "perSeconds": 1}, "maxConcurrency": 4})
    assert errors == [] and clean == {"rateLimit": {"requests": 10, "perSeconds": 1}, "maxConcurrency": 4}
    cases = [
        ({"rateLimit": {"requests": 0, "perSeconds": 1}}, "config.rateLimit.requests"),
        ({"rateLimit": {"requests": 1.5}}, "config.rateLimit.requests"),
        ({"rateLimit": {"requests": 1, "perSeconds": 0}}, "config.rateLimit.perSeconds"),
        ({"rateLimit": {"requests": 1, "per": 1}}, "config.rateLimit"),
        ({"rateLimit": "1/s"}, "config.rateLimit"),
        ({"maxConcurrency": 0}, "config.maxConcurrency"),
        ({"maxConcurrency": True}, "config.maxConcurrency"),
    ]
    for config, field in cases:
        _, errors = validate_limits(config)
        assert [e.field for e in errors] == [field], config


async def test_sends_held_back_get_slots_at_the_rate_not_all_the_same_time(throttle):
    integration, limits = fresh(), Limits(requests=2, per_seconds=1.0)
    answers = await throttle.admit([(integration, limits)] * 5)
    waits = [a.wait for a in answers]
    assert waits[:2] == [0, 0]
    # The third may go when the first leaves the window; the others one interval (0.5 s) after each other.
    assert 0.9 < waits[2] <= 1.0
    assert waits[3] - waits[2] == pytest.approx(0.5, abs=0.01)
    assert waits[4] - waits[3] == pytest.approx(0.5, abs=0.01)


async def test_limits_still_hold_after_redis_forgot_the_script(throttle):
    """A Redis restarted or flushed has no scripts: the limiter loads its own again and keeps counting."""
    integration, limits = fresh(), Limits(requests=1, per_seconds=1.0)
    assert (await throttle.admit([(integration, limits)]))[0].wait == 0
    await throttle.redis.script_flush()
    assert not (await throttle.redis.script_exists(throttle._script.sha))[0]
    again = await throttle.admit([(integration, limits)] * 2)
    assert [a.wait > 0 for a in again] == [True, True]  # the window still holds the first send
    assert (await throttle.redis.script_exists(throttle._script.sha))[0]


async def test_a_send_held_back_for_the_rate_keeps_its_place_for_when_it_comes_back(throttle):
    """Put back with a slot, a send that comes back for it goes as soon as the window has room, never sent
    behind the sends held back after it (which sent a backlog round and round)."""
    integration, limits = fresh(), Limits(requests=1, per_seconds=0.5)
    first, held, later = await throttle.admit([(integration, limits)] * 3, ["a", "b", "c"])
    assert first.wait == 0 and held.why == later.why == RATE
    assert held.wait == pytest.approx(0.5, abs=0.02) and later.wait == pytest.approx(1.0, abs=0.02)
    await asyncio.sleep(held.wait + 0.05)
    # A newer send finds the window empty and takes it: a slot is not left unused for a late send.
    newcomer, back = await throttle.admit([(integration, limits)] * 2, ["d", "b"])
    assert newcomer.wait == 0
    assert back.why == RATE and back.wait == pytest.approx(0.5, abs=0.05)  # when "d" leaves the window
    assert back.wait < later.wait - 0.3  # not behind "c"'s slot
    await asyncio.sleep(back.wait + 0.02)
    [back] = await throttle.admit([(integration, limits)], ["b"])
    assert back.wait == 0
    # Its slot is spent: asking again for the same send is a new send, behind the others.
    [again] = await throttle.admit([(integration, limits)], ["b"])
    assert again.why == RATE and again.wait > 0.4


async def test_sends_booked_at_publish_get_slots_in_order_a_burst_within_the_rate_at_once(throttle):
    integration, limits = fresh(), Limits(requests=2, per_seconds=1.0)
    [waits] = await throttle.book([(integration, limits, ["a", "b", "c", "d", "e"])])
    assert waits[:2] == [0, 0]
    assert waits[2:] == pytest.approx([1.0, 1.0, 2.0], abs=0.01)  # no window of 1 s holds more than 2
    # A later publish is booked behind them, not beside the first ones.
    [[later]] = await throttle.book([(integration, limits, ["f"])])
    assert later == pytest.approx(2.0, abs=0.1)  # counted from this later call
    # Two integrations in one round trip: one's backlog does not hold the other.
    other = fresh()
    first, second = await throttle.book([(integration, limits, ["g"]), (other, limits, ["h"])])
    assert first[0] == pytest.approx(3.0, abs=0.02) and second == [0]


async def test_a_booked_send_goes_at_its_slot_and_not_before(throttle):
    integration, limits = fresh(), Limits(requests=1, per_seconds=0.4)
    [waits] = await throttle.book([(integration, limits, ["a", "b"])])
    assert waits[0] == 0 and waits[1] == pytest.approx(0.4, abs=0.01)
    [first] = await throttle.admit([(integration, limits)], ["a"])
    assert first.wait == 0
    [early] = await throttle.admit([(integration, limits)], ["b"])
    assert early.why == RATE and 0.3 < early.wait <= 0.4  # its slot is kept: asking early changes nothing
    await asyncio.sleep(early.wait + 0.05)
    [on_time] = await throttle.admit([(integration, limits)], ["b"])
    assert on_time.wait == 0
    # The sends made count too: one booked now waits for the window, behind "b".
    [[next_one]] = await throttle.book([(integration, limits, ["c"])])
    assert 0.3 < next_one <= 0.4


async def test_booking_counts_from_the_end_of_a_429_pause_and_the_slowed_rate(throttle):
    integration, limits = fresh(), Limits(requests=1, per_seconds=0.2)
    await throttle.pause(integration, 0.5)
    [waits] = await throttle.book([(integration, limits, ["a", "b"])])
    assert 0.45 < waits[0] <= 0.5
    assert waits[1] - waits[0] == pytest.approx(0.4, abs=0.01)  # the 0.2 s window doubled while slowed


async def test_booked_slots_never_put_more_than_the_rate_in_a_window_however_they_are_asked_for(throttle):
    """Sends made, then bookings one at a time and many at once: in order, and no window of `perSeconds`
    holds more than `requests` of the sends and slots together."""
    integration, limits = fresh(), Limits(requests=3, per_seconds=1.0)
    began = time.time()
    made = await throttle.admit([(integration, limits)] * 2)
    assert all(a.wait == 0 for a in made)
    schedule = [began, began]  # when each send goes, on this clock (each answer counts from its call)

    async def book(names: list[str]) -> None:
        asked = time.time()
        [waits] = await throttle.book([(integration, limits, names)])
        schedule.extend(asked + wait for wait in waits)

    await book([f"a{n}" for n in range(7)])
    for n in range(5):
        await book([f"b{n}"])
    await book(["c0", "c1", "c2", "c3"])
    assert all(b >= a - 0.01 for a, b in zip(schedule, schedule[1:], strict=False)), schedule
    for end in schedule:
        assert sum(1 for t in schedule if end - 1.0 + 0.01 < t <= end + 0.01) <= 3, schedule
    # At the rate, not slower: one more beside the two sends, then three to a window.
    offsets = [t - began for t in schedule]
    assert offsets[2] == pytest.approx(0, abs=0.05) and offsets[3] == pytest.approx(1.0, abs=0.05)
    assert offsets[-1] == pytest.approx(5.0, abs=0.1)


async def test_slots_given_back_are_booked_again_and_no_send_is_held_behind_them(throttle):
    integration, limits = fresh(), Limits(requests=1, per_seconds=0.5)
    [waits] = await throttle.book([(integration, limits, ["a", "b", "c"])])
    assert waits == pytest.approx([0, 0.5, 1.0], abs=0.01)
    await throttle.unbook([(integration, ["b", "c"])])
    [[again]] = await throttle.book([(integration, limits, ["d"])])
    assert again == pytest.approx(0.5, abs=0.02)  # right behind "a", not behind the slots given back
    # A send the worker holds back is not put behind them either.
    [made, held] = await throttle.admit([(integration, limits)] * 2, ["a", "e"])
    assert made.wait == 0 and held.why == RATE and held.wait == pytest.approx(1.0, abs=0.05)  # behind "d"
