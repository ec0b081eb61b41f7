"""Small validators shared by the services."""

from __future__ import annotations

import re
from typing import Any

from app.core.errors import CommonErrorCode, EventErrorCode, FieldError, WorkspaceErrorCode
from app.delivery.filters import validate_event_filter

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_FILTERS = 100


def validate_slug(value: Any, path: str) -> FieldError | None:
    if not isinstance(value, str) or not SLUG_RE.match(value):
        return FieldError(path, "must be 1-63 lowercase letters, digits or dashes, starting with a letter or digit",
                          WorkspaceErrorCode.INVALID_SLUG)
    return None


def validate_name(value: Any, path: str, max_length: int = 200) -> FieldError | None:
    if not isinstance(value, str) or not value.strip():
        return FieldError(path, "is required", CommonErrorCode.REQUIRED)
    if len(value) > max_length:
        return FieldError(path, f"must be at most {max_length} characters", CommonErrorCode.TOO_LONG)
    return None


def validate_event_filters(values: Any, path: str) -> tuple[list[str], list[FieldError]]:
    if not isinstance(values, list | tuple):
        return [], [FieldError(path, "must be a list of event names", CommonErrorCode.INVALID)]
    if len(values) > MAX_FILTERS:
        return [], [FieldError(path, f"at most {MAX_FILTERS} filters", CommonErrorCode.TOO_LONG)]
    errors = []
    clean: list[str] = []
    for i, pattern in enumerate(values):
        problem = validate_event_filter(pattern) if isinstance(pattern, str) else "must be a string"
        if problem:
            errors.append(FieldError(f"{path}.{i}", problem, EventErrorCode.INVALID_EVENT_FILTER))
        elif pattern not in clean:
            clean.append(pattern)
    return clean, errors
