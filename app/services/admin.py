"""What the instance's operator does from the command line (`hookyard token|integration|deliveries`):
the same use-cases as GraphQL, with the database for authority instead of a token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.config import Settings
from app.core.errors import CommonErrorCode, FieldError
from app.core.ids import prefix_of
from app.delivery.runtime import Runtime, open_runtime
from app.delivery.unit import unit_of_work
from app.models import ApiToken, Delivery, DeliveryStatus, Integration, User, Workspace
from app.models.database import close_db, init_db
from app.services import access_cache, deliveries, integrations
from app.services.result import Done
from app.services.tokens import ABILITIES, ALL_ABILITIES, Issued, create_token


@contextlib.asynccontextmanager
async def database_session(settings: Settings) -> AsyncIterator[None]:
    """The database open for one command."""
    await init_db(settings)
    try:
        yield
    finally:
        await close_db()


@contextlib.asynccontextmanager
async def operator_session(settings: Settings) -> AsyncIterator[Runtime]:
    """The database and a runtime for one command. Jobs go to HOOKYARD_REDIS_URL when it is set;
    without it (the embedded Redis lives inside `hookyard serve`) the server's sweeper picks up
    what was moved to PENDING within HOOKYARD_STUCK_AFTER_SECONDS or so."""
    await init_db(settings)
    runtime = None
    try:
        runtime = await open_runtime(settings, settings.redis_url)
        yield runtime
    finally:
        if runtime is not None:
            await runtime.close()
        await close_db()


def _not_found(what: str, field: str = "id") -> Done:
    return Done.refused(FieldError(field, f"{what} not found", CommonErrorCode.NOT_FOUND))


async def _get(model, identifier: str, prefix: str):
    # Anything not shaped like one of our ids is not looked up (it may be too long for the column).
    return await model.get_or_none(id=identifier) if prefix_of(identifier) == prefix else None


# ------------------------------------------------------------------ tokens

async def find_user(user: str) -> User | None:
    """A user by email (case-insensitively) or by id."""
    if prefix_of(user) == "usr":
        return await User.get_or_none(id=user)
    return await User.get_or_none(email__iexact=user.strip())


async def create_user_token(user: str, name: str, abilities: Sequence[str] | None = None,
                            expires_in: timedelta | None = None) -> Done[Issued]:
    """A token for the user with that email or id; every ordinary ability unless told which."""
    owner = await find_user(user)
    if owner is None:
        return _not_found(f"user {user!r}", "user")
    wanted = list(dict.fromkeys(abilities or ABILITIES))
    for i, ability in enumerate(wanted):
        if ability not in ALL_ABILITIES:
            return Done.refused(FieldError(f"abilities.{i}", f"unknown ability {ability!r}; expected one of "
                                                             f"{', '.join(ALL_ABILITIES)}"))
    if not name.strip() or len(name) > 200:
        return Done.refused(FieldError("name", "is required (at most 200 characters)", CommonErrorCode.REQUIRED))
    expires_at = None
    if expires_in is not None:
        if expires_in <= timedelta(0):
            return Done.refused(FieldError("expiresIn", "must be longer than zero", CommonErrorCode.OUT_OF_RANGE))
        try:
            expires_at = datetime.now(UTC) + expires_in
        except OverflowError:
            return Done.refused(FieldError("expiresIn", "is too long", CommonErrorCode.OUT_OF_RANGE))
    token, plain = await create_token(owner, name=name.strip(), abilities=wanted, expires_at=expires_at)
    token.user = owner
    return Done(Issued(token, plain))


@dataclass
class TokenInfo:
    """A token as the operator sees it: never its hash, only the first characters of the token."""

    id: str
    name: str
    user_email: str
    hint: str
    abilities: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            return "expired"
        return "active"


async def list_tokens(user: str | None = None, include_revoked: bool = False) -> Done[list[TokenInfo]]:
    query = ApiToken.all()
    if user is not None:
        owner = await find_user(user)
        if owner is None:
            return _not_found(f"user {user!r}", "user")
        query = query.filter(user_id=owner.id)
    if not include_revoked:
        query = query.filter(revoked_at__isnull=True)
    tokens = await query.select_related("user").order_by("created_at", "id")
    return Done([TokenInfo(t.id, t.name, t.user.email, t.hint, list(t.abilities or ()), t.created_at, t.expires_at,
                           t.revoked_at, t.last_used_at) for t in tokens])


async def revoke_token(token_id: str) -> Done[ApiToken]:
    """Revokes any user's token; revoking a revoked one changes nothing."""
    token = await _get(ApiToken, token_id, "tok")
    if token is None:
        return _not_found(f"token {token_id!r}")
    if token.revoked_at is None:
        token.revoked_at = datetime.now(UTC)
        await token.save(update_fields=["revoked_at"])
    access_cache.forget_token(token.id, token.token_hash)
    return Done(token)


# ------------------------------------------------------------------ integrations

async def list_integrations(workspace: str | None = None) -> Done[list[Integration]]:
    """Every integration (of the workspace with that slug or id), oldest first, with its workspace."""
    query = Integration.all()
    if workspace is not None:
        found = await Workspace.get_or_none(slug=workspace)
        if found is None and prefix_of(workspace) == "ws":
            found = await Workspace.get_or_none(id=workspace)
        if found is None:
            return _not_found(f"workspace {workspace!r}", "workspace")
        query = query.filter(workspace_id=found.id)
    return Done(list(await query.select_related("workspace").order_by("created_at", "id")))


async def set_integration_enabled(runtime: Runtime, integration_id: str, enabled: bool) -> Done[Integration]:
    """`integrationUpdate(enabled: ...)`: turning one back on releases its HELD deliveries."""
    integration = await _get(Integration, integration_id, "int")
    if integration is None:
        return _not_found(f"integration {integration_id!r}")
    async with unit_of_work(runtime) as unit:
        done = await integrations.update(unit, integration, enabled=enabled)
    if done.ok:
        await integration.refresh_from_db()
    return done


# ------------------------------------------------------------------ deliveries

async def retry_delivery(runtime: Runtime, delivery_id: str) -> Done[Delivery]:
    delivery = await _get(Delivery, delivery_id, "del")
    if delivery is None:
        return _not_found(f"delivery {delivery_id!r}")
    async with unit_of_work(runtime) as unit:
        return await deliveries.retry_now(unit, delivery)


async def recover_deliveries(runtime: Runtime, integration_id: str, since: datetime, until: datetime | None = None,
                             statuses: Sequence[DeliveryStatus] = (DeliveryStatus.FAILED,)) -> Done[int]:
    """`deliveriesRecover`, with the statuses to re-send (FAILED unless told)."""
    integration = await _get(Integration, integration_id, "int")
    if integration is None:
        return _not_found(f"integration {integration_id!r}", "integration")
    if until is not None and until < since:
        return Done.refused(FieldError("until", "must not be before since", CommonErrorCode.OUT_OF_RANGE))
    async with unit_of_work(runtime) as unit:
        return await deliveries.recover(unit, integration, since, until, statuses)
