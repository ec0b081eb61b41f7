"""Retry schedule, jitter and Retry-After handling."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Delays after the 1st..7th failed attempt: 8 attempts, about 27 hours in total.
DEFAULT_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})


def parse_schedule(text: str | None) -> tuple[float, ...]:
    """Comma-separated non-negative seconds such as ``"1,5,30"``; blank or None gives the default."""
    if text is None or not text.strip():
        return DEFAULT_SCHEDULE
    delays: list[float] = []
    for position, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        try:
            delay = float(entry)
        except ValueError:
            raise ValueError(
                f"retry schedule entry {position} ({entry!r}) is not a number of seconds"
            ) from None
        if not math.isfinite(delay) or delay < 0:
            raise ValueError(
                f"retry schedule entry {position} ({entry!r}) must be a finite, "
                "non-negative number of seconds"
            )
        delays.append(delay)
    return tuple(delays)


def next_delay(
    attempts_made: int,
    schedule: Sequence[float],
    *,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or None when the schedule is exhausted.

    After 1 attempt the delay is ``schedule[0]``, each scaled by a random factor in
    ``[1 - jitter, 1 + jitter]``.
    """
    if attempts_made < 1:
        raise ValueError("attempts_made must be at least 1")
    if attempts_made > len(schedule):
        return None
    base = float(schedule[attempts_made - 1])
    if jitter <= 0 or base == 0:
        return base
    factor = (rng or random).uniform(1 - jitter, 1 + jitter)
    return max(0.0, base * factor)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or invalid.

    A date in the past gives 0. ``now`` should be timezone-aware; a naive one is taken as UTC.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def clamp_retry_after(seconds: float, minimum: float = 1.0, maximum: float = 3600.0) -> float:
    return min(max(seconds, minimum), maximum)
