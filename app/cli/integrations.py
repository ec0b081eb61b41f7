"""hookyard integration list | disable | enable"""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from app.cli.common import in_db, load_settings, out, queue_note, refused, shown_time, with_runtime
from app.services import admin

app = typer.Typer(help="Integrations: list them, turn them off and on.", no_args_is_help=True)


@app.command("list")
def list_(
    workspace: str | None = typer.Option(None, "--workspace", "-w", help="Only this workspace's (slug)."),
) -> None:
    """List integrations (never their config or secrets)."""
    done = in_db(load_settings(), lambda: admin.list_integrations(workspace))
    if not done.ok:
        refused(done.errors)
    if not done.value:
        out.print("no integrations")
        return
    table = Table()
    table.add_column("ID", no_wrap=True, min_width=30)
    table.add_column("Workspace", overflow="fold")
    table.add_column("Type", no_wrap=True)
    table.add_column("Name", overflow="fold")
    table.add_column("Enabled", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Last success")
    for i in done.value:
        table.add_row(i.id, Text(i.workspace.slug), i.type, Text(i.name), "yes" if i.enabled else "no",
                      i.status.value, shown_time(i.last_success_at))
    out.print(table)


def _set_enabled(integration_id: str, enabled: bool) -> None:
    settings = load_settings()
    done = with_runtime(settings, lambda runtime: admin.set_integration_enabled(runtime, integration_id, enabled))
    if not done.ok:
        refused(done.errors)
    i = done.value
    out.print(f"{i.id} ({i.name}) is {'enabled' if i.enabled else 'disabled'}; status {i.status.value}",
              markup=False)
    if enabled:
        queue_note(settings)


@app.command()
def disable(integration_id: str = typer.Argument(..., metavar="ID", help="The integration's id (int_...).")) -> None:
    """Turn an integration off: nothing more is delivered to it until it is enabled again."""
    _set_enabled(integration_id, False)


@app.command()
def enable(integration_id: str = typer.Argument(..., metavar="ID", help="The integration's id (int_...).")) -> None:
    """Turn an integration back on; deliveries held while it was off go out."""
    _set_enabled(integration_id, True)
