"""Database configuration, start-up and migrations (Tortoise's built-in migrator)."""

from __future__ import annotations

from pathlib import Path

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as tortoise_migrate

from app.config import Settings

MIGRATIONS_MODULE = "app.models.migrations"


def _normalise_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgres://" + url[len("postgresql://") :]
    return url


async def _keep_session(connection) -> None:
    """Pool release hook for asyncpg: no reset query.

    asyncpg's default runs `RESET ALL; UNLISTEN *; CLOSE ALL; ...` on every release, which
    doubles the round trips of every ORM query. Hookyard never changes session state
    (no SET, LISTEN, cursors or advisory locks), and asyncpg still rolls back a
    transaction left open before it calls this.
    """


def _connection(url: str, random_page_cost: float | None = None) -> str | dict:
    if not url.startswith(("postgres://", "asyncpg://")):
        return url
    config = expand_db_url(url)
    config["credentials"].setdefault("reset", _keep_session)
    if random_page_cost is not None:  # see Settings.database_random_page_cost
        config["credentials"].setdefault("server_settings", {})["random_page_cost"] = f"{random_page_cost:g}"
    return config


def tortoise_config(settings: Settings) -> dict:
    url = _normalise_url(settings.database_url)
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": _connection(url, settings.database_random_page_cost)},
        "apps": {
            "models": {
                "models": settings.tortoise_modules,
                "migrations": MIGRATIONS_MODULE,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(settings: Settings) -> None:
    """Apply every pending migration."""
    try:
        await tortoise_migrate(config=tortoise_config(settings))
    finally:  # a failed migration must not leave the process hanging on open connections
        await Tortoise.close_connections()


async def init_db(settings: Settings) -> None:
    """Open the ORM for a process that has no Starlette lifespan (worker, CLI)."""
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


# Used by the `tortoise` CLI: `tortoise -c app.db.TORTOISE_ORM makemigrations`.
TORTOISE_ORM = tortoise_config(Settings())
