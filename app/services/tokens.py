"""Personal access tokens: minting, hashing, checking, issuing and revoking."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from app.core.errors import CommonErrorCode, FieldError
from app.core.ids import prefix_of
from app.models import ApiToken, User
from app.services.result import Done

TOKEN_PREFIX = "hyk_"
TOKEN_RE = re.compile(r"^hyk_[A-Za-z0-9_-]{43}$")

# What an ordinary token may carry.
ABILITIES = (
    "integrations:read",
    "integrations:write",
    "forms:write",
    "events:publish",
    "deliveries:read",
    "deliveries:write",
    "tokens:write",
)
# Runs the instance: sets and changes workspace plans. Only `hookyard bootstrap` mints it (the first
# token and `--new-token`); a token can pass it on only when it has it itself.
OPERATOR_ABILITY = "instance:operator"
ALL_ABILITIES = (*ABILITIES, OPERATOR_ABILITY)


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


@dataclass
class Issued:
    token: ApiToken
    plain: str  # shown once


async def issue_token(principal: Principal, name: str, abilities: list[str] | None,
                      expires_at: datetime | None) -> Done[Issued]:
    """A token for the principal's user, with at most the principal's abilities and life."""
    wanted = list(dict.fromkeys(abilities if abilities is not None else principal.abilities))
    for i, ability in enumerate(wanted):
        if ability not in ALL_ABILITIES:
            return Done.refused(FieldError(f"abilities.{i}", f"unknown ability {ability!r}; expected one of "
                                                             f"{', '.join(ALL_ABILITIES)}"))
        if not principal.can(ability):
            return Done.refused(FieldError(f"abilities.{i}", f"a token cannot grant {ability!r}, which it does "
                                                             "not have", CommonErrorCode.NOT_ALLOWED))
    if not name.strip() or len(name) > 200:
        return Done.refused(FieldError("name", "is required (at most 200 characters)", CommonErrorCode.REQUIRED))
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        try:  # 9999-12-31T23:59-12:00 is past the last datetime in UTC, where it is stored
            expires_at = expires_at.astimezone(UTC)
        except OverflowError:
            return Done.refused(FieldError("expiresAt", "is too far in the future", CommonErrorCode.OUT_OF_RANGE))
        if expires_at <= datetime.now(UTC):
            return Done.refused(FieldError("expiresAt", "must be in the future", CommonErrorCode.OUT_OF_RANGE))
    own_end = principal.token.expires_at
    if own_end and (expires_at is None or expires_at > own_end):
        expires_at = own_end  # a token never outlives the one that made it
    token, plain = await create_token(principal.user, name=name.strip(), abilities=wanted, expires_at=expires_at)
    return Done(Issued(token, plain))


async def revoke_token(principal: Principal, token_id: str) -> Done[ApiToken]:
    """Revokes one of the principal's user's tokens; another user's token is not found."""
    token = None
    if prefix_of(token_id) == "tok":  # anything else is no id of ours, maybe too long to look up
        token = await ApiToken.get_or_none(id=token_id, user_id=principal.user.id)
    if token is None:
        return Done.refused(FieldError("id", "token not found", CommonErrorCode.NOT_FOUND))
    if token.revoked_at is None:
        token.revoked_at = datetime.now(UTC)
        await token.save(update_fields=["revoked_at"])
    return Done(token)
