"""Durations (`30d`, `12h`, `15m`, `1w2d`) and points in time (ISO 8601, or a duration ago) as an
operator types them on the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?[wdhms])+$")


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `15m`, `90s`, `1w`, or several together (`1d12h`); at least one unit, positive."""
    value = text.strip().lower().replace(" ", "")
    if not _WHOLE.match(value):
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h or 15m (units: w, d, h, m, s)")
    seconds = sum(float(number) * UNITS[unit] for number, unit in _PART.findall(value))
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is too long") from None


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or time (UTC unless it says otherwise), or a duration meaning that long ago."""
    value = text.strip()
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            ago = parse_duration(value)
        except ValueError:
            raise ValueError(f"{text!r} is neither a date/time such as 2025-01-31 or 2025-01-31T12:00:00Z "
                             "nor a duration ago such as 7d") from None
        try:
            return (now or datetime.now(UTC)) - ago
        except OverflowError:
            raise ValueError(f"{text!r} is too long ago") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
