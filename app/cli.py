"""hookyard serve | worker | migrate | bootstrap | export-schema"""

from __future__ import annotations

import argparse
import asyncio
import sys

from app.config import Settings
from app.core.logging import configure_logging


def _migrate(settings: Settings) -> None:
    from app.models.database import migrate

    asyncio.run(migrate(settings))


def _bootstrap(settings: Settings, email: str, slug: str, force_token: bool) -> str | None:
    from app.models.database import close_db, init_db
    from app.services.bootstrap import bootstrap

    async def run() -> str | None:
        await init_db(settings)
        try:
            done = await bootstrap(email=email, slug=slug, force_token=force_token)
            return done.token
        finally:
            await close_db()

    return asyncio.run(run())


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.main import create_app

    settings = Settings()
    _migrate(settings)
    token = _bootstrap(settings, "owner@localhost", "default", False)
    url = f"http://{settings.host}:{settings.port}"
    print(f"Hookyard is starting at {url}/graphql (dashboard: {url}/dashboard)", flush=True)
    if token:
        print(f"First API token (shown once, keep it): {token}", flush=True)
    else:
        print("Already set up: mint another token with `hookyard bootstrap --new-token`.", flush=True)
    # log_config=None: uvicorn's loggers keep no handlers of their own and write through ours.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                log_config=None, ws_per_message_deflate=settings.ws_compression, ws_max_size=settings.max_body_bytes)


def cmd_worker(args: argparse.Namespace) -> None:
    from app.workers.settings import build_worker

    settings = Settings()
    if not settings.redis_url:
        sys.exit("hookyard worker needs HOOKYARD_REDIS_URL (the embedded Redis lives inside `hookyard serve`)")
    try:  # the loop uvicorn picks for `serve`; arq takes whatever loop the policy makes
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    build_worker(settings, settings.redis_url, burst=args.burst).run()


def cmd_migrate(args: argparse.Namespace) -> None:
    _migrate(Settings())
    print("migrations applied")


def cmd_bootstrap(args: argparse.Namespace) -> None:
    settings = Settings()
    _migrate(settings)
    token = _bootstrap(settings, args.email, args.workspace, args.new_token)
    print(token if token else "already set up (use --new-token for another token)")


def cmd_export_schema(args: argparse.Namespace) -> None:
    from app.schema import export_schema

    sys.stdout.write(export_schema())


def main(argv: list[str] | None = None) -> None:
    configure_logging(Settings())
    parser = argparse.ArgumentParser(prog="hookyard")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="migrate, bootstrap and run the API (with the worker inside)").set_defaults(
        func=cmd_serve)
    worker = sub.add_parser("worker", help="run a delivery worker process")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    boot = sub.add_parser("bootstrap", help="create the first workspace, owner and token")
    boot.add_argument("--email", default="owner@localhost")
    boot.add_argument("--workspace", default="default")
    boot.add_argument("--new-token", action="store_true", help="mint a new owner token even if set up")
    boot.set_defaults(func=cmd_bootstrap)
    sub.add_parser("export-schema", help="print the GraphQL schema (SDL)").set_defaults(func=cmd_export_schema)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
