"""Live subscriptions outlive the access check made when they started.

Every `interval` seconds the tokens and memberships behind this process's live subscriptions are
checked again, in a few queries whatever the number of subscribers. A connection whose API token or
portal session was revoked or expired, or whose user is no longer an owner or admin of the workspace,
is closed with 4403 (Forbidden), the code graphql-transport-ws uses for a refused token.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q

from app.core.logging import get_logger
from app.models import ADMIN_ROLES, ApiToken, Membership, PortalSession
from app.realtime.connections import client_label, close_soon

log = get_logger(__name__)

CLOSE_CODE = 4403


@dataclass(eq=False)
class Watched:
    connection: Any
    token_id: str  # an API token's id (tok_) or a portal session's (pss_)
    user_id: str
    workspace_id: str


class AccessWatch:
    def __init__(self, interval: float, grace: float = 5.0):
        self.interval = interval
        self.grace = grace
        self.watched: set[Watched] = set()
        self._task: asyncio.Task | None = None

    def watch(self, connection: Any, token_id: str, user_id: str, workspace_id: str) -> Watched:
        entry = Watched(connection, token_id, user_id, workspace_id)
        self.watched.add(entry)
        return entry

    def unwatch(self, entry: Watched) -> None:
        self.watched.discard(entry)

    async def check(self) -> int:
        """Closes the connections that lost access; returns how many subscriptions lost it."""
        entries = list(self.watched)
        if not entries:
            return 0
        now = datetime.now(UTC)
        ids = {e.token_id for e in entries}
        valid_tokens = set(await ApiToken.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            id__in={i for i in ids if i.startswith("tok_")}, revoked_at__isnull=True,
        ).values_list("id", flat=True))
        session_ids = {i for i in ids if i.startswith("pss_")}
        if session_ids:  # a session also ends with the token that made it
            valid_tokens |= set(await PortalSession.filter(
                Q(created_by__expires_at__isnull=True) | Q(created_by__expires_at__gt=now),
                id__in=session_ids, revoked_at__isnull=True, expires_at__gt=now,
                created_by__revoked_at__isnull=True,
            ).values_list("id", flat=True))
        admins = set(await Membership.filter(
            user_id__in={e.user_id for e in entries}, workspace_id__in={e.workspace_id for e in entries},
            role__in=ADMIN_ROLES,
        ).values_list("user_id", "workspace_id"))
        lost = [e for e in entries if e.token_id not in valid_tokens or (e.user_id, e.workspace_id) not in admins]
        for entry in lost:
            self.watched.discard(entry)
            credential = "portal session" if entry.token_id.startswith("pss_") else "API token"
            reason = (f"{credential} revoked or expired" if entry.token_id not in valid_tokens
                      else "no longer an owner or admin of this workspace")
            log.info("live.client_closed", client=client_label(entry.connection.scope), reason=reason,
                     workspace_id=entry.workspace_id, user_id=entry.user_id)
            close_soon(entry.connection, CLOSE_CODE, reason, self.grace)
        return len(lost)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hookyard-access-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away for a moment: try again next round
                log.warning("live.access_check_failed", action="retrying next round", exc_info=True)
