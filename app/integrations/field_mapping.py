"""Payload paths: how a type's config maps provider fields to values of the event.

A path is dotted (`post.author.email`, list items by index: `items.0.name`) or one of the
pseudo-paths of the delivery itself: `$event`, `$timestamp`, `$delivery_id`, `$form`, `$workspace`.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from app.core.errors import CommonErrorCode, FieldError, IntegrationErrorCode
from app.integrations.base import DeliveryContext

PATH_RE = re.compile(r"^(\$[a-z_]+|[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*)$")
PSEUDO_PATHS = frozenset({"$event", "$timestamp", "$delivery_id", "$form", "$workspace"})
MAX_PATH_LENGTH = 200


def validate_path(value: Any, path: str, *, required: bool = True) -> FieldError | None:
    if value is None or value == "":
        return FieldError(path, "is required", CommonErrorCode.REQUIRED) if required else None
    if not isinstance(value, str):
        return FieldError(path, "must be a payload path such as post.author.email", CommonErrorCode.INVALID)
    if len(value) > MAX_PATH_LENGTH or not PATH_RE.match(value):
        return FieldError(
            path, f"{value!r} is not a payload path such as post.author.email", IntegrationErrorCode.INVALID_PATH
        )
    if value.startswith("$") and value not in PSEUDO_PATHS:
        message = f"unknown special path; use one of {', '.join(sorted(PSEUDO_PATHS))}"
        return FieldError(path, message, IntegrationErrorCode.INVALID_PATH)
    return None


def resolve_path(ctx: DeliveryContext, path: str) -> Any:
    """The payload value at a dotted path (list items by index), or None when absent."""
    if path.startswith("$"):
        return _pseudo(ctx, path)
    return value_at(ctx.payload, path)


def value_at(payload: Any, path: str) -> Any:
    """The value at a dotted path in `payload` (list items by index), or None when absent."""
    value: Any = payload
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _pseudo(ctx: DeliveryContext, path: str) -> Any:
    return {
        "$event": ctx.event_type,
        "$timestamp": ctx.timestamp.isoformat().replace("+00:00", "Z"),
        "$delivery_id": ctx.delivery_id,
        "$form": ctx.form_slug,
        "$workspace": ctx.workspace_slug,
    }.get(path)


def as_text(value: Any) -> str | None:
    """A value as provider text: booleans as true/false, objects and lists as JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def validate_mapping(
    value: Any,
    path: str,
    *,
    key_re: re.Pattern[str],
    required_keys: tuple[str, ...] = (),
    max_items: int = 100,
) -> tuple[dict[str, str], list[FieldError]]:
    """`{provider field: payload path}`; errors point at `path.<field>`."""
    if not isinstance(value, dict):
        return {}, [FieldError(path, "must be an object of field name to payload path", CommonErrorCode.INVALID)]
    errors: list[FieldError] = []
    if len(value) > max_items:
        errors.append(FieldError(path, f"may map at most {max_items} fields", CommonErrorCode.TOO_LONG))
    clean: dict[str, str] = {}
    for key, source in value.items():
        sub = f"{path}.{key}"
        if not isinstance(key, str) or not key_re.match(key):
            errors.append(FieldError(sub, f"{key!r} is not a valid field name", CommonErrorCode.INVALID))
        elif err := validate_path(source, sub):
            errors.append(err)
        else:
            clean[key] = source
    for key in required_keys:
        if key not in value:
            errors.append(FieldError(f"{path}.{key}", "is required", CommonErrorCode.REQUIRED))
    return clean, errors


def unknown_fields(config: dict[str, Any], prefix: str = "config") -> list[FieldError]:
    """An error for every config field a type did not take out of `config`."""
    return [FieldError(f"{prefix}.{k}", f"unknown config field {k!r}", CommonErrorCode.UNKNOWN_FIELD) for k in config]
