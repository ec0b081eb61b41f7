"""Slack incoming webhooks: a Block Kit message per event, inside Slack's block limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from app.config import Settings
from app.delivery.backoff import parse_retry_after
from app.integrations.base import (
    ConfigField,
    DeliveryContext,
    FieldError,
    IntegrationKind,
    Outcome,
    OutgoingRequest,
    Validated,
    json_post,
)
from app.integrations.urls import validate_target_url

TEXT_LIMIT = 3000
HEADER_LIMIT = 150
FIELD_LIMIT = 2000
MAX_FIELDS = 10
BUTTON_TEXT = "Open"
URL_LIMIT = 3000
ELLIPSIS = "…"


class ChatWebhookKind(IntegrationKind):
    """Slack and Discord: config `{url}`, a URL that is itself the credential, one JSON POST per event."""

    url_is_secret = True

    def validate(self, config, secrets, *, existing_secrets, settings: Settings) -> Validated:
        return validate_url_only(config, secrets, settings)

    def build_request(self, ctx: DeliveryContext) -> OutgoingRequest:
        return json_post(ctx.config["url"], self.build_message(ctx))

    def build_message(self, ctx: DeliveryContext) -> dict[str, Any]:
        raise NotImplementedError


class SlackKind(ChatWebhookKind):
    type = "SLACK"
    label = "Slack"
    config_fields = (
        ConfigField(
            "url", "Incoming webhook URL", "url", required=True, description="https://hooks.slack.com/services/..."
        ),
    )

    def build_message(self, ctx: DeliveryContext) -> dict[str, Any]:
        return message(ctx)

    def read_response(self, status: int, headers: dict[str, str], body: bytes) -> Outcome:
        if 200 <= status < 300:
            return Outcome(success=True)
        # Slack answers errors as short text bodies such as "invalid_payload" or "no_service".
        reason = body[:200].decode("utf-8", "replace").strip()
        error = f"Slack answered HTTP {status}" + (f": {reason}" if reason else "")
        if status == 429:
            return Outcome(success=False, error=error, retry_after=header_retry_after(headers))
        if status in (404, 410):  # no_service, channel_is_archived, team_disabled: the webhook is gone
            return Outcome(success=False, error=error, gone=True, retryable=False)
        if status == 400:  # invalid_payload and friends: the same message fails again
            return Outcome(success=False, error=error, retryable=False)
        return Outcome(success=False, error=error, retry_after=header_retry_after(headers))


def validate_url_only(config: dict[str, Any], secrets: dict[str, Any], settings: Settings) -> Validated:
    """Config `{url}` and no secrets: the shape of Slack and Discord webhooks."""
    config = dict(config)
    url, error = validate_target_url(config.pop("url", None), "config.url", settings)
    errors = [error] if error else []
    errors += [FieldError(f"config.{k}", f"unknown config field {k!r}", "UNKNOWN_FIELD") for k in config]
    errors += [FieldError(f"secrets.{k}", f"unknown secret {k!r}", "UNKNOWN_FIELD") for k in secrets]
    return Validated(config={"url": url}, secrets={}, errors=errors)


def header_retry_after(headers: dict[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return parse_retry_after(value, datetime.now(UTC))


# ---------------------------------------------------------------- payload helpers shared with Discord


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "–"
    return str(value)


def flat_fields(payload: Any, skip: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """Top-level scalars and the scalars one dict below (as `post.title`), in payload order."""
    if not isinstance(payload, dict):
        return [("payload", orjson.dumps(payload).decode())]
    out: list[tuple[str, str]] = []
    for key, value in payload.items():
        if key in skip:
            continue
        if isinstance(value, dict):
            out += [(f"{key}.{k}", scalar_text(v)) for k, v in value.items() if not isinstance(v, dict | list)]
        elif not isinstance(value, list):
            out.append((str(key), scalar_text(value)))
    return out


def payload_title(payload: Any) -> str | None:
    title = payload.get("title") if isinstance(payload, dict) else None
    return title.strip() if isinstance(title, str) and title.strip() else None


def payload_url(payload: Any, limit: int) -> str | None:
    """The first http(s) `url`, top-level first, then one level down."""
    if not isinstance(payload, dict):
        return None
    candidates = [payload.get("url")] + [v.get("url") for v in payload.values() if isinstance(v, dict)]
    return next((c for c in candidates if _is_web_url(c, limit)), None)


def _is_web_url(value: Any, limit: int) -> bool:
    if not isinstance(value, str) or len(value) > limit or any(ch.isspace() for ch in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# ---------------------------------------------------------------- Block Kit


def escape(text: str) -> str:
    """Slack mrkdwn control characters; escaping < and > also stops <!channel> pings."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escaped(text: str, limit: int) -> str:
    """Escape, then cut to `limit` without leaving half an entity such as "&am"."""
    out = escape(text)
    if len(out) <= limit:
        return out
    cut = out[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def message(ctx: DeliveryContext) -> dict[str, Any]:
    title = payload_title(ctx.payload)
    heading = title or ctx.event_type
    blocks: list[dict[str, Any]] = [header_block(heading), context_block(ctx)]
    fields = flat_fields(ctx.payload, skip=frozenset({"title"}) if title else frozenset())
    if fields:
        blocks.append(fields_block(fields))
    if url := payload_url(ctx.payload, URL_LIMIT):
        blocks.append(button_block(url))
    prefix = "[test] " if ctx.is_test else ""
    return {"text": escaped(f"{prefix}{ctx.event_type}: {heading}", TEXT_LIMIT), "blocks": blocks}


def header_block(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text, HEADER_LIMIT), "emoji": True}}


def context_block(ctx: DeliveryContext) -> dict[str, Any]:
    parts = [f"`{ctx.event_type}`"] + ([f"form `{ctx.form_slug}`"] if ctx.form_slug else [])
    elements = [{"type": "mrkdwn", "text": escaped(" · ".join(parts), TEXT_LIMIT)}]
    if ctx.is_test:
        elements.append({"type": "mrkdwn", "text": ":test_tube: Test delivery from Hookyard"})
    return {"type": "context", "elements": elements}


def fields_block(fields: list[tuple[str, str]]) -> dict[str, Any]:
    texts = [_field_text(name, value) for name, value in fields[:MAX_FIELDS]]
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": t} for t in texts]}


def _field_text(name: str, value: str) -> str:
    label = escaped(name or "(no name)", 200)
    return f"*{label}*\n" + escaped(value, FIELD_LIMIT - len(label) - 3)


def button_block(url: str) -> dict[str, Any]:
    button = {"type": "button", "text": {"type": "plain_text", "text": BUTTON_TEXT}, "url": url}
    return {"type": "actions", "elements": [button]}
