"""A DeliveryContext builder and config/token helpers for integration tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.config import Settings
from app.integrations.base import DeliveryContext


def make_ctx(
    config: dict[str, Any],
    payload: Any,
    *,
    secrets: dict[str, Any] | None = None,
    settings: Settings | None = None,
    is_test: bool = False,
    event_type: str = "session.completed",
    form_slug: str | None = None,
    shared: dict[str, Any] | None = None,
) -> DeliveryContext:
    return DeliveryContext(
        delivery_id="del_1",
        event_type=event_type,
        payload=payload,
        timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        is_test=is_test,
        config=config,
        secrets=dict(secrets or {}),
        workspace_slug="acme",
        integration_name="test",
        form_slug=form_slug,
        settings=settings,
        shared={} if shared is None else shared,
    )


# ------------------------------------------------------------------ the OAuth types

SHEET_ID = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"


def valid_config(kind, config, settings):
    validated = kind.validate(config, {}, existing_secrets=None, settings=settings)
    assert validated.errors == []
    return validated.config


def connected(fake, provider, **kw):
    tokens = fake.issue_tokens(provider, **kw)
    return {k: tokens[k] for k in ("access_token", "refresh_token", "expires_at")}


def errors_of(kind, config, secrets=None, existing=None):
    validated = kind.validate(config, secrets or {}, existing_secrets=existing, settings=Settings())
    return {(e.field, e.code) for e in validated.errors}, validated
