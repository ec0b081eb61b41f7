"""Discord webhooks: one embed per event, cut to fit Discord's embed limits."""

from __future__ import annotations

from typing import Any

import orjson

from app.core.retry import retry_after
from app.integrations.base import ConfigField, DeliveryContext, Outcome
from app.integrations.chat import ELLIPSIS, ChatWebhookKind, flat_fields, payload_title, payload_url
from app.integrations.templates import TemplateFailed, type_name

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
MAX_FIELDS = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
URL_LIMIT = 2048
INLINE_UNDER = 40
TEXT_KEYS = ("description", "message", "body", "text")
COLOR = 0x5865F2
TEST_COLOR = 0xFEE75C
MARKDOWN_CHARS = frozenset("\\*_~`|[]()<>")


def units(text: str) -> int:
    """Length in UTF-16 code units: never less than the code-point count, so it is safe either way."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    if units(text) <= limit:
        return text
    if limit <= 0:
        return ""
    out = text[: limit - 1]
    while units(out) > limit - 1:
        out = out[: len(out) - max(1, (units(out) - (limit - 1)) // 2)]
    return out + ELLIPSIS


class Budget:
    """Characters left for the whole embed (title, description, fields, footer)."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, text: str, limit: int) -> str:
        out = cut(text, min(limit, self.left))
        self.left -= units(out)
        return out


class DiscordKind(ChatWebhookKind):
    type = "DISCORD"
    label = "Discord"
    config_fields = (
        ConfigField("url", "Webhook URL", "url", required=True, description="https://discord.com/api/webhooks/..."),
    )

    def build_message(self, ctx: DeliveryContext) -> dict[str, Any]:
        return message(ctx)

    def body_from_template(self, output: Any) -> Any:
        """A string is the message `content`; an object is the whole message. Mentions stay off unless the
        object sets `allowed_mentions` itself."""
        if isinstance(output, str):
            return {"content": cut(output, CONTENT_LIMIT), "allowed_mentions": {"parse": []}}
        if isinstance(output, dict):
            return {"allowed_mentions": {"parse": []}, **output}
        raise TemplateFailed(f"a Discord template must answer a string (the message content) or an object (the "
                             f"message), not {type_name(output)}")

    def read_response(self, status: int, headers: dict[str, str], body: bytes) -> Outcome:
        if 200 <= status < 300:
            return Outcome(success=True)
        data = _json(body)
        error = f"Discord answered HTTP {status}" + (f": {data['message']}" if data.get("message") else "")
        if status == 429:
            return Outcome(success=False, error=error, retry_after=_body_retry_after(data, headers))
        if status == 404:  # Unknown Webhook: deleted on Discord's side
            return Outcome(success=False, error=error, gone=True, retryable=False)
        if status == 410:
            return Outcome(success=False, error=error, gone=True, retryable=False)
        if 400 <= status < 500:  # bad form body, invalid webhook token, missing access
            return Outcome(success=False, error=error, retryable=False)
        return Outcome(success=False, error=error, retry_after=retry_after(headers))


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _body_retry_after(data: dict[str, Any], headers: dict[str, str]) -> float | None:
    value = data.get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return retry_after(headers)


def workspace_label(ctx: DeliveryContext, markdown: bool = False) -> str:
    """The workspace as people know it, name and slug: `Acme Corp (acme)` (a slug needs no escaping)."""
    name = " ".join(ctx.workspace_name.split())
    if not name or name == ctx.workspace_slug:
        return ctx.workspace_slug
    return f"{escape_markdown(name) if markdown else name} ({ctx.workspace_slug})"


def escape_markdown(text: str) -> str:
    """Discord markdown characters shown as themselves (mentions are off anyway, see allowed_mentions)."""
    return "".join("\\" + ch if ch in MARKDOWN_CHARS else ch for ch in text)


def message(ctx: DeliveryContext) -> dict[str, Any]:
    test = f" — test delivery from workspace {workspace_label(ctx, markdown=True)}" if ctx.is_test else ""
    content = f"**{ctx.event_type}**" + test
    return {"content": cut(content, CONTENT_LIMIT), "embeds": [embed(ctx)], "allowed_mentions": {"parse": []}}


def embed(ctx: DeliveryContext) -> dict[str, Any]:
    budget = Budget(EMBED_TOTAL_LIMIT)
    title = payload_title(ctx.payload)
    out: dict[str, Any] = {
        "title": budget.take(title or ctx.event_type, TITLE_LIMIT),
        "footer": {"text": budget.take(footer_text(ctx), FOOTER_LIMIT)},
        "timestamp": ctx.timestamp.isoformat(),
        "color": TEST_COLOR if ctx.is_test else COLOR,
    }
    text_key, text = description_source(ctx.payload)
    if text:
        out["description"] = budget.take(text, min(DESCRIPTION_LIMIT, budget.left // 2))
    skip = frozenset(k for k in ("title" if title else None, text_key) if k)
    if isinstance(ctx.payload, dict) and (fields := embed_fields(flat_fields(ctx.payload, skip), budget)):
        out["fields"] = fields
    if url := payload_url(ctx.payload, URL_LIMIT):
        out["url"] = url
    return out


def footer_text(ctx: DeliveryContext) -> str:
    parts = ["Hookyard", ctx.event_type] + ([ctx.form_slug] if ctx.form_slug else [])
    return " · ".join(parts) + (f" · test delivery from {workspace_label(ctx)}" if ctx.is_test else "")


def description_source(payload: Any) -> tuple[str | None, str | None]:
    if not isinstance(payload, dict):
        return None, orjson.dumps(payload).decode()
    for key in TEXT_KEYS:
        if isinstance(payload.get(key), str) and payload[key].strip():
            return key, payload[key]
    return None, None


def embed_fields(pairs: list[tuple[str, str]], budget: Budget) -> list[dict[str, Any]]:
    fields = []
    for name, value in pairs[:MAX_FIELDS]:
        name = cut(name or "–", FIELD_NAME_LIMIT)
        if budget.left < units(name) + 2:
            break
        name = budget.take(name, FIELD_NAME_LIMIT)
        value = budget.take(value or "–", FIELD_VALUE_LIMIT)
        fields.append({"name": name, "value": value, "inline": units(value) < INLINE_UNDER})
    return fields
