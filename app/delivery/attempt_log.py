"""One log line per delivery attempt, and nothing secret in it.

The line carries ids, the attempt's number and trigger, the status code, the time taken, a short
`outcome` class and the delivery's next status. It never carries headers, bodies or URLs. Its only
free text is the error the delivery log shows too, scrubbed first of every secret the integration
holds (signing secrets, custom header values, OAuth tokens) and of a chat webhook's URL and token,
should a receiver or a client library have quoted one back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from app.core.http import Recorded
from app.core.logging import REDACTED, get_logger

if TYPE_CHECKING:
    from app.core.secret_box import SecretBox
    from app.models import Delivery, DeliveryAttempt

log = get_logger("app.delivery.sender")

EVENT = "delivery.attempt"
MAX_ERROR_CHARS = 500
# Shorter values are not masked inside error text: "500" or "ok" would mangle the message and say nothing.
MIN_SECRET_CHARS = 6

# How `app.core.http.describe_error` starts the errors it writes for a failed send.
_TIMEOUT_PREFIXES = ("timed out",)
_BLOCKED_PREFIXES = ("blocked:",)
_CONNECTION_PREFIXES = (
    "dns lookup failed", "connection failed", "the server closed the connection", "egress proxy",
    "serverdisconnectederror", "clientconnectionerror", "clientoserror", "clientconnectorerror",
    "serverconnectionerror", "connectionreseterror", "connectionrefusederror", "connectionerror",
)


def classify_outcome(success: bool, status_code: int | None, error: str | None = None) -> str:
    """A short class for an attempt: success, http_3xx, http_4xx, http_5xx, timeout, connection,
    ssrf_blocked or error (anything else: a receiver's 2xx refusal, a plugin's own failure)."""
    if success:
        return "success"
    if status_code is not None:
        if 300 <= status_code < 400:
            return "http_3xx"
        if 400 <= status_code < 500:
            return "http_4xx"
        if 500 <= status_code < 600:
            return "http_5xx"
        return "error"
    text = (error or "").strip().lower()
    if text.startswith(_BLOCKED_PREFIXES):
        return "ssrf_blocked"
    if text.startswith(_TIMEOUT_PREFIXES):
        return "timeout"
    if text.startswith(_CONNECTION_PREFIXES):
        return "connection"
    return "error"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _strings(item)


def secret_values(records: Sequence[Recorded], secrets: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(secret, replacement) pairs for what must not appear in a log line, longest first."""
    pairs: dict[str, str] = {}
    for value in _strings(secrets or {}):
        pairs.setdefault(value, REDACTED)
    for record in records:
        request = record.request
        for name, value in request.headers.items():
            if name.lower() in request.secret_headers or name.lower() == "authorization":
                pairs.setdefault(value, REDACTED)
        if request.secret_url:
            pairs[request.url] = request.log_url
            token = request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            pairs.setdefault(token, REDACTED)
    return sorted(((k, v) for k, v in pairs.items() if len(k) >= MIN_SECRET_CHARS), key=lambda kv: -len(kv[0]))


def scrub(text: str | None, secrets: Iterable[tuple[str, str]]) -> str | None:
    """`text` without any of `secrets`, cut to MAX_ERROR_CHARS."""
    if text is None:
        return None
    for secret, replacement in secrets:
        if secret in text:
            text = text.replace(secret, replacement)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def log_attempt(
    *,
    delivery_id: str,
    integration_id: str,
    integration_type: str,
    workspace_id: str,
    event_type: str,
    attempt: int,
    trigger: str,
    status_code: int | None,
    duration_ms: int | None,
    success: bool,
    status: str,
    error: str | None,
    is_test: bool,
    secrets: list[tuple[str, str]] | None = None,
) -> None:
    """Writes the `delivery.attempt` line: info when it succeeded, warning otherwise."""
    fields: dict[str, Any] = dict(
        delivery_id=delivery_id,
        integration_id=integration_id,
        integration_type=integration_type,
        workspace_id=workspace_id,
        event_type=event_type,
        attempt=attempt,
        trigger=trigger,
        status_code=status_code,
        duration_ms=duration_ms,
        outcome=classify_outcome(success, status_code, error),
        status=status,
        is_test=is_test,
    )
    if success:
        log.info(EVENT, **fields)
    else:
        log.warning(EVENT, **fields, error=scrub(error, secrets or ()))


def log_not_sent(*, delivery_id: str, integration_id: str, workspace_id: str, status: str, reason: str) -> None:
    """A claimed delivery finished without a send (its integration was switched off or is held)."""
    log.info("delivery.not_sent", delivery_id=delivery_id, integration_id=integration_id,
             workspace_id=workspace_id, status=status, reason=reason)


def log_recorded(delivery: Delivery, attempt: DeliveryAttempt, records: Sequence[Recorded], success: bool,
                 box: SecretBox) -> None:
    """`log_attempt` for an attempt the sender has just recorded; never raises (a log line must not
    cost a delivery its retry)."""
    try:
        secrets = None
        if not success and attempt.error:
            secrets = secret_values(records, box.open_cached(delivery.integration.secrets_encrypted))
        log_attempt(
            delivery_id=delivery.id,
            integration_id=delivery.integration_id,
            integration_type=delivery.integration.type,
            workspace_id=delivery.workspace_id,
            event_type=delivery.event_type,
            attempt=attempt.number,
            trigger=attempt.trigger,
            status_code=attempt.response_code,
            duration_ms=attempt.duration_ms,
            success=success,
            status=str(delivery.status),
            error=attempt.error,
            is_test=delivery.is_test,
            secrets=secrets,
        )
    except Exception:
        log.error("delivery.attempt_log_failed", delivery_id=delivery.id, exc_info=True)
