"""Small validators shared by the services."""

from __future__ import annotations

import math
import re
from typing import Any

from app.core.errors import CommonErrorCode, EventErrorCode, FieldError, WorkspaceErrorCode
from app.delivery import ordering, throttle
from app.delivery.filters import validate_event_filter
from app.delivery.sender import MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS, TIMEOUT_KEY

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
    if not values:  # would match nothing, while leaving the list out means every event
        return [], [FieldError(path, "an empty list would deliver nothing: leave `events` out to receive every "
                                     "event, or set `enabled: false` to switch the integration off",
                               EventErrorCode.EMPTY_EVENT_FILTER)]
    errors = []
    clean: list[str] = []
    for i, pattern in enumerate(values):
        problem = validate_event_filter(pattern) if isinstance(pattern, str) else "must be a string"
        if problem:
            errors.append(FieldError(f"{path}.{i}", problem, EventErrorCode.INVALID_EVENT_FILTER))
        elif pattern not in clean:
            clean.append(pattern)
    return clean, errors


def split_common(config: dict[str, Any],
                 path: str = "config") -> tuple[dict[str, Any], dict[str, Any], list[FieldError]]:
    """Takes the settings every integration type has (`timeoutSeconds`, `rateLimit`, `maxConcurrency`,
    `ordering`, `orderingKey`) out of `config` before the type validates the rest.

    Answers the config without them, those that were set (checked; a null one means the default) and any
    errors.
    """
    rest = dict(config)
    common: dict[str, Any] = {}
    errors: list[FieldError] = []
    value = rest.pop(TIMEOUT_KEY, None)
    field_path = f"{path}.{TIMEOUT_KEY}"
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            errors.append(FieldError(field_path, "must be a number of seconds", CommonErrorCode.INVALID))
        elif not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS:
            errors.append(FieldError(field_path, f"must be between {MIN_TIMEOUT_SECONDS} and "
                                                 f"{MAX_TIMEOUT_SECONDS} seconds", CommonErrorCode.OUT_OF_RANGE))
        else:
            common[TIMEOUT_KEY] = int(value) if float(value).is_integer() else value
    limits = {key: rest.pop(key) for key in (throttle.RATE_KEY, throttle.CONCURRENCY_KEY) if key in rest}
    clean, limit_errors = throttle.validate_limits(limits, path)
    # null stores "no limit" for the rate (Slack and Discord default to 1/s); a null concurrency is the default.
    common.update({k: v for k, v in clean.items() if v is not None or k == throttle.RATE_KEY})
    order = {key: rest.pop(key) for key in (ordering.ORDERING_KEY, ordering.KEY_PATH_KEY) if key in rest}
    clean, order_errors = ordering.validate_ordering(order, path)
    common.update(clean)
    return rest, common, errors + limit_errors + order_errors


def with_common(config: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    """The config a type validated, with what `split_common` took out put back."""
    return {**config, **common} if common else config
