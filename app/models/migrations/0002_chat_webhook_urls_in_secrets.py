"""Slack and Discord webhook URLs move from `integration.config` (plain text) into the encrypted
secrets, where every other credential is; `config.url` keeps only the masked form queries show.

The secrets are encrypted with the server's key: `hookyard migrate` reads it the way the server
does, from the environment (HOOKYARD_SECRET_KEY, or the key file in HOOKYARD_DATA_DIR). The key
is only needed when there are rows to move, so a new database migrates without one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops

from app.config import Settings
from app.core.http import MASK, mask_url
from app.core.secret_box import SecretBox

CHAT_TYPES = ("SLACK", "DISCORD")


def box_from_environment() -> SecretBox:
    return SecretBox.from_settings(Settings())


def _open(box: SecretBox, row: dict[str, Any]) -> dict[str, Any]:
    try:
        return box.open(row["secrets_encrypted"])
    except RuntimeError as exc:
        raise RuntimeError(f"integration {row['id']}: {exc} Run the migration with the server's "
                           "HOOKYARD_SECRET_KEY (or HOOKYARD_DATA_DIR) set.") from exc


async def _chat_rows(model, client) -> list[dict[str, Any]]:
    return await model.filter(type__in=CHAT_TYPES).using_db(client).values("id", "config", "secrets_encrypted")


async def move_chat_urls(model, client, box: SecretBox | Callable[[], SecretBox] = box_from_environment) -> int:
    """Moves every plain chat webhook URL into the secrets; returns how many integrations changed."""
    todo = []
    for row in await _chat_rows(model, client):
        url = (row["config"] or {}).get("url")
        if isinstance(url, str) and url and MASK not in url:
            todo.append((row, url))
    if not todo:
        return 0
    box = box if isinstance(box, SecretBox) else box()
    for row, url in todo:
        secrets = _open(box, row)
        secrets["url"] = url
        config = {**row["config"], "url": mask_url(url)}
        await model.filter(id=row["id"]).using_db(client).update(config=config, secrets_encrypted=box.seal(secrets))
    return len(todo)


async def restore_chat_urls(model, client, box: SecretBox | Callable[[], SecretBox] = box_from_environment) -> int:
    """The reverse: the URL back into the config, out of the secrets."""
    rows = [row for row in await _chat_rows(model, client) if row["secrets_encrypted"]]
    if not rows:
        return 0
    box = box if isinstance(box, SecretBox) else box()
    changed = 0
    for row in rows:
        secrets = _open(box, row)
        url = secrets.pop("url", None)
        if not url:
            continue
        config = {**(row["config"] or {}), "url": url}
        await model.filter(id=row["id"]).using_db(client).update(config=config, secrets_encrypted=box.seal(secrets))
        changed += 1
    return changed


async def forward(apps, schema_editor) -> None:
    await move_chat_urls(apps.get_model("models", "Integration"), schema_editor.client)


async def backward(apps, schema_editor) -> None:
    await restore_chat_urls(apps.get_model("models", "Integration"), schema_editor.client)


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [
        ops.RunPython(forward, backward),
    ]
