"""Target URL validation shared by every type that posts to a user-given URL."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.core.errors import CommonErrorCode, FieldError, IntegrationErrorCode
from app.core.ssrf import check_target_url

MAX_URL_LENGTH = 2048


def validate_target_url(value: Any, path: str, settings: Settings) -> tuple[str | None, FieldError | None]:
    if value is None or value == "":
        return None, FieldError(path, "is required", CommonErrorCode.REQUIRED)
    if not isinstance(value, str):
        return None, FieldError(path, "must be a string", CommonErrorCode.INVALID)
    value = value.strip()
    if len(value) > MAX_URL_LENGTH:
        return None, FieldError(path, f"must be at most {MAX_URL_LENGTH} characters", CommonErrorCode.TOO_LONG)
    problem = check_target_url(value, settings.allowed_networks)
    if problem:
        code = IntegrationErrorCode.INSECURE_URL if "https" in problem.lower() else IntegrationErrorCode.INVALID_URL
        return None, FieldError(path, problem, code)
    return value, None
