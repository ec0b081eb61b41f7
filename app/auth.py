"""Personal access tokens: minting, hashing and checking."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from app.models import ApiToken, User

TOKEN_PREFIX = "hyk_"
TOKEN_RE = re.compile(r"^hyk_[A-Za-z0-9_-]{43}$")

ABILITIES = (
    "integrations:read",
    "integrations:write",
    "forms:write",
    "events:publish",
    "deliveries:read",
    "deliveries:write",
    "tokens:write",
)


@dataclass(frozen=True)
class Principal:
    user: User
    token: ApiToken

    @property
    def abilities(self) -> frozenset[str]:
        return frozenset(self.token.abilities or ())

    def can(self, ability: str) -> bool:
        return ability in self.abilities


def mint_token() -> str:
    """`hyk_` + 43 url-safe base64 characters (32 random bytes): a prefix secret scanners can match."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 is enough; no salt or slow hash needed.
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    user: User, *, name: str = "", abilities: list[str] | tuple[str, ...] = ABILITIES, expires_at=None
) -> tuple[ApiToken, str]:
    plain = mint_token()
    token = await ApiToken.create(
        user=user,
        name=name,
        token_hash=hash_token(plain),
        hint=plain[:8],
        abilities=list(abilities),
        expires_at=expires_at,
    )
    return token, plain


def bearer_value(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def authenticate(header: str | None) -> Principal | None:
    """The principal for an `Authorization: Bearer hyk_...` value, or None when it is missing or invalid."""
    plain = bearer_value(header)
    if not plain or not TOKEN_RE.match(plain):
        return None
    token = await ApiToken.get_or_none(token_hash=hash_token(plain)).select_related("user")
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= datetime.now(UTC):
        return None
    return Principal(user=token.user, token=token)
