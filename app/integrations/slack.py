"""Slack incoming webhooks: a Block Kit message per event, inside Slack's block limits."""

from __future__ import annotations

from typing import Any

from app.core.retry import retry_after
from app.integrations.base import ConfigField, DeliveryContext, Outcome
from app.integrations.chat import ELLIPSIS, ChatWebhookKind, flat_fields, payload_title, payload_url, truncate
from app.integrations.templates import TemplateFailed, type_name

TEXT_LIMIT = 3000
HEADER_LIMIT = 150
FIELD_LIMIT = 2000
MAX_FIELDS = 10
BUTTON_TEXT = "Open"
URL_LIMIT = 3000
MESSAGE_TEXT_LIMIT = 40000  # Slack cuts a message's `text` longer than this


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

    def body_from_template(self, output: Any) -> Any:
        """A string is the message text, escaped (no <!channel> pings from the payload); an object is the
        whole message (`text`, `blocks`), sent as it is."""
        if isinstance(output, str):
            return {"text": escaped(output, MESSAGE_TEXT_LIMIT)}
        if isinstance(output, dict):
            return output
        raise TemplateFailed(f"a Slack template must answer a string (the message text) or an object (the "
                             f"message), not {type_name(output)}")

    def read_response(self, status: int, headers: dict[str, str], body: bytes) -> Outcome:
        if 200 <= status < 300:
            return Outcome(success=True)
        # Slack answers errors as short text bodies such as "invalid_payload" or "no_service".
        reason = body[:200].decode("utf-8", "replace").strip()
        error = f"Slack answered HTTP {status}" + (f": {reason}" if reason else "")
        if status == 429:
            return Outcome(success=False, error=error, retry_after=retry_after(headers))
        if status in (404, 410):  # no_service, channel_is_archived, team_disabled: the webhook is gone
            return Outcome(success=False, error=error, gone=True, retryable=False)
        if status == 400:  # invalid_payload and friends: the same message fails again
            return Outcome(success=False, error=error, retryable=False)
        return Outcome(success=False, error=error, retry_after=retry_after(headers))


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
    prefix = f"[test from {workspace_label(ctx)}] " if ctx.is_test else ""
    return {"text": escaped(f"{prefix}{ctx.event_type}: {heading}", TEXT_LIMIT), "blocks": blocks}


def workspace_label(ctx: DeliveryContext) -> str:
    """The workspace as people know it, name and slug: `Acme Corp (acme)`."""
    name = " ".join(ctx.workspace_name.split())
    return f"{name} ({ctx.workspace_slug})" if name and name != ctx.workspace_slug else ctx.workspace_slug


def header_block(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text, HEADER_LIMIT), "emoji": True}}


def context_block(ctx: DeliveryContext) -> dict[str, Any]:
    parts = [f"`{ctx.event_type}`"] + ([f"form `{ctx.form_slug}`"] if ctx.form_slug else [])
    elements = [{"type": "mrkdwn", "text": escaped(" · ".join(parts), TEXT_LIMIT)}]
    if ctx.is_test:
        origin = escaped(f"Test delivery from Hookyard workspace {workspace_label(ctx)}", TEXT_LIMIT - 12)
        elements.append({"type": "mrkdwn", "text": f":test_tube: {origin}"})
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
