"""What the OAuth connect flow (`app.services.oauth_connect`) uses: a type's OAuth app, found
through the registry, and the state, PKCE, URL and code-exchange steps of the modules below.

- `oauth_client`: provider URL, PKCE, token endpoint (code exchange, refresh), OAuthError
- `oauth_state`: the signed, expiring `state`
- `oauth_tokens`: TokenSet, the tokens as stored in an integration's secrets
- `oauth_caller`: API calls while delivering, with a refresh shared per process
- `oauth_kind`: OAuthKind, the base class; each type builds its own OAuth app (`oauth_app`)
"""

from __future__ import annotations

from app.config import Settings
from app.integrations.oauth_client import OAuthError, OAuthProvider, authorization_url, exchange_code, make_pkce
from app.integrations.oauth_kind import OAuthKind
from app.integrations.oauth_state import OAuthStateError, make_state, read_state, state_nonce
from app.integrations.oauth_tokens import TokenSet
from app.integrations.registry import get_kind

__all__ = [
    "OAuthError",
    "OAuthStateError",
    "TokenSet",
    "authorization_url",
    "exchange_code",
    "make_pkce",
    "make_state",
    "provider_for",
    "read_state",
    "state_nonce",
]


def provider_for(type_name: str, settings: Settings) -> OAuthProvider | None:
    """The OAuth app of a type, or None when the type has none or its client id or secret is not configured."""
    kind = get_kind(type_name)
    return kind.oauth_app(settings) if isinstance(kind, OAuthKind) else None
