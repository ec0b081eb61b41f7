"""The credential and membership caches (app.services.access_cache): kept for their TTL, forgotten at
once by revocations and member changes made in this process, never trusted past a credential's expiry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from app.models import ApiToken, Membership, Plan, PortalSession, Role, User
from app.schema import permissions
from app.schema.errors import NotFound
from app.services import access_cache, portal_sessions, tokens, workspaces
from app.services.access_cache import TtlCache
from app.services.tokens import Principal, authenticate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    """Both caches on, for 5 s of a clock the test moves; emptied before and after."""
    fake = Clock()
    access_cache.configure(5.0)
    saved = [(cache, cache.clock) for cache in (access_cache.principals, access_cache.memberships)]
    for cache, _ in saved:
        cache.clock = fake
    yield fake
    for cache, original in saved:
        cache.clock = original
    access_cache.configure(access_cache.DEFAULT_TTL)


# --- the cache itself --------------------------------------------------------------------------

def test_a_value_is_kept_for_its_ttl_and_no_longer():
    clock = Clock()
    cache: TtlCache[str] = TtlCache(ttl=5, clock=clock)
    cache.put("k", "v", cache.generation)
    clock.now += 4.9
    assert cache.get("k") == "v"
    clock.now += 0.1
    assert cache.get("k") is None and len(cache) == 0


def test_a_ttl_of_zero_keeps_nothing():
    cache: TtlCache[str] = TtlCache(ttl=0)
    cache.put("k", "v", cache.generation)
    assert cache.get("k") is None


def test_a_value_read_before_a_change_is_not_kept():
    """A request read the database, then something was forgotten (a revocation): what it read may
    predate the change, so it is not remembered."""
    cache: TtlCache[str] = TtlCache(ttl=5)
    for forget in (lambda: cache.discard("other"), cache.clear, lambda: cache.discard_where(lambda v: False)):
        generation = cache.generation
        forget()
        cache.put("k", "v", generation)
        assert cache.get("k") is None
    cache.put("k", "v", cache.generation)
    assert cache.get("k") == "v"


def test_the_oldest_entries_go_first_when_full():
    cache: TtlCache[int] = TtlCache(ttl=5, max_entries=3)
    for i in range(5):
        cache.put(i, i, cache.generation)
    assert [cache.get(i) for i in range(5)] == [None, None, 2, 3, 4]


def test_discard_where_forgets_the_matching_values_only():
    cache: TtlCache[int] = TtlCache(ttl=5)
    for i in range(6):
        cache.put(i, i, cache.generation)
    cache.discard_where(lambda v: v % 2 == 0)
    assert [cache.get(i) for i in range(6)] == [None, 1, None, 3, None, 5]


# --- API tokens ----------------------------------------------------------------------------------

async def _user() -> User:
    return await User.create(email=f"cache-{uuid.uuid4().hex[:8]}@example.com", name="Cache")


async def test_a_token_is_looked_up_once_per_ttl(db, clock, monkeypatch):
    token, plain = await tokens.create_token(await _user(), name="t")
    first = await authenticate(f"Bearer {plain}")
    assert first is not None and first.token.id == token.id

    def no_query(*args, **kwargs):
        raise AssertionError("the database was asked again")

    monkeypatch.setattr(ApiToken, "get_or_none", no_query)
    assert await authenticate(f"Bearer {plain}") is first
    monkeypatch.undo()
    clock.now += 5
    again = await authenticate(f"Bearer {plain}")
    assert again is not None and again is not first


async def test_revoking_a_token_in_this_process_refuses_it_at_once(db, clock):
    user = await _user()
    token, plain = await tokens.create_token(user, name="t")
    principal = await authenticate(f"Bearer {plain}")
    assert principal is not None
    done = await tokens.revoke_token(principal, token.id)
    assert done.ok
    assert await authenticate(f"Bearer {plain}") is None


async def test_a_token_revoked_elsewhere_is_refused_within_the_ttl(db, clock):
    """Another process (replica, CLI) revoked it: this one learns it when its entry runs out."""
    token, plain = await tokens.create_token(await _user(), name="t")
    assert await authenticate(f"Bearer {plain}") is not None
    await ApiToken.filter(id=token.id).update(revoked_at=datetime.now(UTC))
    clock.now += 4.9
    assert await authenticate(f"Bearer {plain}") is not None  # the documented window
    clock.now += 0.1
    assert await authenticate(f"Bearer {plain}") is None


async def test_a_remembered_token_is_refused_from_its_expiry_on(db, clock):
    token, plain = await tokens.create_token(await _user(), name="t",
                                             expires_at=datetime.now(UTC) + timedelta(hours=1))
    principal = await authenticate(f"Bearer {plain}")
    assert principal is not None
    # Time reaches the expiry while the principal is remembered (well within the TTL).
    principal.token.expires_at = datetime.now(UTC)
    assert await authenticate(f"Bearer {plain}") is None


async def test_unknown_and_refused_tokens_are_not_remembered(db, clock):
    assert await authenticate("Bearer hyk_" + "x" * 43) is None
    token, plain = await tokens.create_token(await _user(), name="t", expires_at=datetime.now(UTC) - timedelta(1))
    assert await authenticate(f"Bearer {plain}") is None
    assert len(access_cache.principals) == 0


async def test_caching_off_asks_the_database_every_time(db):
    access_cache.configure(0)
    try:
        token, plain = await tokens.create_token(await _user(), name="t")
        assert await authenticate(f"Bearer {plain}") is not None
        await ApiToken.filter(id=token.id).update(revoked_at=datetime.now(UTC))
        assert await authenticate(f"Bearer {plain}") is None
    finally:
        access_cache.configure(access_cache.DEFAULT_TTL)


# --- portal sessions -----------------------------------------------------------------------------

async def _session(**request) -> tuple[Principal, PortalSession, str]:
    user = await _user()
    workspace = (await workspaces.create_workspace(user, f"c-{uuid.uuid4().hex[:8]}", "Cache", Plan.PROFESSIONAL)).value
    token, plain = await tokens.create_token(user, name="maker")
    maker = await authenticate(f"Bearer {plain}")
    made = await portal_sessions.create_session(maker, workspace, portal_sessions.SessionRequest(**request),
                                                "http://x")
    return maker, made.value.session, made.value.plain


async def test_a_session_is_remembered_and_refused_at_once_when_revoked(db, clock, monkeypatch):
    maker, session, plain = await _session()
    first = await authenticate(f"Bearer {plain}")
    assert first is not None and first.session.id == session.id
    monkeypatch.setattr(PortalSession, "get_or_none", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    assert await authenticate(f"Bearer {plain}") is first
    monkeypatch.undo()
    assert (await portal_sessions.revoke_session(maker.user.id, session.id)).ok
    assert await authenticate(f"Bearer {plain}") is None


async def test_a_session_dies_at_once_with_the_token_that_made_it(db, clock):
    maker, session, plain = await _session()
    assert await authenticate(f"Bearer {plain}") is not None
    assert (await tokens.revoke_token(maker, maker.token.id)).ok
    assert await authenticate(f"Bearer {plain}") is None


async def test_a_remembered_session_is_never_accepted_past_its_expiry(db, clock):
    maker, session, plain = await _session(expires_in_seconds=60)
    principal = await authenticate(f"Bearer {plain}")
    assert principal is not None
    principal.session.expires_at = datetime.now(UTC)  # its end comes while it is remembered
    assert await authenticate(f"Bearer {plain}") is None

    maker, session, plain = await _session()
    principal = await authenticate(f"Bearer {plain}")
    principal.session.created_by.expires_at = datetime.now(UTC) - timedelta(seconds=1)  # its maker's end
    assert await authenticate(f"Bearer {plain}") is None


# --- memberships ---------------------------------------------------------------------------------

def _info(principal: Principal) -> SimpleNamespace:
    settings = SimpleNamespace(enforce_plans=True)
    return SimpleNamespace(context=SimpleNamespace(principal=principal, memberships={},
                                                   runtime=SimpleNamespace(settings=settings)))


async def _member_of_new_workspace(role: Role = Role.ADMIN):
    owner = await _user()
    slug = f"m-{uuid.uuid4().hex[:8]}"
    workspace = (await workspaces.create_workspace(owner, slug, "Members", Plan.PROFESSIONAL)).value
    user = await _user()
    await Membership.create(workspace=workspace, user=user, role=role)
    _, plain = await tokens.create_token(user, name="m")
    return workspace, await authenticate(f"Bearer {plain}")


async def test_a_membership_is_remembered_as_copies(db, clock, monkeypatch):
    workspace, viewer = await _member_of_new_workspace()
    first = await permissions.workspace_by_slug(_info(viewer), workspace.slug, admin=True)
    monkeypatch.setattr(Membership, "get_or_none", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    info = _info(viewer)
    second = await permissions.workspace_by_slug(info, workspace.slug, admin=True)
    assert second.id == first.id and second is not first  # each request gets its own objects
    second.name = "changed by one request"
    assert (await permissions.workspace_by_slug(_info(viewer), workspace.slug)).name == "Members"
    assert await permissions.role_in(_info(viewer), workspace.id) == Role.ADMIN  # by id too


async def test_member_changes_in_this_process_apply_at_once(db, clock):
    workspace, viewer = await _member_of_new_workspace()
    await permissions.workspace_by_slug(_info(viewer), workspace.slug, admin=True)
    # Demoted: admin-only checks refuse at once.
    assert (await workspaces.add_member(workspace, viewer.user.email, Role.MEMBER)).ok
    assert await permissions.role_in(_info(viewer), workspace.id) == Role.MEMBER
    # Removed: the workspace is not found at once.
    assert (await workspaces.remove_member(workspace, viewer.user.id)).ok
    with pytest.raises(NotFound):
        await permissions.workspace_by_slug(_info(viewer), workspace.slug)


async def test_a_plan_change_in_this_process_applies_at_once(db, clock):
    workspace, viewer = await _member_of_new_workspace()
    assert (await permissions.workspace_by_slug(_info(viewer), workspace.slug)).plan == Plan.PROFESSIONAL
    assert (await workspaces.set_plan(workspace, Plan.FREE)).ok
    assert (await permissions.workspace_by_slug(_info(viewer), workspace.slug)).plan == Plan.FREE


async def test_a_membership_removed_elsewhere_goes_within_the_ttl(db, clock):
    workspace, viewer = await _member_of_new_workspace()
    await permissions.workspace_by_slug(_info(viewer), workspace.slug)
    await Membership.filter(workspace_id=workspace.id, user_id=viewer.user.id).delete()
    clock.now += 4.9
    await permissions.workspace_by_slug(_info(viewer), workspace.slug)  # the documented window
    clock.now += 0.1
    with pytest.raises(NotFound):
        await permissions.workspace_by_slug(_info(viewer), workspace.slug)


async def test_a_missing_membership_is_not_remembered(db, clock):
    workspace, viewer = await _member_of_new_workspace()
    stranger = await authenticate(f"Bearer {(await tokens.create_token(await _user(), name='s'))[1]}")
    with pytest.raises(NotFound):
        await permissions.workspace_by_slug(_info(stranger), workspace.slug)
    await Membership.create(workspace=workspace, user=stranger.user, role=Role.MEMBER)
    assert (await permissions.workspace_by_slug(_info(stranger), workspace.slug)).id == workspace.id
