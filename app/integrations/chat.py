"""Chat incoming webhooks (Slack, Discord): config `{url}`, a URL that is itself the credential, and
one JSON POST per event, plus the payload helpers both message builders use."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson

from app.config import Settings
from app.core.errors import CommonErrorCode, FieldError, IntegrationErrorCode
from app.core.http import USER_AGENT, OutgoingRequest, mask_url
from app.integrations.base import DeliveryContext, IntegrationKind, Validated, is_masked
from app.integrations.templates import TEMPLATE_KEY, output_for
from app.integrations.urls import validate_target_url

ELLIPSIS = "…"


class ChatWebhookKind(IntegrationKind):
    """Slack and Discord: config `{url}`, a URL that is itself the credential, one JSON POST per event.

    The real URL is kept with the encrypted secrets (`secrets.url`); `config.url` holds only its
    masked form, which is what queries, the delivery log and live updates show.
    """

    url_is_secret = True
    supports_template = True  # a string output is the message text, an object the whole message

    def validate(self, config, secrets, *, existing_secrets, settings: Settings) -> Validated:
        return validate_url_only(config, secrets, settings, existing_secrets)

    def build_request(self, ctx: DeliveryContext) -> OutgoingRequest:
        if ctx.config.get(TEMPLATE_KEY) is not None:
            return json_post(webhook_url(ctx), output_for(self, ctx))
        return json_post(webhook_url(ctx), self.build_message(ctx))

    def build_message(self, ctx: DeliveryContext) -> dict[str, Any]:
        raise NotImplementedError


def webhook_url(ctx: DeliveryContext) -> str:
    """The real webhook URL: from the secrets; a row not yet migrated still has it in its config."""
    url = ctx.secrets.get("url")
    return url if isinstance(url, str) and url else ctx.config["url"]


def json_post(url: str, payload: Any) -> OutgoingRequest:
    """The plain JSON POST that chat webhooks take; their URL is their credential."""
    return OutgoingRequest(
        method="POST",
        url=url,
        body=orjson.dumps(payload),
        headers={"content-type": "application/json", "user-agent": USER_AGENT},
        secret_url=True,
    )


def validate_url_only(config: dict[str, Any], secrets: dict[str, Any], settings: Settings,
                      existing_secrets: dict[str, Any] | None = None) -> Validated:
    """Config `{url}` and no other input: the shape of Slack and Discord webhooks.

    The URL goes to the secrets and its masked form to the config. The masked URL a query
    returned, sent back (or left in the stored config on update), keeps the stored URL.
    """
    config = dict(config)
    given = config.pop("url", None)
    kept = (existing_secrets or {}).get("url")
    if isinstance(given, str) and isinstance(kept, str) and given in (kept, mask_url(kept)):
        url, error = kept, None
    elif isinstance(given, str) and is_masked(given):
        url, error = None, FieldError("config.url", "this is the masked URL a query shows; send the full webhook "
                                                    "URL", IntegrationErrorCode.INVALID_URL)
    else:
        url, error = validate_target_url(given, "config.url", settings)
    errors = [error] if error else []
    errors += [FieldError(f"config.{k}", f"unknown config field {k!r}", CommonErrorCode.UNKNOWN_FIELD) for k in config]
    errors += [FieldError(f"secrets.{k}", f"unknown secret {k!r}", CommonErrorCode.UNKNOWN_FIELD) for k in secrets]
    if url is None:
        return Validated(config={"url": None}, secrets={}, errors=errors)
    return Validated(config={"url": mask_url(url)}, secrets={"url": url}, errors=errors)


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
