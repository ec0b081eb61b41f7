"""The `hookyard` command line (typer + rich). It parses, calls app.services and prints; the logic
lives in the services, where tests reach it without a command line."""

from __future__ import annotations

from app.cli.main import app, main

__all__ = ["app", "main"]
