"""A live subscription ends when its access does: a revoked token or a removed admin is closed with 4403.

The test server re-checks live subscribers every 0.5 s (HOOKYARD_LIVE_ACCESS_CHECK_SECONDS).
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from app.models import ApiToken, Workspace
from app.services.tokens import hash_token
from tests.conftest import make_account
from tests.e2e.live_client import subscribe_raw
from tests.waiting import eventually

QUERY = "subscription($ws: String!) { deliveryUpdates(workspace: $ws) { status delivery { id } } }"
REVOKE = "mutation($id: ID!) { apiTokenRevoke(input: {id: $id}) { revokedId errors { code } } }"
ADD = """mutation($ws: String!, $email: String!) { memberAdd(input: {workspace: $ws, email: $email, role: ADMIN}) {
  member { role } errors { code message } } }"""
REMOVE = """mutation($ws: String!, $user: ID!) { memberRemove(input: {workspace: $ws, userId: $user}) {
  removedUserId errors { code } } }"""


async def subscribe(server, token: str, slug: str) -> ClientConnection:
    workspace = await Workspace.get(slug=slug)
    before = len(server.broadcaster.subscribers.get(workspace.id, ()))
    ws = await subscribe_raw(server.url, token, QUERY, {"ws": slug})
    await eventually(lambda: len(server.broadcaster.subscribers.get(workspace.id, ())) > before, timeout=5,
                     what="the subscription to register")
    return ws


async def closed_with(ws: ClientConnection, timeout: float = 10) -> ConnectionClosed:
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed
    raise AssertionError("unreachable")


async def test_revoking_the_token_closes_its_live_subscription(server, account):
    ws = await subscribe(server, account.token, account.slug)
    token = await ApiToken.get(token_hash=hash_token(account.token))
    revoked = await account.gql(REVOKE, {"id": token.id})
    assert revoked["apiTokenRevoke"]["revokedId"] == token.id

    closed = await closed_with(ws)
    assert closed.rcvd.code == 4403
    assert closed.rcvd.reason == "API token revoked or expired"
    workspace = await Workspace.get(slug=account.slug)
    assert not server.broadcaster.subscribers.get(workspace.id)


async def test_removed_admin_is_cut_off_and_the_owner_is_not(server, http, account):
    colleague = await make_account(http)
    added = await account.gql(ADD, {"ws": account.slug, "email": (await _email(colleague))})
    assert added["memberAdd"]["errors"] == [] and added["memberAdd"]["member"]["role"] == "ADMIN"

    owner_ws = await subscribe(server, account.token, account.slug)
    colleague_ws = await subscribe(server, colleague.token, account.slug)
    removed = await account.gql(REMOVE, {"ws": account.slug, "user": colleague.user_id})
    assert removed["memberRemove"]["removedUserId"] == colleague.user_id

    closed = await closed_with(colleague_ws)
    assert closed.rcvd.code == 4403
    assert closed.rcvd.reason == "no longer an owner or admin of this workspace"
    # The owner's subscription is still there after several more checks.
    await asyncio.sleep(1.5)
    workspace = await Workspace.get(slug=account.slug)
    assert len(server.broadcaster.subscribers.get(workspace.id, ())) == 1
    await owner_ws.close()


async def _email(account) -> str:
    from app.models import User

    return (await User.get(id=account.user_id)).email
