"""Durations and points in time as an operator types them (`hookyard ... --older-than 30d --since 7d`),
and URLs shown without their password (`hookyard check`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core.durations import parse_duration, parse_when
from app.core.http import MASK, hide_password

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("15m", timedelta(minutes=15)),
    ("90s", timedelta(seconds=90)), ("1w", timedelta(weeks=1)), ("1d12h", timedelta(days=1, hours=12)),
    (" 2D ", timedelta(days=2)), ("1.5h", timedelta(minutes=90)),
])
def test_parse_duration(text, expected) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30", "d", "", "-1d", "0d", "30x", "1d-2h", "d30"])
def test_parse_duration_refuses(text) -> None:
    with pytest.raises(ValueError, match="duration|longer than zero"):
        parse_duration(text)


def test_parse_duration_too_long() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration("99999999999w")


def test_parse_when() -> None:
    assert parse_when("2025-01-31", NOW) == datetime(2025, 1, 31, tzinfo=UTC)
    assert parse_when("2025-01-31T12:00:00Z", NOW) == datetime(2025, 1, 31, 12, tzinfo=UTC)
    assert parse_when("2025-01-31T12:00:00+02:00", NOW) == datetime(2025, 1, 31, 10, tzinfo=UTC)
    assert parse_when("7d", NOW) == NOW - timedelta(days=7)
    with pytest.raises(ValueError, match="neither a date/time"):
        parse_when("last tuesday", NOW)


@pytest.mark.parametrize(("url", "shown"), [
    ("postgres://hookyard:s3cret@db:5432/hookyard", f"postgres://hookyard:{MASK}@db:5432/hookyard"),
    ("redis://:pw@127.0.0.1:6379/0", f"redis://:{MASK}@127.0.0.1:6379/0"),
    ("postgres://hookyard@db/hookyard?sslmode=require&password=x",
     f"postgres://hookyard@db/hookyard?sslmode=require&password={MASK}"),
    ("rediss://user@[::1]:6380/13", "rediss://user@[::1]:6380/13"),
    ("sqlite://./data/hookyard.db", "sqlite://./data/hookyard.db"),
    (None, None),
])
def test_hide_password(url, shown) -> None:
    assert hide_password(url) == shown
