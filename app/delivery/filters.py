"""Event filters: exact names, ``*`` and prefix wildcards such as ``session.*``."""

from __future__ import annotations

import re
from collections.abc import Sequence

EVENT_NAME_MAX_LENGTH = 100
WILDCARD = "*"

# Segments of [a-z0-9_] joined by "." or ":"; the length limit is checked separately.
EVENT_NAME_RE = re.compile(r"^[a-z0-9_]+(?:[.:][a-z0-9_]+)*$")


def is_valid_event_name(name: str) -> bool:
    return 0 < len(name) <= EVENT_NAME_MAX_LENGTH and EVENT_NAME_RE.fullmatch(name) is not None


def _event_name_error(name: str, what: str) -> str | None:
    if not name:
        return f"{what} is empty"
    if len(name) > EVENT_NAME_MAX_LENGTH:
        return f"{what} is longer than {EVENT_NAME_MAX_LENGTH} characters"
    if name != name.strip() or any(ch.isspace() for ch in name):
        return f"{what} may not contain spaces"
    if any(ch.isupper() for ch in name):
        return f"{what} must be lowercase"
    if EVENT_NAME_RE.fullmatch(name) is None:
        return (
            f"{what} must be segments of lowercase letters, digits and '_' "
            "joined by '.' or ':' (for example 'session.completed')"
        )
    return None


def validate_event_filter(pattern: str) -> str | None:
    """Return a human error message for an invalid filter, or None when it is valid."""
    if not isinstance(pattern, str):
        return "event filter must be a string"
    if pattern == WILDCARD:
        return None
    if WILDCARD in pattern:
        if pattern.endswith((".*", ":*")) and WILDCARD not in pattern[:-2]:
            prefix_error = _event_name_error(pattern[:-2], "wildcard prefix")
            return None if prefix_error is None else f"'{pattern}': {prefix_error}"
        return (
            f"'{pattern}': '*' is only allowed alone or as a whole last segment "
            "after '.' or ':' (for example 'session.*')"
        )
    error = _event_name_error(pattern, "event name")
    return None if error is None else f"'{pattern}': {error}"


def _matches_one(pattern: str, event_type: str) -> bool:
    if pattern == WILDCARD:
        return True
    if pattern.endswith((".*", ":*")):
        # Keep the separator: "session.*" must not match "session" or "sessions.x".
        prefix = pattern[:-1]
        return event_type.startswith(prefix) and len(event_type) > len(prefix)
    return pattern == event_type


def matches(filters: Sequence[str], event_type: str) -> bool:
    """True when any filter matches ``event_type``; an empty list matches nothing."""
    return any(_matches_one(pattern, event_type) for pattern in filters)
