"""hookyard token create | list | revoke"""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from app.cli.common import duration, err, in_db, load_settings, out, refused, shown_time
from app.services import admin
from app.services.tokens import ABILITIES, ALL_ABILITIES

app = typer.Typer(help="API tokens: create, list and revoke (any user's; nothing shows a token's hash).",
                  no_args_is_help=True)


@app.command()
def create(
    user: str = typer.Option(..., "--user", "--email", "-u", help="The user's email (or id)."),
    name: str = typer.Option(..., "--name", "-n", help="What the token is for."),
    ability: list[str] | None = typer.Option(
        None, "--ability", "-a", help=f"An ability (repeat for several); default: {', '.join(ABILITIES)}. "
                                      f"Known: {', '.join(ALL_ABILITIES)}."),
    expires_in: str | None = typer.Option(None, "--expires-in", metavar="DURATION",
                                          help="Lifetime such as 30d, 12h or 15m; default: never expires."),
) -> None:
    """Create a token for a user; the token goes to stdout once (details to stderr)."""
    life = duration(expires_in) if expires_in else None
    done = in_db(load_settings(), lambda: admin.create_user_token(user, name, ability, life))
    if not done.ok:
        refused(done.errors)
    issued = done.value
    err.print(f"Created token {issued.token.id} ({issued.token.name!r}) for {issued.token.user.email}, "
              f"abilities {', '.join(issued.token.abilities)}, expires {shown_time(issued.token.expires_at)}. "
              "It is shown once: keep it.", markup=False)
    out.print(issued.plain, markup=False)


@app.command("list")
def list_(
    user: str | None = typer.Option(None, "--user", "--email", "-u", help="Only this user's tokens."),
    all_: bool = typer.Option(False, "--all", help="Include revoked tokens."),
) -> None:
    """List tokens (id, name, user, first characters, abilities, dates); never a hash."""
    done = in_db(load_settings(), lambda: admin.list_tokens(user, include_revoked=all_))
    if not done.ok:
        refused(done.errors)
    if not done.value:
        out.print("no tokens")
        return
    table = Table()
    table.add_column("ID", no_wrap=True, min_width=30)
    for column in ("Name", "User", "Starts with", "Abilities"):
        table.add_column(column, overflow="fold")
    for column in ("Created", "Expires", "Last used", "State"):
        table.add_column(column)
    for t in done.value:
        table.add_row(t.id, Text(t.name), Text(t.user_email), Text(t.hint + "…"), "\n".join(t.abilities),
                      shown_time(t.created_at), shown_time(t.expires_at), shown_time(t.last_used_at), t.state)
    out.print(table)


@app.command()
def revoke(token_id: str = typer.Argument(..., metavar="ID", help="The token's id (tok_...).")) -> None:
    """Revoke a token: requests with it are refused from now on."""
    done = in_db(load_settings(), lambda: admin.revoke_token(token_id))
    if not done.ok:
        refused(done.errors)
    out.print(f"revoked {done.value.id}")
