"""Who a credential is, and the caller's role in a workspace, remembered for a few seconds.

Every GraphQL request looks its token up (`tokens.authenticate`) and most look a membership up
(`permissions.workspace_by_slug`): two queries that answer the same thing request after request for
as long as nothing changes. This process remembers each answer for `ttl` seconds
(HOOKYARD_AUTH_CACHE_SECONDS, default 5; 0 turns the caches off):

- a token's or portal session's principal, by the hash of the credential. Each use still checks
  the credential's expiry (and, for a session, its maker's) against the clock, so an expired
  credential is never accepted, cached or not. Revoking a token or session in this process forgets
  it (and a token's sessions) at once; revoked elsewhere (another API replica, `hookyard token
  revoke`), it is refused here within `ttl` seconds. Unknown or refused credentials are not remembered.
- a user's membership (role) in a workspace, with the workspace, by slug and by id. Adding, removing
  or re-roling a member or changing a plan in this process forgets every membership at once; done
  elsewhere, it shows here within `ttl` seconds. A missing membership is not remembered.

An answer read from the database while a change was being made is not kept (see `TtlCache.put`).
Live subscriptions re-check their access on their own schedule (HOOKYARD_LIVE_ACCESS_CHECK_SECONDS).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")

DEFAULT_TTL = 5.0
MAX_ENTRIES = 10_000


class TtlCache(Generic[V]):
    """Values kept for `ttl` seconds (monotonic clock), at most `max_entries` (the oldest go first).

    `generation` changes whenever something is forgotten: read it before looking a value up in the
    database and pass it to `put`, which then keeps nothing if a change was made meanwhile (the value
    may predate it)."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.generation = 0
        self._entries: dict[Hashable, tuple[float, V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: Hashable, value: V, generation: int) -> None:
        if self.ttl <= 0 or generation != self.generation:
            return
        entries = self._entries
        entries.pop(key, None)  # re-inserted last: the oldest entry is the first one
        while len(entries) >= self.max_entries:
            entries.pop(next(iter(entries)))
        entries[key] = (self.clock() + self.ttl, value)

    def discard(self, key: Hashable) -> None:
        self.generation += 1
        self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[V], bool]) -> None:
        self.generation += 1
        for key in [k for k, (_, v) in self._entries.items() if predicate(v)]:
            del self._entries[key]

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()


# Module-level: revocations and member changes anywhere in the process must reach them.
principals: TtlCache[Any] = TtlCache()
memberships: TtlCache[Any] = TtlCache()


def configure(ttl: float) -> None:
    """Sets how long answers are kept (the API does it from HOOKYARD_AUTH_CACHE_SECONDS); forgets all."""
    for cache in (principals, memberships):
        cache.ttl = ttl
        cache.clear()


def forget_token(token_id: str, token_hash: str | None = None) -> None:
    """A token was revoked: forget it, and the portal sessions it made, which die with it."""
    if token_hash is not None:
        principals.discard(token_hash)
    principals.discard_where(lambda p: (p.token is not None and p.token.id == token_id)
                             or (p.session is not None and p.session.created_by_id == token_id))


def forget_session(token_hash: str) -> None:
    principals.discard(token_hash)


def forget_memberships() -> None:
    """A member was added, removed or re-roled, or a plan changed: rare enough to forget them all."""
    memberships.clear()


# --- memberships: a copy per request, so a request that changes its objects changes only its own

def membership_key(user_id: str, *, slug: str | None = None, workspace_id: str | None = None) -> tuple:
    return ("slug", user_id, slug) if slug is not None else ("id", user_id, workspace_id)


def _copy(member: Any) -> Any:
    member = copy.copy(member)
    workspace = member.__dict__.get("_workspace")
    if workspace is not None:
        member._workspace = copy.copy(workspace)
    return member


def cached_membership(key: tuple) -> Any | None:
    """A copy of the remembered membership (with a copy of its workspace, when it was loaded)."""
    member = memberships.get(key)
    return None if member is None else _copy(member)


def remember_membership(member: Any, generation: int, *, slug: str | None = None) -> None:
    """Remembers (a copy of) a membership by workspace id, and by slug when its workspace is loaded."""
    if memberships.ttl <= 0 or generation != memberships.generation:
        return
    kept = _copy(member)
    memberships.put(membership_key(member.user_id, workspace_id=member.workspace_id), kept, generation)
    if slug is not None:
        memberships.put(membership_key(member.user_id, slug=slug), kept, generation)
