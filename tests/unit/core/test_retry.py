import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.config import DEFAULT_RETRY_SCHEDULE as DEFAULT_SCHEDULE
from app.core.retry import (
    RETRY_AFTER_STATUSES,
    clamp_retry_after,
    next_delay,
    parse_retry_after,
)

NOW = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def test_default_schedule_is_eight_attempts_about_27_hours() -> None:
    assert DEFAULT_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert len(DEFAULT_SCHEDULE) + 1 == 8
    assert 26 * 3600 < sum(DEFAULT_SCHEDULE) < 28 * 3600


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(1, 5), (2, 300), (3, 1800), (4, 7200), (5, 18000), (6, 36000), (7, 36000), (8, None), (20, None)],
)
def test_next_delay_without_jitter(attempts: int, expected: float | None) -> None:
    assert next_delay(attempts, DEFAULT_SCHEDULE, jitter=0) == expected


def test_next_delay_jitter_stays_within_bounds_and_varies() -> None:
    rng = random.Random(1234)
    delays = [next_delay(2, DEFAULT_SCHEDULE, rng=rng) for _ in range(500)]
    assert all(d is not None and 240 <= d <= 360 for d in delays)
    assert len(set(delays)) > 100
    assert min(delays) < 260 and max(delays) > 340  # type: ignore[operator]


def test_next_delay_is_reproducible_with_seeded_rng() -> None:
    first = next_delay(3, DEFAULT_SCHEDULE, rng=random.Random(7))
    assert first == next_delay(3, DEFAULT_SCHEDULE, rng=random.Random(7))


def test_next_delay_custom_and_edge_cases() -> None:
    assert next_delay(1, (0, 0.5), jitter=0.2) == 0
    assert next_delay(3, (0, 0.5)) is None
    assert next_delay(1, ()) is None
    with pytest.raises(ValueError):
        next_delay(0, DEFAULT_SCHEDULE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("120", 120.0),
        (" 0 ", 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("²", None),
        ("Wed, 01 May 2024 10:02:00 GMT", 120.0),
        ("Wed, 01 May 2024 09:00:00 GMT", 0.0),
        ("Wednesday, 01-May-24 10:00:30 GMT", 30.0),
        ("Wed May  1 10:01:00 2024", 60.0),
        ("Wed, 32 May 2024 10:02:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_with_other_timezone_and_naive_now() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert parse_retry_after("Wed, 01 May 2024 10:00:10 GMT", NOW.astimezone(plus_two)) == 10.0
    assert parse_retry_after("Wed, 01 May 2024 10:00:10 GMT", NOW.replace(tzinfo=None)) == 10.0


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, 1.0), (0.2, 1.0), (30, 30), (3600, 3600), (86400, 3600.0), (-10, 1.0)],
)
def test_clamp_retry_after(seconds: float, expected: float) -> None:
    assert clamp_retry_after(seconds) == expected


def test_clamp_retry_after_custom_window() -> None:
    assert clamp_retry_after(2, minimum=5, maximum=10) == 5
    assert clamp_retry_after(20, minimum=5, maximum=10) == 10


def test_retry_after_statuses() -> None:
    assert RETRY_AFTER_STATUSES == {429, 502, 503, 504}
    assert 500 not in RETRY_AFTER_STATUSES
