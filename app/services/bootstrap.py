"""First start: a workspace, its owner and an API token, so there is something to log in with.

The bootstrap token (and each `--new-token`) is the instance operator's: it has every ability,
`instance:operator` included, which no ordinary token can grant.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.models import Plan, User, Workspace
from app.services.tokens import ALL_ABILITIES, create_token
from app.services.workspaces import create_workspace


@dataclass
class Bootstrapped:
    workspace: Workspace
    user: User
    token: str | None  # None when the server was already set up


async def bootstrap(email: str = "owner@localhost", slug: str = "default", name: str = "Default workspace",
                    plan: Plan = Plan.PROFESSIONAL, force_token: bool = False) -> Bootstrapped:
    user, _ = await User.get_or_create(email=email, defaults={"name": "Owner"})
    workspace = await Workspace.get_or_none(slug=slug)
    if workspace is None:
        created = await create_workspace(user, slug, name, plan)
        if not created.ok:
            raise RuntimeError("; ".join(f"{e.field}: {e.message}" for e in created.errors))
        workspace = created.value
    elif not force_token:
        return Bootstrapped(workspace=workspace, user=user, token=None)
    _, plain = await create_token(user, name="bootstrap", abilities=ALL_ABILITIES)
    return Bootstrapped(workspace=workspace, user=user, token=plain)
