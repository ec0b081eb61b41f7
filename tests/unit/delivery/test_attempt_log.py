"""The `delivery.attempt` line: its outcome classes, its fields and the scrub of its error text."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import aiohttp
import pytest

from app.core.http import OutgoingRequest, Recorded, describe_error, mask_url
from app.core.logging import REDACTED
from app.core.ssrf import SSRFError
from app.delivery.attempt_log import (
    EVENT,
    MAX_ERROR_CHARS,
    classify_outcome,
    log_attempt,
    log_recorded,
    scrub,
    secret_values,
)

TIMEOUT = 2.0
CONN_KEY = SimpleNamespace(host="example.com", port=443, ssl=True)


def described(exc: BaseException) -> str:
    return describe_error(exc, TIMEOUT)


@pytest.mark.parametrize("success, status, expected", [
    (True, 200, "success"),
    (True, 204, "success"),
    (True, None, "success"),  # a plugin that needed no call of its own
    (True, 500, "success"),  # a plugin may accept what it was answered: its word counts
    (False, 301, "http_3xx"),
    (False, 400, "http_4xx"),
    (False, 410, "http_4xx"),
    (False, 429, "http_4xx"),
    (False, 500, "http_5xx"),
    (False, 503, "http_5xx"),
    (False, 200, "error"),  # a 2xx the plugin refused (an API's error inside a 200)
    (False, 999, "error"),
])
def test_outcome_from_status(success, status, expected):
    assert classify_outcome(success, status, f"HTTP {status}") == expected


@pytest.mark.parametrize("error, expected", [
    (described(aiohttp.ServerTimeoutError("read timed out")), "timeout"),
    (described(TimeoutError()), "timeout"),
    (described(SSRFError("10.0.0.1 is a private address")), "ssrf_blocked"),
    (described(aiohttp.ClientConnectorDNSError(CONN_KEY, SSRFError("169.254.169.254 is forbidden"))), "ssrf_blocked"),
    (described(aiohttp.ClientConnectorDNSError(CONN_KEY, OSError(-2, "Name or service not known"))), "connection"),
    (described(aiohttp.ClientConnectorError(CONN_KEY, OSError(111, "Connection refused"))), "connection"),
    (described(aiohttp.ServerDisconnectedError()), "connection"),
    (described(aiohttp.ClientOSError(104, "Connection reset by peer")), "connection"),
    (described(ValueError("the plugin broke")), "error"),
    (described(aiohttp.ClientPayloadError("bad chunk")), "error"),
    ("HubSpot is not connected; reconnect", "error"),
    (None, "error"),
    ("", "error"),
])
def test_outcome_without_a_status(error, expected):
    assert classify_outcome(False, None, error) == expected


def test_an_answer_wins_over_error_text():
    # The last call got an answer: its status says what happened, whatever the text.
    assert classify_outcome(False, 502, "timed out after 2 s") == "http_5xx"


CHAT_TOKEN = "Xq8sZr2LmN4vB7kP0tYw9cDe"
CHAT_URL = f"https://hooks.example.com/services/T0001/B0001/{CHAT_TOKEN}"


def records() -> list[Recorded]:
    chat = OutgoingRequest("POST", CHAT_URL, {"content-type": "application/json"}, b"{}", secret_url=True)
    hook = OutgoingRequest("POST", "https://example.com/hook",
                           {"X-Api-Key": "header-secret-value", "webhook-signature": "v1,c2lnbmF0dXJl",
                            "content-type": "application/json", "Authorization": "Bearer oauth-access-token"},
                           b"{}", secret_headers=frozenset({"x-api-key", "webhook-signature"}))
    return [Recorded(request=chat), Recorded(request=hook)]


def test_secret_values_cover_the_integrations_secrets_headers_and_chat_url():
    pairs = dict(secret_values(records(), {"signing_secret": "whsec_c2VjcmV0c2VjcmV0",
                                           "headers": {"X-Api-Key": "header-secret-value"},
                                           "tokens": {"access_token": "at-1234567", "expires_at": 123},
                                           "short": "abc"}))
    assert pairs[CHAT_URL] == mask_url(CHAT_URL)
    assert pairs[CHAT_TOKEN] == REDACTED
    for value in ("whsec_c2VjcmV0c2VjcmV0", "header-secret-value", "at-1234567", "v1,c2lnbmF0dXJl",
                  "Bearer oauth-access-token"):
        assert pairs[value] == REDACTED
    assert "abc" not in pairs  # too short to mask inside a message without mangling it
    assert "application/json" not in pairs  # not a secret header
    lengths = [len(k) for k in pairs]
    assert lengths == sorted(lengths, reverse=True)  # the URL goes before the token inside it


def test_scrub_hides_every_secret_and_keeps_the_rest():
    pairs = secret_values(records(), {"signing_secret": "own-signing-secret"})
    text = (f"Slack answered HTTP 500: no such webhook {CHAT_URL}; token {CHAT_TOKEN}; "
            "key header-secret-value; secret own-signing-secret")
    out = scrub(text, pairs)
    for secret in (CHAT_TOKEN, "header-secret-value", "own-signing-secret"):
        assert secret not in out
    assert out.startswith("Slack answered HTTP 500: no such webhook " + mask_url(CHAT_URL))
    assert scrub(None, pairs) is None
    assert scrub("HTTP 500", pairs) == "HTTP 500"


def test_scrub_cuts_long_errors():
    out = scrub("x" * 5000, [])
    assert len(out) == MAX_ERROR_CHARS and out.endswith("…")


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def captured():
    logger = logging.getLogger("app.delivery.sender")
    handler, level = Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


FIELDS = dict(delivery_id="dlv_1", integration_id="int_1", integration_type="WEBHOOK", workspace_id="ws_1",
              event_type="post.created", attempt=2, trigger="automatic", duration_ms=12, is_test=False)


def test_success_is_one_info_line_without_error(captured):
    log_attempt(**FIELDS, status_code=200, success=True, status="SUCCEEDED", error=None)
    [record] = captured
    assert record.levelno == logging.INFO
    assert record.msg == {"event": EVENT, **FIELDS, "status_code": 200, "outcome": "success", "status": "SUCCEEDED",
                          **{k: record.msg[k] for k in ("logger", "level", "timestamp")}}


def test_failure_is_one_warning_line_with_its_scrubbed_error(captured):
    pairs = secret_values(records(), {})
    log_attempt(**FIELDS, status_code=None, success=False, status="RETRYING",
                error=f"connection failed: Cannot connect to {CHAT_URL}", secrets=pairs)
    [record] = captured
    assert record.levelno == logging.WARNING
    line = record.msg
    assert line["outcome"] == "connection" and line["status"] == "RETRYING" and line["status_code"] is None
    assert line["error"] == f"connection failed: Cannot connect to {mask_url(CHAT_URL)}"
    assert CHAT_TOKEN not in str(line)


def test_log_recorded_never_raises(captured):
    broken = SimpleNamespace(id="dlv_9")  # missing everything the line needs
    attempt = SimpleNamespace(error="HTTP 500", number=1, trigger="automatic", response_code=500, duration_ms=1)
    log_recorded(broken, attempt, [], False, box=None)
    [record] = captured
    assert record.msg["event"] == "delivery.attempt_log_failed" and record.msg["delivery_id"] == "dlv_9"
