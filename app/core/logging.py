"""Structured logs: structlog over the standard library, one renderer for every logger in the process.

`configure_logging` puts a single handler on the root logger whose formatter is structlog's
`ProcessorFormatter`, so Hookyard's own structlog loggers (`get_logger`) and plain stdlib loggers
(uvicorn, arq, strawberry, tortoise, aiohttp) come out the same way: JSON lines when stderr is not a
terminal, readable console lines on one; `HOOKYARD_LOG_FORMAT` (`json` | `console`) overrides.

Nothing secret belongs in a log line and callers never pass headers, bodies, chat webhook URLs,
tokens or secrets. As a safety net every line is also scrubbed of what looks like one (API tokens,
`whsec_` secrets, bearer credentials, Slack and Discord webhook paths), tracebacks are rendered
without local variables, and uvicorn's access lines lose their query strings (OAuth callbacks carry
a code and a state there).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from app.config import LOG_FORMATS, Settings

FORMATS = LOG_FORMATS
HANDLER_NAME = "hookyard"
REDACTED = "••••••"

# What a secret looks like wherever it turns up in a line: (pattern, replacement).
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bhyk_[A-Za-z0-9_-]{8,}"), "hyk_" + REDACTED),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{6,}"), "whsec_" + REDACTED),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"), r"\g<1>" + REDACTED),
    (re.compile(r"(?i)(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s\"'<>]+"), r"\g<1>" + REDACTED),
    (re.compile(r"(?i)(discord(?:app)?\.com/api/(?:v\d+/)?webhooks/)[^\s\"'<>]+"), r"\g<1>" + REDACTED),
)


# One of these (in lower case) is in any text a pattern above can match: text without any is left as it
# is without running the five patterns, as nearly every value of nearly every line is.
_SECRET_MARKERS = re.compile("|".join(
    re.escape(marker) for marker in ("hyk_", "whsec_", "bearer", "hooks.slack.com/", "discord")))


def redact_text(text: str) -> str:
    """`text` with anything shaped like a Hookyard token, signing secret, bearer credential or chat
    webhook path masked."""
    if _SECRET_MARKERS.search(text.lower()) is None:
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if depth >= 3:
        return value
    if isinstance(value, dict):
        return {k: _redact_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v, depth + 1) for v in value)
    return value


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Processor: the safety net over every rendered line (see `redact_text`)."""
    return {key: _redact_value(value) for key, value in event_dict.items()}


def _foreign_args(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Processor for stdlib records: drops their positional args (already in the message) and turns
    uvicorn's access line into fields, its query string left out."""
    args = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if record is None or record.name != "uvicorn.access":
        return event_dict
    if isinstance(args, tuple) and len(args) == 5:
        client, method, full_path, http_version, status = args
        event_dict.update(event="http.request", client=client, method=method,
                          path=str(full_path).split("?", 1)[0], http_version=http_version, status_code=status)
    else:  # a shape this does not know: keep the line, not its query strings
        event_dict["event"] = re.sub(r"\?\S*", "", str(event_dict.get("event", "")))
    return event_dict


# graphql-core quotes the values a client sent in its errors ("..., found: {'secrets': {...}}", "String
# cannot represent a non string value: ...", "Value 'x' does not exist ...") and strawberry logs every
# error with the request's source around it: a client's mistake would put its input, secrets and all,
# in the log. Those records keep the message and lose the values and the source.
_GRAPHQL_SOURCE = re.compile(r"\n\s*\nGraphQL request:.*", re.DOTALL)
_GRAPHQL_VALUES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?im)(,\s*found:?|\bfound:|\bgot invalid value)\s+\S.*$"), r"\g<1> " + REDACTED),
    (re.compile(r"(?im)(\bcannot represent\b[^:\n]*?\bvalue:)\s+\S.*$"), r"\g<1> " + REDACTED),
    (re.compile(r"(?i)\bValue\s+(['\"]).*?\1\s+does not exist"), "Value " + REDACTED + " does not exist"),
)


def graphql_error_text(text: str) -> str:
    """A GraphQL error's message without the values it quotes or the request source it shows."""
    text = _GRAPHQL_SOURCE.sub("", text)
    for pattern, replacement in _GRAPHQL_VALUES:
        text = pattern.sub(replacement, text)
    return text


def _graphql_errors(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Processor for stdlib records: strawberry's error lines through `graphql_error_text`."""
    record = event_dict.get("_record")
    if record is not None and record.name.startswith("strawberry"):
        event_dict["event"] = graphql_error_text(str(event_dict.get("event", "")))
        if isinstance(event_dict.get("exc_info"), tuple):  # the traceback's last line repeats the message
            event_dict["exception"] = graphql_error_text(
                "".join(traceback.format_exception(*event_dict.pop("exc_info"))).rstrip("\n"))
    return event_dict


def _dumps(value: Any, **kwargs: Any) -> str:
    try:
        return orjson.dumps(value, default=kwargs.get("default"), option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson refuses (huge ints, odd keys) the standard library writes somehow
        return json.dumps(value, default=repr)


def _level(name: str) -> int:
    name = (name or "info").strip().upper()
    if name == "TRACE":  # uvicorn's extra level below DEBUG
        return 5
    return logging.getLevelNamesMapping().get(name, logging.INFO)


# Applied to every entry, ours (before it is handed to logging) and stdlib's (in the formatter).
_SHARED: tuple[Processor, ...] = (
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
)
_STRUCTLOG_CHAIN: tuple[Processor, ...] = (
    structlog.stdlib.filter_by_level,
    *_SHARED,
    structlog.stdlib.PositionalArgumentsFormatter(),
    structlog.processors.StackInfoRenderer(),
    structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
)


def _ensure_structlog() -> None:
    """Routes structlog loggers into stdlib logging; the output format lives in the handler's formatter,
    so this never changes with the settings and may run before `configure_logging`."""
    if structlog.is_configured() and structlog.get_config().get("processors") == list(_STRUCTLOG_CHAIN):
        return
    structlog.configure(
        processors=list(_STRUCTLOG_CHAIN),
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=True,
    )


def resolve_format(settings: Settings, stream: TextIO | None = None) -> str:
    """`settings.log_format` when set; otherwise console on a terminal and JSON lines anywhere else."""
    if settings.log_format:
        return settings.log_format
    stream = stream or sys.stderr
    try:
        return "console" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a closed or odd stream
        return "json"


def build_formatter(fmt: str, *, colors: bool = False) -> logging.Formatter:
    """The formatter of `configure_logging`'s handler: renders structlog and stdlib records alike."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=structlog.dev.plain_traceback)
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, _foreign_args, _graphql_errors],
        pass_foreign_args=True,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become plain text here, before the scrub, and never show local variables
            # (on the send path those hold decrypted secrets).
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
    )


class _StreamHandler(logging.StreamHandler):
    """A stream handler that looks `sys.stderr` up at each write unless given a stream: test runners
    and daemonizers swap stderr, and a handler holding the old one would write to a closed file."""

    def __init__(self, stream: TextIO | None = None):
        self._fixed: TextIO | None = None
        super().__init__(stream)
        self._fixed = stream

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self._fixed = value


# arq writes a line as every job starts and ends ("→ send_delivery(...)", "← cron:sweep_due ● 0": two a
# sweep, doing nothing or not) and its counters now and then. Hookyard's `delivery.attempt` line says
# what each send did, so these are shown only at HOOKYARD_LOG_LEVEL=debug; arq's warnings and errors
# (a job that raised, ran out of tries, expired) and its start-up and shutdown lines always are.
ARQ_WORKER_LOGGER = "arq.worker"
_ARQ_CHATTER = re.compile(r"%6\.2fs [→←↻⊘●]|recording health")


class QuietArq(logging.Filter):
    """Handler filter: drops arq's per-job and health lines (see above) below debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != ARQ_WORKER_LOGGER or record.levelno > logging.INFO:
            return True
        return not (isinstance(record.msg, str) and _ARQ_CHATTER.match(record.msg))


def _our_handlers(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if h.get_name() == HANDLER_NAME]


def is_configured() -> bool:
    """Whether `configure_logging` has put its handler on the root logger in this process."""
    return bool(_our_handlers(logging.getLogger()))


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Sets up logging for the whole process; safe to call again (the handler is replaced, not added).

    `stream` defaults to whatever `sys.stderr` is at each write.
    """
    _ensure_structlog()
    fmt = resolve_format(settings, stream)
    handler = _StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    colors = False
    if fmt == "console":
        try:
            colors = (stream or sys.stderr).isatty()
        except (AttributeError, ValueError):
            colors = False
    handler.setFormatter(build_formatter(fmt, colors=colors))
    if _level(settings.log_level) > logging.DEBUG:
        handler.addFilter(QuietArq())
    root = logging.getLogger()
    for old in _our_handlers(root):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(settings.log_level))


def get_logger(name: str | None = None, **initial_values: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger writing through stdlib logging under `name` (usually `__name__`)."""
    _ensure_structlog()
    return structlog.stdlib.get_logger(name, **initial_values)

