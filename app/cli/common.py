"""What every command shares: settings read once with a plain error, asyncio, rich consoles, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from app.config import Settings
from app.core.durations import parse_duration, parse_when
from app.core.errors import FieldError

if TYPE_CHECKING:
    from app.delivery.runtime import Runtime

T = TypeVar("T")

# Tables and messages to stdout; progress bars and notes to stderr, so stdout stays data.
out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """A plain message (no rich markup or wrapping) on stderr and a non-zero exit."""
    typer.echo(f"hookyard: {message}", err=True)
    raise typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        fail(f"the HOOKYARD_* settings are not valid:\n{exc}", 2)
    return settings.model_copy(update=overrides) if overrides else settings


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def in_db(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Runs `work()` with the database open."""
    from app.services.admin import database_session

    async def go() -> T:
        async with database_session(settings):
            return await work()

    return run(go())


def with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Runs `work(runtime)` with the database and a runtime (HTTP session, Redis when configured) open."""
    from app.services.admin import operator_session

    async def go() -> T:
        async with operator_session(settings) as runtime:
            return await work(runtime)

    return run(go())


def refused(errors: list[FieldError]) -> NoReturn:
    fail("; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors))


def duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_when(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def shown_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def queue_note(settings: Settings) -> None:
    if not settings.redis_url:
        err.print("HOOKYARD_REDIS_URL is unset (embedded Redis): a running `hookyard serve` sends them within "
                  f"about {settings.stuck_after_seconds + settings.sweep_interval_seconds:g} s.")
