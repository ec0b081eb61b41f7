"""The base class of the OAuth CRM types (HubSpot, Pipedrive, Google Sheets).

A subclass says how to build its OAuth app from settings (`oauth_app`), validates its config
(`validate_config`) and makes its calls (`send_event`); tokens are only set by connecting.
"""

from __future__ import annotations

from typing import Any, ClassVar

from app.config import Settings
from app.core.errors import CommonErrorCode, FieldError
from app.integrations.base import DeliveryContext, Exchange, IntegrationKind, Outcome, Validated
from app.integrations.oauth_caller import StopDelivery, TokenCaller
from app.integrations.oauth_client import OAuthProvider

SECRETS_NOT_ALLOWED = "OAuth tokens are set by connecting through integrationOAuthConnectUrl"


class OAuthKind(IntegrationKind):
    """Shared validate/deliver of the OAuth types; subclasses map config and make their calls."""

    auth = "oauth2"
    env_name: ClassVar[str]  # HOOKYARD_<env_name>_CLIENT_ID

    @classmethod
    def oauth_app(cls, settings: Settings) -> OAuthProvider | None:
        """This type's OAuth app, or None when its client id or secret is not configured."""
        raise NotImplementedError

    def unavailable_reason(self, settings: Settings) -> str | None:
        if self.oauth_app(settings) is not None:
            return None
        return (
            f"{self.label} OAuth app is not configured: set HOOKYARD_{self.env_name}_CLIENT_ID "
            f"and HOOKYARD_{self.env_name}_CLIENT_SECRET"
        )

    def validate(
        self,
        config: dict[str, Any],
        secrets: dict[str, Any],
        *,
        existing_secrets: dict[str, Any] | None,
        settings: Settings,
    ) -> Validated:
        errors = [FieldError(f"secrets.{key}", SECRETS_NOT_ALLOWED, CommonErrorCode.NOT_ALLOWED) for key in secrets]
        clean, config_errors = self.validate_config(dict(config), settings)
        return Validated(config=clean, secrets=dict(existing_secrets or {}), errors=errors + config_errors)

    def validate_config(self, config: dict[str, Any], settings: Settings) -> tuple[dict[str, Any], list[FieldError]]:
        raise NotImplementedError

    async def deliver(self, ctx: DeliveryContext, exchange: Exchange) -> Outcome:
        settings = ctx.settings
        provider = self.oauth_app(settings)
        if provider is None:
            return Outcome(success=False, error=self.unavailable_reason(settings), retryable=False)
        caller = TokenCaller(ctx, exchange, provider, self.label)
        try:
            await caller.ensure_fresh()
            return await self.send_event(ctx, caller, settings)
        except StopDelivery as stop:
            return stop.outcome

    async def send_event(self, ctx: DeliveryContext, caller: TokenCaller, settings: Settings) -> Outcome:
        raise NotImplementedError
