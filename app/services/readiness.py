"""Readiness, shared by /readyz and `hookyard check`: the database answers, Redis answers and every
migration in app/models/migrations has been applied."""

from __future__ import annotations

import asyncio
import contextlib
import pkgutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from tortoise import connections
from tortoise.migrations.recorder import MigrationRecorder

from app.config import Settings
from app.core.http import MASK, hide_password
from app.core.secret_box import KEY_CHANGED, SecretBox
from app.models import Integration
from app.models.database import MIGRATIONS_MODULE, close_db, init_db

MIGRATIONS_APP = "models"  # the Tortoise app label the migrations belong to (see tortoise_config)
CHECK_TIMEOUT = 2.0


async def ping_database() -> None:
    await connections.get("default").execute_query("SELECT 1")


async def ping_redis(redis: Redis | None) -> None:
    if redis is None:
        raise RuntimeError("no Redis connection in this process")
    await redis.ping()


def migrations_on_disk(module: str = MIGRATIONS_MODULE) -> list[str]:
    """The migration names Tortoise's loader finds in `module`."""
    package = import_module(module)
    return sorted(name for _, name, is_pkg in pkgutil.iter_modules(package.__path__)
                  if not is_pkg and name[0] not in "_~")


async def pending_migrations(expected: list[str] | None = None) -> list[str]:
    """Migrations on disk that the database's migration table does not list as applied."""
    expected = migrations_on_disk() if expected is None else expected
    recorder = MigrationRecorder(connections.get("default"))
    applied = {key.name for key in await recorder.applied_migrations() if key.app_label == MIGRATIONS_APP}
    return [name for name in expected if name not in applied]


async def run_check(check: Callable[[], Awaitable[dict[str, Any] | None]],
                    timeout: float = CHECK_TIMEOUT) -> dict[str, Any]:
    """`{"ok": True, "ms": ...}` plus what the check reports, or `{"ok": False, "error": ...}`."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            details = await check() or {}
    except TimeoutError:
        return {"ok": False, "error": f"no answer in {timeout:g} s"}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    if details.get("ok") is False:
        return details
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1), **details}


async def readiness(redis: Redis | None, expected_migrations: list[str] | None = None) -> tuple[bool, dict]:
    """(ready, body) for /readyz."""

    async def database() -> None:
        await ping_database()

    async def cache() -> None:
        await ping_redis(redis)

    async def migrations() -> dict[str, Any]:
        pending = await pending_migrations(expected_migrations)
        if pending:
            return {"ok": False, "error": f"{len(pending)} migration(s) not applied: run `hookyard migrate`",
                    "pending": pending}
        return {"pending": []}

    db, rd = await asyncio.gather(run_check(database), run_check(cache))
    # Reading the migration table only means something when the database answers.
    mg = await run_check(migrations) if db["ok"] else {"ok": False, "error": "the database did not answer"}
    checks = {"database": db, "redis": rd, "migrations": mg}
    failed = [name for name, result in checks.items() if not result["ok"]]
    if failed:
        return False, {"status": "unavailable", "failed": failed, "checks": checks}
    return True, {"status": "ready", "checks": checks}



# ------------------------------------------------------------------ `hookyard check`

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
MIN_SECRET_KEY_LENGTH = 16
SECRET_SAMPLE = 20  # stored integration secrets the key is tried on


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def _scrub(text: str, url: str | None) -> str:
    """An error message with the URL's password taken out, should a driver quote it."""
    try:
        password = urlsplit(url).password if url else None
    except ValueError:
        password = None
    for secret in {password, unquote(password or "")} - {None, ""}:
        text = text.replace(secret, MASK)
    return text


def _error(result: dict[str, Any], url: str | None) -> str:
    return _scrub(str(result.get("error", "failed")), url)


async def check_redis(url: str, timeout: float) -> dict[str, Any]:
    client = Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return await run_check(lambda: ping_redis(client), timeout)
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


def check_secret_key_setting(settings: Settings) -> tuple[Check, str | None]:
    """Whether a secret key is configured (or was generated into the data directory); never its value."""
    if settings.secret_key is not None:
        key = settings.secret_key.strip()
        if len(key) < MIN_SECRET_KEY_LENGTH:
            return Check("secret key", FAIL, f"HOOKYARD_SECRET_KEY is {'empty' if not key else 'too short'}: use at "
                                             f"least {MIN_SECRET_KEY_LENGTH} random characters"), None
        return Check("secret key", OK, "HOOKYARD_SECRET_KEY is set"), settings.secret_key
    path = Path(settings.data_dir) / "secret_key"
    if path.exists():
        key = path.read_text().strip()
        if len(key) < MIN_SECRET_KEY_LENGTH:
            return Check("secret key", FAIL, f"the key file {path} is empty or too short"), None
        return Check("secret key", OK, f"HOOKYARD_SECRET_KEY unset: using the key file {path}"), key
    return Check("secret key", WARN, f"HOOKYARD_SECRET_KEY unset and no key file yet: `hookyard serve` generates "
                                     f"one into {path} (set HOOKYARD_SECRET_KEY when several processes run)"), None


async def _secrets_open(key: str) -> dict[str, Any]:
    box = SecretBox(key)
    stored = await Integration.filter(secrets_encrypted__isnull=False).limit(SECRET_SAMPLE).values_list(
        "id", "secrets_encrypted")
    for integration_id, ciphertext in stored:
        try:
            box.open(ciphertext)
        except RuntimeError:
            return {"ok": False, "error": f"{KEY_CHANGED} (integration {integration_id})"}
    return {"tried": len(stored)}


async def check_instance(settings: Settings, timeout: float = 5.0) -> list[Check]:
    """Database reachable, migrations applied, Redis reachable (when configured), the secret key set
    and able to open the secrets already stored. URLs in the answers never carry their password."""
    checks: list[Check] = []
    db_url = settings.database_url
    shown_db = hide_password(db_url)

    async def database() -> None:
        await init_db(settings)
        await ping_database()

    db = await run_check(database, timeout)
    try:
        if db["ok"]:
            checks.append(Check("database", OK, f"{shown_db} answered in {db['ms']:g} ms"))
            async def read_pending() -> dict[str, Any]:
                return {"pending": await pending_migrations()}

            pending = await run_check(read_pending, timeout)
            if not pending["ok"]:
                error = _error(pending, db_url)
                checks.append(Check("migrations", FAIL, f"could not read the migration table: {error}"))
            elif pending["pending"]:
                names = ", ".join(pending["pending"])
                checks.append(Check("migrations", FAIL, f"{len(pending['pending'])} not applied ({names}): run "
                                                        "`hookyard migrate`"))
            else:
                checks.append(Check("migrations", OK, f"all {len(migrations_on_disk())} applied"))
        else:
            checks.append(Check("database", FAIL, f"{shown_db} did not answer: {_error(db, db_url)}"))
            checks.append(Check("migrations", SKIP, "not checked: the database did not answer"))

        if settings.redis_url:
            redis = await check_redis(settings.redis_url, timeout)
            shown = hide_password(settings.redis_url)
            checks.append(Check("redis", OK, f"{shown} answered in {redis['ms']:g} ms") if redis["ok"] else
                          Check("redis", FAIL, f"{shown} did not answer: {_error(redis, settings.redis_url)}"))
        else:
            checks.append(Check("redis", SKIP, "embedded: HOOKYARD_REDIS_URL is unset, so `hookyard serve` starts "
                                               "its own Redis (not checked)"))

        key_check, key = check_secret_key_setting(settings)
        if key is not None and db["ok"]:
            opened = await run_check(lambda: _secrets_open(key), timeout)
            if not opened["ok"]:
                key_check = Check("secret key", FAIL, _error(opened, db_url))
            else:
                tried = opened["tried"]
                key_check.detail += (f"; opens the stored integration secrets ({tried} tried)" if tried else
                                     "; no integration secrets stored yet")
        checks.append(key_check)
    finally:
        with contextlib.suppress(Exception):
            await close_db()
    return checks


def _shown(name: str, value: Any) -> str:
    if name == "secret_key":
        return "set (not shown)" if value else "unset"
    if name.endswith(("_secret", "_password", "_token", "_key")):
        return "set (hidden)" if value else "unset"
    if value is None:
        return "unset"
    if name.endswith("_url") or name == "egress_proxy":
        return hide_password(str(value)) or ""
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value)


def effective_settings(settings: Settings) -> list[tuple[str, str]]:
    """(environment variable, value as shown) for every setting, secrets masked: the secret key and
    client secrets never shown, passwords in URLs masked."""
    return [(f"HOOKYARD_{name.upper()}", _shown(name, getattr(settings, name)))
            for name in type(settings).model_fields if name != "tortoise_modules"]
