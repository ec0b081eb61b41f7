"""Personal access tokens: minting, hashing, checking, issuing and revoking."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from app.core.errors import CommonErrorCode, FieldError
from app.core.ids import prefix_of
from app.models import ApiToken, PortalSession, User
from app.services import access_cache, portal_sessions
from app.services.abilities import ABILITIES, ALL_ABILITIES, OPERATOR_ABILITY  # noqa: F401 (re-exported)
from app.services.result import Done

TOKEN_PREFIX = "hyk_"
TOKEN_RE = re.compile(r"^hyk_[A-Za-z0-9_-]{43}$")



@dataclass(frozen=True)
class Principal:
    """Who is calling: an API token's user, or a portal session acting for its maker's user within
    one workspace (and maybe some forms)."""

    user: User
    token: ApiToken | None = None
    session: PortalSession | None = None

    @property
    def abilities(self) -> frozenset[str]:
        source = self.session if self.session is not None else self.token
        return frozenset(source.abilities or ())

    @property
    def credential_id(self) -> str:
        return self.session.id if self.session is not None else self.token.id

    @property
    def workspace_id(self) -> str | None:
        """The one workspace a portal session is for; None for an API token."""
        return self.session.workspace_id if self.session is not None else None

    @property
    def form_slugs(self) -> frozenset[str] | None:
        """The forms a portal session is limited to; None when it is not limited."""
        if self.session is None or self.session.form_slugs is None:
            return None
        return frozenset(self.session.form_slugs)

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
    """The principal for an `Authorization: Bearer hyk_...` (API token) or `hyp_...` (portal session)
    value, or None when it is missing or invalid. A principal is remembered for a few seconds
    (`access_cache`); whether its credential is still live (expiry) is checked on every use."""
    plain = bearer_value(header)
    if not plain:
        return None
    is_session = plain.startswith(portal_sessions.SESSION_PREFIX)
    if not (portal_sessions.SESSION_RE if is_session else TOKEN_RE).match(plain):
        return None
    key = portal_sessions.hash_session_token(plain) if is_session else hash_token(plain)
    known = access_cache.principals.get(key)
    if known is not None:
        if not is_live(known, datetime.now(UTC)):
            return None
        if known.token is not None:
            await _note_use(known.token)
        return known
    generation = access_cache.principals.generation
    if is_session:
        session = await portal_sessions.session_for(plain)
        principal = Principal(user=session.user, session=session) if session else None
    else:
        token = await ApiToken.get_or_none(token_hash=key).select_related("user")
        principal = Principal(user=token.user, token=token) if token else None
    if principal is None or not is_live(principal, datetime.now(UTC)):
        return None
    access_cache.principals.put(key, principal, generation)
    if principal.token is not None:
        await _note_use(principal.token)
    return principal


# `lastUsedAt` is written at most this often per token and process: a write per request would double the
# writes of a busy token's every publish.
LAST_USED_EVERY_SECONDS = 60.0
_last_use_noted: dict[str, float] = {}  # token id -> monotonic time of the last write from this process


async def _note_use(token: ApiToken) -> None:
    now = time.monotonic()
    if now - _last_use_noted.get(token.id, -LAST_USED_EVERY_SECONDS) < LAST_USED_EVERY_SECONDS:
        return
    if len(_last_use_noted) >= access_cache.MAX_ENTRIES:
        _last_use_noted.clear()
    _last_use_noted[token.id] = now
    used = datetime.now(UTC)
    try:
        await ApiToken.filter(id=token.id).update(last_used_at=used)
    except Exception:  # a note, never a reason to refuse the request; the next use tries again
        _last_use_noted.pop(token.id, None)
        return
    token.last_used_at = used


def is_live(principal: Principal, now: datetime) -> bool:
    """Whether the principal's credential is neither revoked nor expired (a session: nor its maker's token)."""
    if principal.session is not None:
        return portal_sessions.is_live(principal.session, now)
    return token_is_live(principal.token, now)


def token_is_live(token: ApiToken, now: datetime) -> bool:
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


@dataclass
class Issued:
    token: ApiToken
    plain: str  # shown once


async def issue_token(principal: Principal, name: str, abilities: list[str] | None,
                      expires_at: datetime | None) -> Done[Issued]:
    """A token for the principal's user, with at most the principal's abilities and life."""
    if principal.session is not None:
        return Done.refused(FieldError("abilities", "a portal session cannot create tokens",
                                       CommonErrorCode.NOT_ALLOWED))
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
    access_cache.forget_token(token.id, token.token_hash)
    return Done(token)
