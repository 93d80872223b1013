"""The `annobridge` command: parses options, calls the library, prints. Nothing else."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bridge import __version__
from bridge.errors import EXIT_OK, BridgeError
from bridge.mapping import load_mapping
from bridge.pipeline import PENDING, UNCHANGED, OnProgress, SyncResult, run
from bridge.scaffold import init_project

app = typer.Typer(
    name="annobridge",
    help="Sync human labels from spreadsheets into LLM observability platforms.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

MappingArg = Annotated[
    Path, typer.Argument(help="The mapping file (YAML).", show_default=False, metavar="MAPPING")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one machine-readable summary object on stdout.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]

_ORDER = ["synced", UNCHANGED, "invalid", "rejected", "failed", "skipped", PENDING]
_LABELS = {PENDING: "to send"}
MAX_ISSUES_SHOWN = 50


def _version(value: bool) -> None:
    if value:
        typer.echo(f"annobridge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """Sync human labels from spreadsheets into LLM observability platforms."""


@contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    """A BridgeError is the user's to fix: print it without a traceback, exit with its code."""
    try:
        yield
    except BridgeError as exc:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "error": {"type": type(exc).__name__, "message": str(exc)},
                        "exit_code": exc.exit_code,
                    }
                )
            )
        typer.echo(f"{type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[OnProgress | None]:
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(), transient=True) as bar:
        task = bar.add_task("sending", total=None, rate="")

        def update(done: int, total: int) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, completed=done, total=total, rate=f"{speed:,.0f}/s" if speed else "")

        yield update


def _print_summary(result: SyncResult, verb: str) -> None:
    counts = result.counts
    parts = [f"{counts[k]} {_LABELS.get(k, k)}" for k in _ORDER if counts.get(k)]
    typer.echo(f"{verb} {result.source} -> {result.target.split('|')[0]}: {result.rows} rows")
    typer.echo("  " + (", ".join(parts) if parts else "nothing to do"))
    for issue in result.issues[:MAX_ISSUES_SHOWN]:
        typer.echo(f"  row {issue.sheet_row}: {issue.status}: {issue.message}")
    if len(result.issues) > MAX_ISSUES_SHOWN:
        typer.echo(f"  ... and {len(result.issues) - MAX_ISSUES_SHOWN} more (see the sheet)")
    if result.vanished_rows:
        shown = ", ".join(str(r) for r in result.vanished_rows[:20])
        typer.echo(
            f"  {len(result.vanished_rows)} rows were deleted from the sheet while syncing "
            f"(rows {shown}); their annotations were sent, their status could not be written"
        )
    if result.statuses_written:
        typer.echo(f"  status written to {result.statuses_written} rows of {result.source}")


@app.command()
def validate(mapping: MappingArg, as_json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Read the sheet and check every row against the rules; send nothing, write nothing.

    Example:

        annobridge validate mappings/phoenix-excel.yaml
    """
    with _errors(as_json):
        result = run(load_mapping(mapping), send=False)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
    elif not quiet:
        _print_summary(result, "validated")
    raise typer.Exit(result.exit_code)


@app.command()
def sync(
    mapping: MappingArg,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Send nothing, write nothing; print what would be sent."),
    ] = False,
    as_json: JsonOpt = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Send at most N rows; the rest wait for the next run."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Validate the sheet, send new and edited labels, and write each row's status back.

    Exit codes: 0 all valid rows synced (or nothing to do); 1 some rows invalid, rejected or
    failed; 2 usage or mapping error, nothing sent; 3 sheet or platform unreachable, nothing
    lost, safe to retry.

    Example:

        annobridge sync mappings/phoenix-excel.yaml --dry-run
        annobridge sync mappings/phoenix-excel.yaml --json
    """
    show_bar = sys.stdout.isatty() and not as_json and not quiet and not dry_run
    with _errors(as_json), _progress_bar(show_bar) as on_progress:
        result = run(load_mapping(mapping), dry_run=dry_run, limit=limit, on_progress=on_progress)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
    elif not quiet:
        if dry_run:
            for payload in result.planned:
                typer.echo(json.dumps(payload, ensure_ascii=False, sort_keys=True))
            typer.echo(f"dry run: would send {len(result.planned)} annotations; nothing sent")
        _print_summary(result, "dry run of" if dry_run else "synced")
    raise typer.Exit(result.exit_code)


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to write annobridge.yaml and labels.xlsx.")
    ] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write a starter mapping and a template workbook (header, status columns, dropdowns).

    Example:

        annobridge init my-labels
        annobridge sync my-labels/annobridge.yaml --dry-run
    """
    with _errors(False):
        written = init_project(directory, force=force)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(
        f"next: add span ids and labels to {written[1]}, then run "
        f"'annobridge sync {written[0]} --dry-run'"
    )
    raise typer.Exit(EXIT_OK)


def main() -> Any:
    """Console-script entry point."""
    return app()
