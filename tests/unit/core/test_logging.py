"""`configure_logging`: one handler, JSON lines or console text, stdlib and structlog alike, no secrets."""

from __future__ import annotations

import io
import logging

import orjson
import pytest
from pydantic import ValidationError

from app.config import Settings
from app.core.logging import HANDLER_NAME, configure_logging, get_logger, is_configured, redact_text, resolve_format

USED_LOGGERS = ("app.test", "app.delivery.sender", "arq.worker", "uvicorn", "uvicorn.access", "aiohttp.client",
                "strawberry.execution")


@pytest.fixture(autouse=True)
def restore_root(monkeypatch):
    """Whatever these tests do to the root logger is undone (the test server logs through it too), and
    the loggers they use are left at the defaults meanwhile: a uvicorn started earlier in the session
    (the test server) gives `uvicorn.access` a handler of its own and stops it propagating."""
    for name in USED_LOGGERS:
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logger, "propagate", True)
        monkeypatch.setattr(logger, "disabled", False)
        monkeypatch.setattr(logger, "level", logging.NOTSET)
    logging.Logger.manager._clear_cache()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.Logger.manager._clear_cache()


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_env_json_gives_one_json_object_per_line_for_structlog_and_stdlib(monkeypatch):
    monkeypatch.setenv("HOOKYARD_LOG_FORMAT", "json")
    monkeypatch.setenv("HOOKYARD_LOG_LEVEL", "info")
    settings = Settings()
    assert settings.log_format == "json"
    out = Tty()  # a terminal, yet the setting wins
    configure_logging(settings, stream=out)

    get_logger("app.delivery.sender").warning("delivery.attempt", delivery_id="dlv_1", attempt=2, status_code=None)
    logging.getLogger("arq.worker").info("job %s finished in %.1f s", "send_delivery", 0.25)
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                                             "/oauth/hubspot/callback?code=oauth-code-123&state=st-456", "1.1", 302)
    get_logger("app.test").debug("hidden at info")
    try:
        raise RuntimeError("it broke")
    except RuntimeError:
        get_logger("app.test").exception("with.traceback")

    ours, foreign, access, failed = lines(out)
    assert ours["event"] == "delivery.attempt" and ours["level"] == "warning"
    assert ours["logger"] == "app.delivery.sender"
    assert ours["delivery_id"] == "dlv_1" and ours["attempt"] == 2 and ours["status_code"] is None
    assert ours["timestamp"].endswith("Z")
    assert foreign == {"event": "job send_delivery finished in 0.2 s", "logger": "arq.worker", "level": "info",
                       "timestamp": foreign["timestamp"]}
    assert access["event"] == "http.request" and access["path"] == "/oauth/hubspot/callback"
    assert access["status_code"] == 302 and access["method"] == "GET"
    assert "oauth-code-123" not in out.getvalue() and "st-456" not in out.getvalue()
    assert failed["level"] == "error" and "RuntimeError: it broke" in failed["exception"]


def test_console_format_is_text():
    out = io.StringIO()
    configure_logging(Settings(log_format="console"), stream=out)
    get_logger("app.test").info("delivery.attempt", delivery_id="dlv_1")
    text = out.getvalue()
    assert "delivery.attempt" in text and "delivery_id=dlv_1" in text
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)


def test_unset_format_follows_the_terminal():
    assert resolve_format(Settings(log_format=None), Tty()) == "console"
    assert resolve_format(Settings(log_format=None), io.StringIO()) == "json"
    assert resolve_format(Settings(log_format="json"), Tty()) == "json"


@pytest.mark.parametrize("value, expected", [("json", "json"), ("JSON", "json"), (" console ", "console"),
                                             ("", None), (None, None)])
def test_log_format_setting(value, expected):
    assert Settings(log_format=value).log_format == expected


@pytest.mark.parametrize("value", ["xml", "text", "pretty"])
def test_log_format_setting_refuses_other_values(monkeypatch, value):
    monkeypatch.setenv("HOOKYARD_LOG_FORMAT", value)
    with pytest.raises(ValidationError, match="log format"):
        Settings()


def test_idempotent_and_level_from_settings():
    first, second = io.StringIO(), io.StringIO()
    configure_logging(Settings(log_format="json", log_level="warning"), stream=first)
    configure_logging(Settings(log_format="json", log_level="warning"), stream=second)
    root = logging.getLogger()
    assert [h.get_name() for h in root.handlers].count(HANDLER_NAME) == 1
    assert is_configured() and root.level == logging.WARNING
    get_logger("app.test").info("below the level")
    get_logger("app.test").warning("once")
    assert first.getvalue() == ""
    assert [line["event"] for line in lines(second)] == ["once"]


def test_handler_follows_sys_stderr(monkeypatch):
    configure_logging(Settings(log_format="json"))
    swapped = io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    get_logger("app.test").warning("to.the.current.stderr")
    assert lines(swapped)[0]["event"] == "to.the.current.stderr"


def test_secret_shaped_values_are_masked_in_every_line():
    out = io.StringIO()
    configure_logging(Settings(log_format="json"), stream=out)
    token = "hyk_" + "A1b2C3d4" * 5 + "xyz"
    get_logger("app.test").warning("leaky", note=f"Authorization: Bearer {token}", nested={"s": "whsec_c2VjcmV0eHl6"})
    logging.getLogger("aiohttp.client").warning("posting to https://hooks.slack.com/services/T1/B2/sekrit99 failed")
    text = out.getvalue()
    for secret in (token, token[4:], "c2VjcmV0eHl6", "sekrit99"):
        assert secret not in text
    assert "hooks.slack.com/services/••••••" in text


def test_tracebacks_carry_no_local_variables():
    out = io.StringIO()
    configure_logging(Settings(log_format="json"), stream=out)

    def send():
        signing_secret = "local-secret-value-123"  # noqa: F841 - what a rich traceback would show
        raise ValueError("send failed")

    try:
        send()
    except ValueError:
        logging.getLogger("app.test").exception("failed")
    [line] = lines(out)
    assert "ValueError: send failed" in line["exception"]
    assert "local-secret-value-123" not in out.getvalue()


@pytest.mark.parametrize("text, expected", [
    ("token hyk_abcdefghijklmnop", "token hyk_••••••"),
    ("Bearer abc.def-ghi", "Bearer ••••••"),
    ("https://discord.com/api/webhooks/42/tok-en", "https://discord.com/api/webhooks/••••••"),
    ("nothing to hide: HTTP 500", "nothing to hide: HTTP 500"),
    # Whatever the case the patterns allow: the quick look for their markers must not skip them.
    ("BEARER abc.def", "BEARER ••••••"),
    ("https://Hooks.Slack.com/services/T0/B0/xyz", "https://Hooks.Slack.com/services/••••••"),
    ("https://DiscordApp.com/api/v10/webhooks/42/tok", "https://DiscordApp.com/api/v10/webhooks/••••••"),
    ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw end", "secret whsec_•••••• end"),
])
def test_redact_text(text, expected):
    assert redact_text(text) == expected


def test_graphql_errors_lose_the_values_and_source_a_client_sent():
    out = io.StringIO()
    configure_logging(Settings(log_format="json"), stream=out)
    strawberry = logging.getLogger("strawberry.execution")
    strawberry.error("Variable '$input' has invalid value: Expected value of type 'IntegrationConnectInput' to "
                     "include required field 'workspace', found: {'secrets': {'secret': 'variable-secret-1'}}.")
    strawberry.error('Value \'NOPE\' does not exist in \'IntegrationType\' enum.\n\nGraphQL request:1:40\n'
                     '1 | mutation { integrationConnect(input: {type: NOPE, secrets: {secret: "inline-secret-2"}}) }')
    try:
        raise ValueError("String cannot represent a non string value: {'secret': 'raised-secret-3'}")
    except ValueError as exc:
        strawberry.error("workspace not found\n\nGraphQL request:2:3\n2 |   workspace(slug: \"x\")", exc_info=exc)
    missing, enum, raised = lines(out)
    assert missing["event"].endswith("include required field 'workspace', found: ••••••")
    assert enum["event"] == "Value •••••• does not exist in 'IntegrationType' enum."
    assert raised["event"] == "workspace not found"
    assert "String cannot represent a non string value: ••••••" in raised["exception"]
    for secret in ("variable-secret-1", "inline-secret-2", "raised-secret-3", "GraphQL request"):
        assert secret not in out.getvalue()
