"""hookyard serve | worker | migrate | bootstrap | check | token | integration | deliveries | export-schema"""

from __future__ import annotations

import logging
import sys

import typer

from app.cli import deliveries, integrations, tokens
from app.cli.common import err, fail, load_settings, out, run
from app.core.logging import configure_logging

app = typer.Typer(
    name="hookyard",
    help="Hookyard: self-hosted GraphQL server for product integrations. Settings come from HOOKYARD_* "
         "environment variables (see `hookyard check`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(tokens.app, name="token")
app.add_typer(integrations.app, name="integration")
app.add_typer(deliveries.app, name="deliveries")


@app.callback()
def _setup(ctx: typer.Context) -> None:
    configure_logging(load_settings())
    if ctx.invoked_subcommand not in ("serve", "worker"):
        # One-off commands: their output is the point, not the ORM's start and stop lines.
        logging.getLogger("tortoise").setLevel(max(logging.WARNING, logging.getLogger().level))


def _migrate(settings) -> None:
    from app.models.database import migrate

    run(migrate(settings))


def _bootstrap(settings, email: str, slug: str, force_token: bool) -> str | None:
    from app.models.database import close_db, init_db
    from app.services.bootstrap import bootstrap

    async def go() -> str | None:
        await init_db(settings)
        try:
            done = await bootstrap(email=email, slug=slug, force_token=force_token)
            return done.token
        finally:
            await close_db()

    return run(go())


@app.command()
def serve(
    no_worker: bool = typer.Option(False, "--no-worker",
                                   help="Run the API only, without the delivery worker inside "
                                        "(run `hookyard worker` processes against HOOKYARD_REDIS_URL)."),
) -> None:
    """Migrate, bootstrap and run the API (with the delivery worker inside unless --no-worker)."""
    from app.main import create_app
    from app.web.serve import serve as run_api

    settings = load_settings(**({"run_worker_in_api": False} if no_worker else {}))
    if not settings.run_worker_in_api and not settings.redis_url:
        err.print("[yellow]warning:[/] no worker runs with the API and HOOKYARD_REDIS_URL is unset: nothing will "
                  "be delivered (a `hookyard worker` needs a shared Redis).")
    _migrate(settings)
    token = _bootstrap(settings, "owner@localhost", "default", False)
    url = f"http://{settings.host}:{settings.port}"
    print(f"Hookyard is starting at {url}/graphql (dashboard: {url}/dashboard)", flush=True)
    if token:
        print(f"First API token (shown once, keep it): {token}", flush=True)
    else:
        print("Already set up: mint another token with `hookyard bootstrap --new-token`.", flush=True)
    run_api(create_app(settings), settings)  # uvicorn, with the graceful shutdown of app.web.serve


@app.command()
def worker(
    burst: bool = typer.Option(False, "--burst", help="Exit when the queue is empty."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, metavar="N",
                                           help="Jobs run at once (default: HOOKYARD_WORKER_CONCURRENCY)."),
) -> None:
    """Run a delivery worker process (needs HOOKYARD_REDIS_URL)."""
    import asyncio

    from app.workers.settings import build_worker

    settings = load_settings(**({"worker_concurrency": concurrency} if concurrency else {}))
    if not settings.redis_url:
        fail("hookyard worker needs HOOKYARD_REDIS_URL (the embedded Redis lives inside `hookyard serve`)")
    previous = asyncio.get_event_loop_policy()
    try:  # the loop uvicorn picks for `serve`; arq takes whatever loop the policy makes
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    try:
        build_worker(settings, settings.redis_url, burst=burst).run()
    finally:  # called in-process (typer's runner), the caller keeps its own loop policy
        asyncio.set_event_loop_policy(previous)


@app.command()
def migrate() -> None:
    """Apply database migrations."""
    _migrate(load_settings())
    out.print("migrations applied")


@app.command()
def bootstrap(
    email: str = typer.Option("owner@localhost", help="The owner's email."),
    workspace: str = typer.Option("default", help="The first workspace's slug."),
    new_token: bool = typer.Option(False, "--new-token", help="Mint a new owner token even if set up."),
) -> None:
    """Create the first workspace, owner and (operator) token; prints the token once."""
    settings = load_settings()
    _migrate(settings)
    token = _bootstrap(settings, email, workspace, new_token)
    out.print(token if token else "already set up (use --new-token for another token)")


@app.command()
def check(
    timeout: float = typer.Option(5.0, min=0.1, help="Seconds each check may take."),
) -> None:
    """Check the database, Redis, migrations and secret key; print the effective settings (secrets masked)."""
    from rich.table import Table
    from rich.text import Text

    from app.services.readiness import FAIL, OK, SKIP, check_instance, effective_settings

    settings = load_settings()
    table = Table(title="Effective settings", title_justify="left")
    table.add_column("Setting", no_wrap=True)
    table.add_column("Value", overflow="fold")
    for name, value in effective_settings(settings):
        table.add_row(name, Text(value))
    out.print(table)

    checks = run(check_instance(settings, timeout=timeout))
    marks = {OK: "[green]ok[/]", FAIL: "[red]FAIL[/]", SKIP: "[dim]skip[/]"}
    results = Table(title="Checks", title_justify="left")
    results.add_column("Check", no_wrap=True)
    results.add_column("Result", no_wrap=True)
    results.add_column("Detail", overflow="fold")
    for item in checks:
        results.add_row(item.name, marks.get(item.status, "[yellow]warn[/]"), Text(item.detail))
    out.print(results)
    failed = [item for item in checks if item.failed]
    if failed:
        fail("check failed:\n" + "\n".join(f"  {item.name}: {item.detail}" for item in failed))
    out.print("all checks passed")


@app.command("export-schema")
def export_schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from app.schema import export_schema as sdl

    sys.stdout.write(sdl())


def main(argv: list[str] | None = None) -> None:
    """The `hookyard` entry point; also callable from Python (`main(["migrate"])`), where a command
    that succeeds returns instead of exiting the process. A failing one exits non-zero."""
    try:
        app(args=argv, prog_name="hookyard")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


if __name__ == "__main__":
    main()
