"""hookyard deliveries recover | retry | purge | export"""

from __future__ import annotations

import contextlib
import sys
from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.cli.common import duration, err, fail, in_db, load_settings, out, queue_note, refused, when, with_runtime
from app.models import DeliveryStatus
from app.services import admin, maintenance
from app.services.deliveries import RETRYABLE

app = typer.Typer(help="Deliveries: recover and retry failures, purge old ones, export them.",
                  no_args_is_help=True)

Recoverable = StrEnum("Recoverable", {s.value: s.value for s in RETRYABLE})
ExportFormat = StrEnum("ExportFormat", {f: f for f in maintenance.EXPORT_FORMATS})


@contextlib.contextmanager
def progress_bar(what: str):
    """A rich progress bar on stderr and the callback the services report to."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=False) as bar:
        task = bar.add_task(what, total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield report


@app.command()
def recover(
    integration: str = typer.Option(..., "--integration", "-i", help="The integration's id (int_...)."),
    since: str = typer.Option(..., help="From: a date/time (2025-01-31, 2025-01-31T12:00:00Z) or a duration "
                                        "ago (7d)."),
    until: str | None = typer.Option(None, help="Up to (default: now); same forms as --since."),
    status: list[Recoverable] | None = typer.Option(None, "--status", "-s", case_sensitive=False, metavar="STATUS",
                                                    help="A status to send again (repeat for several): "
                                                         f"{', '.join(s.value for s in RETRYABLE)}; default FAILED."),
) -> None:
    """Send the integration's deliveries created between --since and --until again (FAILED ones unless told)."""
    settings = load_settings()
    start, end = when(since), when(until)
    statuses = [DeliveryStatus(s.value) for s in status] if status else [DeliveryStatus.FAILED]
    done = with_runtime(settings, lambda runtime: admin.recover_deliveries(runtime, integration, start, end, statuses))
    if not done.ok:
        refused(done.errors)
    out.print(f"queued {done.value} {'/'.join(s.value for s in statuses)} "
              f"deliver{'y' if done.value == 1 else 'ies'} of {integration} again")
    if done.value:
        queue_note(settings)


@app.command()
def retry(delivery_id: str = typer.Argument(..., metavar="ID", help="The delivery's id (del_...).")) -> None:
    """Send one delivery again now, whatever happened to it before (unless it is on its way)."""
    settings = load_settings()
    done = with_runtime(settings, lambda runtime: admin.retry_delivery(runtime, delivery_id))
    if not done.ok:
        refused(done.errors)
    out.print(f"queued {done.value.id} (attempt {done.value.attempt_count + 1})")
    queue_note(settings)


@app.command()
def purge(
    older_than: str = typer.Option(..., "--older-than", metavar="DURATION",
                                   help="Age such as 30d, 12h or 15m: finished deliveries created before are deleted."),
    batch: int = typer.Option(maintenance.BATCH, min=1, max=10_000, help="Deliveries deleted per transaction."),
) -> None:
    """Delete SUCCEEDED and FAILED deliveries (with their attempts) older than --older-than, in batches.
    Pending, sending, retrying and held ones are never deleted."""
    age = duration(older_than)
    with progress_bar("purging") as report:
        purged = in_db(load_settings(), lambda: maintenance.purge_finished(age, batch=batch, progress=report))
    out.print(f"deleted {purged.deliveries} deliveries ({purged.attempts} attempts) and {purged.events} events "
              f"older than {older_than}")


@app.command()
def export(
    since: str = typer.Option(..., help="From: a date/time (2025-01-31, 2025-01-31T12:00:00Z) or a duration "
                                        "ago (7d)."),
    until: str | None = typer.Option(None, help="Up to (default: now); same forms as --since."),
    format_: ExportFormat = typer.Option("jsonl", "--format", "-f", case_sensitive=False, metavar="FORMAT",
                                  help="jsonl (one JSON object a line) or csv (with a header row)."),
    output: Path | None = typer.Option(None, "--output", "-o", dir_okay=False, writable=True,
                                       help="Write to this file (default: stdout)."),
) -> None:
    """Export deliveries created between --since and --until (no secrets: what GraphQL's Delivery shows)."""
    start, end = when(since), when(until)
    if end is not None and end < start:
        fail("--until must not be before --since")
    settings = load_settings()
    fmt = format_.value

    def go(stream) -> int:
        with progress_bar("exporting") as report:
            return in_db(settings, lambda: maintenance.export_deliveries(stream, fmt, start, end, progress=report))

    if output is None:
        count = go(sys.stdout)
        sys.stdout.flush()
    else:
        with output.open("w", encoding="utf-8", newline="") as stream:
            count = go(stream)
    err.print(f"exported {count} deliveries" + (f" to {output}" if output else ""), markup=False)
