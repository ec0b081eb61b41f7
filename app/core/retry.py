"""When to try again: the retry schedule with jitter, and `Retry-After`.

The default schedule is `app.config.DEFAULT_RETRY_SCHEDULE`; settings parse
`HOOKYARD_RETRY_SCHEDULE` into the same shape.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Answers whose `Retry-After` is honoured; the header on any other status is ignored.
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})
RETRY_AFTER_MIN_SECONDS = 1.0
RETRY_AFTER_MAX_SECONDS = 3600.0


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
    """Seconds from a ``Retry-After`` value (delta-seconds or HTTP-date); None if absent or invalid.

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


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value, whatever the case of its name."""
    name = name.lower()
    return next((v for k, v in (headers or {}).items() if k.lower() == name), None)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the `Retry-After` header of an answer asks for, now."""
    return parse_retry_after(header(headers, "retry-after"), datetime.now(UTC))


def clamp_retry_after(seconds: float, minimum: float = RETRY_AFTER_MIN_SECONDS,
                      maximum: float = RETRY_AFTER_MAX_SECONDS) -> float:
    return min(max(seconds, minimum), maximum)
