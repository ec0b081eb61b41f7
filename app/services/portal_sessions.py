"""Portal sessions: short-lived browser credentials (`hyp_...`) the host product's backend makes for
its customer, limited to one workspace, some abilities, maybe some forms, and at most a day."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from app.core.errors import CommonErrorCode, FieldError
from app.core.ids import prefix_of
from app.models import Form, PortalSession, Workspace
from app.services import access_cache
from app.services.abilities import DEFAULT_SESSION_ABILITIES, SESSION_ABILITIES
from app.services.result import Done

SESSION_PREFIX = "hyp_"
SESSION_RE = re.compile(r"^hyp_[A-Za-z0-9_-]{43}$")

DEFAULT_LIFETIME = timedelta(hours=1)
MAX_LIFETIME = timedelta(hours=24)
MIN_LIFETIME = timedelta(seconds=60)


MAX_ORIGINS = 10
MAX_FORMS = 100
MAX_THEME_KEYS = 40
_ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(?::\d{1,5})?$")
_THEME_KEY_RE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
# A theme value is a colour, length or font list: nothing that loads anything or ends a declaration.
_THEME_VALUE_BAD = re.compile(r"[;{}<>\\\"]|url\(|image|expression|@import", re.IGNORECASE)


def mint_session_token() -> str:
    return SESSION_PREFIX + secrets.token_urlsafe(32)


def hash_session_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class SessionRequest:
    abilities: list[str] | None = None
    expires_in_seconds: int | None = None
    allowed_origins: list[str] | None = None
    form_slugs: list[str] | None = None
    theme: Any = None


@dataclass
class IssuedSession:
    session: PortalSession
    plain: str  # shown once
    portal_url: str


def portal_url(base_url: str, session: PortalSession, plain: str) -> str:
    """The portal's address for this session: its id in the query (for the framing policy), the token
    in the fragment, which browsers never send to a server."""
    return f"{base_url.rstrip('/')}/portal?session={session.id}#token={quote(plain, safe='')}"


def normalise_origin(value: str) -> str | None:
    text = value.strip().rstrip("/")
    return text.lower() if _ORIGIN_RE.match(text) else None


def _abilities(wanted: list[str] | None, creator: frozenset[str]) -> tuple[list[str], list[FieldError]]:
    if wanted is None:
        return [a for a in DEFAULT_SESSION_ABILITIES if a in creator], []
    errors = []
    for i, ability in enumerate(wanted):
        if ability not in SESSION_ABILITIES:
            errors.append(FieldError(f"abilities.{i}", f"a portal session cannot carry {ability!r}; it may "
                                                       f"carry {', '.join(SESSION_ABILITIES)}",
                                     CommonErrorCode.NOT_ALLOWED))
        elif ability not in creator:
            errors.append(FieldError(f"abilities.{i}", f"this token cannot grant {ability!r}, which it does "
                                                       "not have", CommonErrorCode.NOT_ALLOWED))
    if not wanted:
        errors.append(FieldError("abilities", "name at least one ability", CommonErrorCode.REQUIRED))
    return list(dict.fromkeys(wanted)), errors


def _origins(values: list[str] | None) -> tuple[list[str], list[FieldError]]:
    if not values:
        return [], []
    if len(values) > MAX_ORIGINS:
        return [], [FieldError("allowedOrigins", f"at most {MAX_ORIGINS} origins", CommonErrorCode.TOO_LONG)]
    origins, errors = [], []
    for i, value in enumerate(values):
        origin = normalise_origin(value) if len(value) <= 200 else None
        if origin is None:
            errors.append(FieldError(f"allowedOrigins.{i}", "is not an origin like https://app.example.com "
                                                            "(scheme, host and port only)", CommonErrorCode.INVALID))
        elif origin not in origins:
            origins.append(origin)
    return origins, errors


def validate_theme(theme: Any) -> tuple[dict[str, str], list[FieldError]]:
    """{name: value} for the portal's --hy-<name> CSS custom properties."""
    if theme is None:
        return {}, []
    if not isinstance(theme, dict):
        return {}, [FieldError("theme", "must be an object of CSS custom properties, like "
                                        '{"accent": "#0a7"}', CommonErrorCode.INVALID)]
    if len(theme) > MAX_THEME_KEYS:
        return {}, [FieldError("theme", f"at most {MAX_THEME_KEYS} properties", CommonErrorCode.TOO_LONG)]
    clean, errors = {}, []
    for key, value in theme.items():
        name = str(key).removeprefix("--").removeprefix("hy-")
        if not _THEME_KEY_RE.match(name):
            errors.append(FieldError(f"theme.{str(key)[:50]}", "is not a property name (lower-case letters, "
                                                                "digits and dashes)", CommonErrorCode.INVALID))
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            errors.append(FieldError(f"theme.{name}", "must be a string or a number", CommonErrorCode.INVALID))
            continue
        text = str(value).strip()
        if not text or len(text) > 200 or _THEME_VALUE_BAD.search(text):
            errors.append(FieldError(f"theme.{name}", "is not a plain CSS value (colours, lengths and font "
                                                      "names; no url(), no ;)", CommonErrorCode.INVALID))
            continue
        clean[name] = text
    return clean, errors


def _lifetime(seconds: int | None) -> tuple[timedelta, list[FieldError]]:
    if seconds is None:
        return DEFAULT_LIFETIME, []
    if not MIN_LIFETIME.total_seconds() <= seconds <= MAX_LIFETIME.total_seconds():
        return DEFAULT_LIFETIME, [FieldError("expiresInSeconds", "must be between 60 and 86400 (24 hours)",
                                             CommonErrorCode.OUT_OF_RANGE)]
    return timedelta(seconds=seconds), []


async def _forms(workspace: Workspace, slugs: list[str] | None) -> tuple[list[str] | None, list[FieldError]]:
    if slugs is None:
        return None, []
    if len(slugs) > MAX_FORMS:
        return None, [FieldError("formSlugs", f"at most {MAX_FORMS} forms", CommonErrorCode.TOO_LONG)]
    wanted = list(dict.fromkeys(s for s in slugs if len(s) <= 64))
    found = set(await Form.filter(workspace_id=workspace.id, slug__in=wanted).values_list("slug", flat=True))
    errors = [FieldError(f"formSlugs.{i}", f"form {slug[:64]!r} not found", CommonErrorCode.NOT_FOUND)
              for i, slug in enumerate(slugs) if slug not in found]
    return wanted, errors


async def create_session(principal: Any, workspace: Workspace, request: SessionRequest,
                         base_url: str) -> Done[IssuedSession]:
    """A session for `workspace`, made by `principal` (an API token's holder, checked by the caller to
    hold tokens:write and to be an owner or admin there)."""
    abilities, errors = _abilities(request.abilities, principal.abilities)
    lifetime, more = _lifetime(request.expires_in_seconds)
    errors += more
    origins, more = _origins(request.allowed_origins)
    errors += more
    theme, more = validate_theme(request.theme)
    errors += more
    forms, more = await _forms(workspace, request.form_slugs)
    errors += more
    if errors:
        return Done.refused(*errors)
    expires_at = datetime.now(UTC) + lifetime
    own_end = principal.token.expires_at
    if own_end is not None and own_end < expires_at:
        expires_at = own_end  # a session never outlives the token that made it
    plain = mint_session_token()
    session = await PortalSession.create(
        workspace=workspace, user_id=principal.user.id, created_by_id=principal.token.id,
        token_hash=hash_session_token(plain), hint=plain[:8], abilities=abilities, allowed_origins=origins,
        form_slugs=forms, theme=theme, expires_at=expires_at,
    )
    return Done(IssuedSession(session, plain, portal_url(base_url, session, plain)))


async def revoke_session(user_id: str, session_id: str) -> Done[PortalSession]:
    """Revokes a session made by this user; anyone else's is not found."""
    session = None
    if prefix_of(session_id) == "pss":
        session = await PortalSession.get_or_none(id=session_id, user_id=user_id)
    if session is None:
        return Done.refused(FieldError("id", "portal session not found", CommonErrorCode.NOT_FOUND))
    if session.revoked_at is None:
        session.revoked_at = datetime.now(UTC)
        await session.save(update_fields=["revoked_at"])
    access_cache.forget_session(session.token_hash)
    return Done(session)


async def session_for(plain: str) -> PortalSession | None:
    """The live session for a `hyp_` token: not revoked, not expired, and its maker's token neither."""
    if not SESSION_RE.match(plain):
        return None
    session = await PortalSession.get_or_none(token_hash=hash_session_token(plain)).select_related(
        "user", "created_by", "workspace")
    if session is None or not is_live(session, datetime.now(UTC)):
        return None
    return session


def is_live(session: PortalSession, now: datetime) -> bool:
    maker = session.created_by
    return (session.revoked_at is None and session.expires_at > now
            and maker.revoked_at is None and (maker.expires_at is None or maker.expires_at > now))


async def frame_origins(session_id: str | None) -> list[str]:
    """The origins a live session lets frame the portal; none for anything else."""
    if not session_id or prefix_of(session_id) != "pss" or len(session_id) > 40:
        return []
    session = await PortalSession.get_or_none(id=session_id).select_related("created_by")
    if session is None or not is_live(session, datetime.now(UTC)):
        return []
    return list(session.allowed_origins or [])


async def live_origins() -> set[str]:
    """Every origin of a live session: what CORS lets call /graphql besides HOOKYARD_ALLOWED_ORIGINS."""
    now = datetime.now(UTC)
    rows = await PortalSession.filter(revoked_at__isnull=True, expires_at__gt=now).values_list(
        "allowed_origins", flat=True)
    return {origin for origins in rows for origin in (origins or [])}
