"""The `annobridge` command: parses options, calls the library, prints. Nothing else."""

from __future__ import annotations

import enum
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand

from bridge import __version__
from bridge.errors import EXIT_OK, EXIT_ROWS_FAILED, EXIT_UNAVAILABLE, BridgeError

if TYPE_CHECKING:
    from bridge.exporting import ExportResult
    from bridge.mapping import MappingConfig
    from bridge.pipeline import JobResult, OnProgress, SyncResult
    from bridge.platform_rules import PlatformRules

# Start-up time: each command imports the use case it runs (pipeline, exporting,
# platform_rules, scaffold) and rich's progress bar inside its own body, so `--help`,
# `--version` and `init` never load pandas, pandera, openpyxl, requests or google-auth
# (tests/test_cli.py checks, in a subprocess; benchmarks/startup.py measures).


class _Command(TyperCommand):
    """Help without typer's placeholders: ``MAPPING...`` in the usage line (not
    ``{MAPPING}...``), and arguments listed by name (not ``MAPPING <list[Path]>``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [p.replace("{", "").replace("}", "") for p in super().collect_usage_pieces(ctx)]


app = typer.Typer(
    name="annobridge",
    help=(
        "Sync human labels from spreadsheets into LLM observability platforms: Phoenix, "
        "Arize, MLflow, and log10 (experimental)."
    ),
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


class InitSource(enum.StrEnum):
    excel = "excel"
    gsheet = "gsheet"


class InitTarget(enum.StrEnum):
    phoenix = "phoenix"
    mlflow = "mlflow"
    arize = "arize"
    log10 = "log10"


class InitAnnotate(enum.StrEnum):
    span = "span"
    trace = "trace"
    session = "session"
    document = "document"


class InitIdKind(enum.StrEnum):
    trace_id = "trace_id"
    client_request_id = "client_request_id"


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


LogFormatOpt = Annotated[
    LogFormat | None,
    typer.Option(
        "--log-format",
        help="Log progress to stderr: text, or json (one object per line, for log collectors).",
    ),
]


# The row statuses in the order the summary lists them (bridge.pipeline's UNCHANGED and
# PENDING are "unchanged" and "pending": a test keeps them equal).
_ORDER = ["synced", "unchanged", "invalid", "rejected", "failed", "skipped", "pending"]
_LABELS = {"pending": "to send"}
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


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            },
            ensure_ascii=False,
        )


def _configure_logging(log_format: LogFormat | None) -> None:
    """Warnings only by default; with --log-format, progress too (info) in that format."""
    logger = logging.getLogger("bridge")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == LogFormat.json:
        handler.setFormatter(_JsonLines())
    else:
        handler.setFormatter(logging.Formatter("annobridge: %(levelname)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if log_format else logging.WARNING)
    logger.propagate = False


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
                        "error": {
                            "type": type(exc).__name__,
                            "code": exc.code,
                            "message": str(exc),
                        },
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
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

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
    typer.echo(f"{verb} {result.source} -> {result.target.split('|')[0]}: {_n(result.rows, 'row')}")
    typer.echo("  " + (", ".join(parts) if parts else "nothing to do"))
    for issue in result.issues[:MAX_ISSUES_SHOWN]:
        typer.echo(f"  row {issue.sheet_row}: {issue.status}: {issue.message}")
    if len(result.issues) > MAX_ISSUES_SHOWN:
        typer.echo(f"  ... and {len(result.issues) - MAX_ISSUES_SHOWN} more (see the sheet)")
    if result.vanished_rows:
        shown = ", ".join(str(r) for r in result.vanished_rows[:20])
        typer.echo(
            f"  {_n(len(result.vanished_rows), 'row')} deleted from the sheet while syncing "
            f"(rows {shown}); their annotations were sent, their status could not be written"
        )
    if result.statuses_written:
        typer.echo(f"  status written to {_n(result.statuses_written, 'row')} of {result.source}")
    if result.queue_completed:
        typer.echo(f"  review queue: {_n(result.queue_completed, 'item')} marked complete")
    if result.queue_warning:
        typer.echo(f"  warning: {result.queue_warning}")


@app.command(cls=_Command)
def validate(
    mapping: MappingArg,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Also contact the sheet and the platform with the configured credentials "
            "and report what works: a wrong URL, key or sharing shows before the first sync. "
            "Still sends and writes nothing.",
        ),
    ] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Read the sheet and check every row against the rules; send nothing, write nothing.

    With --online, the sheet and the platform are contacted too (the platform's check:
    Phoenix projects, the MLflow experiment, the Arize key, the log10 task) and each part is
    reported; the exit code is the worst: 3 when one is unreachable or refuses the
    credentials (--json: error.code auth_refused).

    Example:

    \b
        annobridge validate mappings/phoenix-excel.yaml
        annobridge validate mappings/phoenix-excel.yaml --online
    """
    from bridge.mapping import load_mapping
    from bridge.pipeline import run

    _configure_logging(log_format)
    if online:
        from bridge.checking import validate_online

        with _errors(as_json):
            report = validate_online(load_mapping(mapping))
        if as_json:
            typer.echo(json.dumps(report.to_json(), ensure_ascii=False))
        elif not quiet:
            if report.result is not None:
                _print_summary(report.result, "validated")
            typer.echo("online:")
        for check in report.checks:
            if check.error is None and not quiet and not as_json:
                typer.echo(f"  {check.part} {check.where}: ok ({check.detail})")
            elif check.error is not None:
                line = f"{check.part} {check.where}: {type(check.error).__name__}: {check.error}"
                typer.echo(f"  {line}", err=as_json or quiet)
        raise typer.Exit(report.exit_code)
    with _errors(as_json):
        result = run(load_mapping(mapping), send=False)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
    elif not quiet:
        _print_summary(result, "validated")
    raise typer.Exit(result.exit_code)


@app.command(cls=_Command)
def sync(
    mappings: Annotated[
        list[Path],
        typer.Argument(
            help="Mapping files (YAML), or folders of them.",
            show_default=False,
            metavar="MAPPING",
        ),
    ],
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Send nothing, write nothing; print what would be sent."),
    ] = False,
    as_json: JsonOpt = False,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            metavar="N",
            help="Send at most N rows; the rest wait for the next run.",
        ),
    ] = None,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = None,
    rules_from_platform: Annotated[
        bool,
        typer.Option(
            "--rules-from-platform",
            help="Validate against the platform's own annotation configs (Phoenix), label "
            "schemas (MLflow) or task schema (log10) instead of the mapping's rules; a "
            "difference is shown as a diff on stderr.",
        ),
    ] = False,
) -> None:
    """Validate the sheet, send new and edited labels, and write each row's status back.

    Targets: phoenix, mlflow, arize (GraphQL by default, REST with api: rest), log10
    (experimental: log10 has had no release since January 2025; annobridge is tested only
    against its documented API).

    Several mappings (or a folder of them: every *.yaml in it is a job, so keep there only
    the mappings meant to run) run one after the other; one that fails does not stop the
    others, each error is printed once, the summary says which ran and which could not
    start, and the exit code is the worst of theirs. Ctrl-C (or SIGTERM) stops
    after the batch in flight, writes the statuses it has and exits 130.

    Exit codes: 0 all valid rows synced (or nothing to do); 1 some rows invalid, rejected or
    failed; 2 usage or mapping error, nothing sent; 3 sheet or platform unreachable, or
    another sync of the mapping running: nothing lost, safe to retry; 130 interrupted.

    Example:

    \b
        annobridge sync mappings/phoenix-excel.yaml --dry-run
        annobridge sync mappings/phoenix-excel.yaml --json
        annobridge sync jobs/ --quiet --log-format json
        annobridge sync mappings/phoenix-excel.yaml --rules-from-platform
    """
    from bridge.mapping import load_mapping
    from bridge.pipeline import run, run_all

    _configure_logging(log_format)
    prepare = _platform_rules(quiet) if rules_from_platform else None
    single = len(mappings) == 1 and not mappings[0].is_dir()
    show_bar = sys.stdout.isatty() and not as_json and not quiet and not dry_run
    with _stop_on_signals() as stop, _progress_bar(show_bar) as on_progress:
        if single:
            with _errors(as_json):
                loaded = load_mapping(mappings[0])
                result = run(
                    prepare(loaded) if prepare else loaded,
                    dry_run=dry_run,
                    limit=limit,
                    on_progress=on_progress,
                    stop=stop,
                )
            _report(result, as_json, quiet, dry_run)
            raise typer.Exit(result.exit_code)
        with _errors(as_json):
            jobs = run_all(
                mappings,
                stop=stop,
                prepare=prepare,
                dry_run=dry_run,
                limit=limit,
                on_progress=on_progress,
            )
    code = max((j.exit_code for j in jobs), default=EXIT_OK)
    for job in jobs:  # each error once, on stderr; --quiet too: errors are never quiet
        if job.error is not None:
            line = _job_error(job)
            if log_format:
                logging.getLogger("bridge.cli").error("%s", line)
            else:
                typer.echo(line, err=True)
    if as_json:
        typer.echo(
            json.dumps(
                {"mappings": [j.to_json() for j in jobs], "exit_code": code}, ensure_ascii=False
            )
        )
    elif not quiet:
        for job in jobs:
            if job.result is not None:
                _report(job.result, False, False, dry_run)
        _print_jobs(jobs)
    raise typer.Exit(code)


def _job_error(job: JobResult) -> str:
    """``mapping: Type: message``, without the mapping's path twice."""
    message = str(job.error)
    where = str(job.mapping)
    if message.startswith(where):
        message = message[len(where) :].lstrip(",: ")
    return f"{where}: {type(job.error).__name__}: {message}"


def _print_jobs(jobs: list[JobResult]) -> None:
    """Which mappings ran, which could not start (exit 2: nothing sent, fix the mapping or
    the sheet) and which stopped (exit 3: nothing lost, retry)."""
    worst = {c: sum(1 for j in jobs if j.exit_code == c) for c in {j.exit_code for j in jobs}}
    typer.echo(
        f"{len(jobs)} {_plural(len(jobs), 'mapping')}: "
        + ", ".join(f"{n} exited {c}" for c, n in sorted(worst.items()))
    )
    groups = {
        "ran": [j for j in jobs if j.error is None],
        "could not start (nothing sent; fix the mapping or the sheet)": [
            j for j in jobs if j.error is not None and j.exit_code != EXIT_UNAVAILABLE
        ],
        "stopped (nothing lost; retry later)": [
            j for j in jobs if j.error is not None and j.exit_code == EXIT_UNAVAILABLE
        ],
    }
    for label, group in groups.items():
        if group:
            names = ", ".join(
                f"{j.mapping}" + (f" ({type(j.error).__name__})" if j.error else "") for j in group
            )
            typer.echo(f"  {label}: {names}")


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _n(n: int, word: str) -> str:
    """``1 row``, ``2 rows``."""
    return f"{n} {_plural(n, word)}"


def _report(result: SyncResult, as_json: bool, quiet: bool, dry_run: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    if quiet:
        return
    if dry_run:
        for payload in result.planned:
            typer.echo(json.dumps(payload, ensure_ascii=False, sort_keys=True))
        typer.echo(f"dry run: would send {_n(len(result.planned), 'annotation')}; nothing sent")
    _print_summary(result, "dry run of" if dry_run else "synced")
    if result.interrupted:
        typer.echo("  interrupted: the rows left are sent by the next run")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """First Ctrl-C or SIGTERM: finish the batch in flight, then stop. Second: abort."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        typer.echo("stopping after the batch in flight (again to abort) ...", err=True)

    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals can only be handled on the main thread (e.g. embedded use)
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@app.command(cls=_Command)
def init(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Where to write annobridge.yaml (and labels.xlsx for excel).", metavar="DIR"
        ),
    ] = Path("."),
    source: Annotated[
        InitSource,
        typer.Option(
            "--source",
            help="Where SMEs label: excel (a template workbook) or gsheet (a Google Sheet; "
            "prints the steps to create a service account and share the sheet).",
        ),
    ] = InitSource.excel,
    target: Annotated[
        InitTarget,
        typer.Option(
            "--target",
            help="The platform the labels go to: phoenix, mlflow, arize or log10 "
            "(experimental). The mapping names the platform's own environment variables.",
        ),
    ] = InitTarget.phoenix,
    annotate: Annotated[
        InitAnnotate | None,
        typer.Option(
            "--annotate",
            help="Phoenix: what the rows label: span (default), trace, session, or document (one "
            "row per retrieved document of a retriever span).",
            show_default=False,
        ),
    ] = None,
    id_kind: Annotated[
        InitIdKind | None,
        typer.Option(
            "--id-kind",
            help="MLflow: what the id column holds: trace_id (default; tr-...) or "
            "client_request_id (the app's own request id).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write a starter mapping and a template workbook (header, status columns, dropdowns).

    Example:

    \b
        annobridge init my-labels
        annobridge sync my-labels/annobridge.yaml --dry-run
        annobridge init my-labels --target mlflow --id-kind client_request_id
        annobridge init my-labels --target phoenix --annotate trace --force
        annobridge init my-labels --source gsheet
    """
    from bridge.scaffold import init_gsheet_project, init_project

    kind = annotate.value if annotate else None
    id_as = id_kind.value if id_kind else None
    if source is InitSource.gsheet:
        with _errors(False):
            written, steps = init_gsheet_project(
                directory, target=target.value, annotate=kind, id_kind=id_as, force=force
            )
        for path in written:
            typer.echo(f"wrote {path}")
        typer.echo(steps)
        raise typer.Exit(EXIT_OK)
    with _errors(False):
        written = init_project(
            directory, target=target.value, annotate=kind, id_kind=id_as, force=force
        )
    for path in written:
        typer.echo(f"wrote {path}")
    fill = (
        f" (or fill it with 'annobridge export {written[0]}')"
        if target in (InitTarget.phoenix, InitTarget.mlflow)
        else ""
    )
    typer.echo(
        f"next: add ids and labels to {written[1]}{fill}, then run "
        f"'annobridge validate {written[0]} --online' and "
        f"'annobridge sync {written[0]} --dry-run'"
    )
    raise typer.Exit(EXIT_OK)


def _platform_rules(quiet: bool) -> Any:
    """For --rules-from-platform: the mapping with the platform's rules, the diff on stderr."""
    from bridge import platform_rules

    def prepare(mapping: MappingConfig) -> MappingConfig:
        found = platform_rules.compare(mapping)
        if not quiet:
            _print_rules_report(found, str(mapping.path or "the mapping"), err=True)
        return found.mapping

    return prepare


def _print_rules_report(found: PlatformRules, where: str, err: bool) -> None:
    for name in found.missing:
        typer.echo(
            f"{where}: the platform has no rules for '{name}'; the mapping's rules are used",
            err=err,
        )
    if not found.changes:
        if found.rules:
            names = ", ".join(f"'{n}'" for n in found.rules)
            typer.echo(f"{where}: the mapping's rules match the platform's ({names})", err=err)
        return
    typer.echo(
        f"{where}: the platform's rules differ from the mapping's "
        f"({'; '.join(r.origin for r in found.rules.values())}):",
        err=err,
    )
    if found.diff:
        typer.echo(found.diff.rstrip("\n"), err=err)
    else:
        for change in found.changes:
            typer.echo(f"  {change.describe()}", err=err)


@app.command("export", cls=_Command)
def export_command(
    mapping: MappingArg,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="TIME",
            help="Only records that started at or after this time: 2025-03-01, "
            "2025-03-01T12:00:00Z (no zone: UTC) or an age: 30m, 12h, 7d, 2w.",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="TIME",
            help="Only records that started before this time.",
            show_default=False,
        ),
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            metavar="FILTER",
            help="The platform's own filter, repeatable: Phoenix span attributes as key:value "
            "(metadata.tier:gold); MLflow search expressions (tags.env = 'prod'), joined "
            "with AND.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, metavar="N", help="Append at most N rows.")
    ] = None,
    all_spans: Annotated[
        bool,
        typer.Option("--all-spans", help="Phoenix: every span, not only root spans."),
    ] = False,
    full_text: Annotated[
        bool,
        typer.Option(
            "--full-text",
            help="MLflow: the full request and response (one more request per 100 traces) "
            "instead of MLflow's 1000-character previews.",
        ),
    ] = False,
    assign: Annotated[
        str | None,
        typer.Option(
            "--assign",
            metavar="NAMES",
            help="Annotators, comma separated (alice,bob,carol): each new record becomes one "
            "row per assigned annotator, the annotator column filled, balanced and the same "
            "for the same inputs. Records already in the sheet keep their rows.",
            show_default=False,
        ),
    ] = None,
    per_record: Annotated[
        int,
        typer.Option(
            "--per-record",
            min=1,
            metavar="N",
            help="With --assign: how many different annotators label each record (2 or more "
            "lets 'annobridge agreement' measure how much they agree).",
        ),
    ] = 1,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            metavar="NAME",
            help="MLflow: the review queue's pending traces instead of the experiment's; "
            "without --assign, each becomes one row per user assigned to the queue.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write nothing; print the rows that would be added.")
    ] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Append the records that still need this annotation to the sheet, as rows to label.

    Lists Phoenix root spans (or traces, with annotate: trace) or MLflow traces, oldest
    first, skips every id already in the sheet and every record that already holds the
    mapping's annotations (by the mapping's annotator kind, HUMAN by default), and appends
    the rest below the last used row: id, input, output, start_time and a link to the
    record in the platform's UI. Existing rows are never changed. Text longer than a cell
    holds (Excel 32,767, Google Sheets 50,000 characters) is cut with a visible marker and
    listed. The label column gets a dropdown from the rules and the score column a number
    range.

    Example:

    \b
        annobridge export mappings/phoenix-excel.yaml --since 7d --limit 200
        annobridge export mappings/phoenix-excel.yaml --filter metadata.tier:gold --dry-run
        annobridge export mappings/mlflow-request-ids.yaml --full-text --json
        annobridge export mappings/phoenix-excel.yaml --assign alice,bob,carol --per-record 2
        annobridge export mappings/mlflow-trace-ids.yaml --queue sheet-import-1
    """
    from bridge.exporting import export as run_export
    from bridge.exporting import parse_time
    from bridge.mapping import load_mapping

    _configure_logging(log_format)
    with _errors(as_json):
        result = run_export(
            load_mapping(mapping),
            since=parse_time(since, "--since") if since else None,
            until=parse_time(until, "--until") if until else None,
            filters=filters or (),
            limit=limit,
            roots_only=not all_spans,
            full_text=full_text,
            dry_run=dry_run,
            assign=[n.strip() for n in assign.split(",")] if assign is not None else (),
            per_record=per_record,
            queue=queue,
        )
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
    elif not quiet:
        _print_export(result)
    raise typer.Exit(result.exit_code)


def _print_export(result: ExportResult) -> None:
    platform = result.target.split("|")[0]
    if result.dry_run:
        for row in result.rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        typer.echo(f"dry run: would append {_n(result.appended, 'row')}; nothing written")
    elif result.appended:
        typer.echo(
            f"exported {platform} -> {result.source}: {_n(result.appended, 'new row')} "
            + (
                f"(row {result.first_row})"
                if result.first_row == result.last_row
                else f"(rows {result.first_row}-{result.last_row})"
            )
        )
    else:
        typer.echo(f"exported {platform} -> {result.source}: nothing new to label")
    if not (result.appended or result.in_sheet or result.annotated):
        project = result.where.get("project")
        if project and result.projects_with_records:
            typer.echo(
                f"  project '{project}' has no records to list; projects that have some: "
                f"{', '.join(result.projects_with_records)} (set target.project)"
            )
    skipped = []
    if result.in_sheet:
        skipped.append(f"{result.in_sheet} already in the sheet")
    if result.annotated:
        skipped.append(f"{result.annotated} already labelled on the platform")
    if skipped:
        typer.echo(f"  skipped: {', '.join(skipped)}")
    if result.added_columns:
        typer.echo(f"  header cells added: {', '.join(result.added_columns)}")
    for cut in result.truncated[:MAX_ISSUES_SHOWN]:
        typer.echo(
            f"  cut: {cut.record_id} {cut.column} has {cut.length:,} characters, more than a "
            "cell holds; the cell ends with a marker"
        )
    if len(result.truncated) > MAX_ISSUES_SHOWN:
        typer.echo(f"  ... and {len(result.truncated) - MAX_ISSUES_SHOWN} more cells cut")
    for rule in result.validations:
        typer.echo(f"  {'would check' if result.dry_run else 'checks'}: {rule}")
    if result.queue is not None:
        users = ", ".join(result.queue_users) or "none"
        typer.echo(f"  review queue: {result.queue} (assigned users: {users})")
    if result.assigned:
        shares = ", ".join(f"{who} {n}" for who, n in result.assigned.items())
        typer.echo(f"  assigned: {shares}")


@app.command("agreement", cls=_Command)
def agreement_command(
    mapping: MappingArg,
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            metavar="NAME",
            help="Also compare the LLM judge's annotations of this name on the platform "
            "(Phoenix: annotator_kind LLM; MLflow: source LLM_JUDGE) with the humans' "
            "majority label.",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            help="Write the figures and the confusion matrices as heatmaps to FILE.html or "
            "FILE.png.",
            show_default=False,
        ),
    ] = None,
    no_write: Annotated[
        bool,
        typer.Option(
            "--no-write",
            help="Leave the sheet alone (by default the Agreement and Disagreements tabs, "
            "which annobridge owns, are replaced).",
        ),
    ] = False,
    ordinal: Annotated[
        bool,
        typer.Option(
            "--ordinal",
            help="Treat scores as ordered categories (ordinal alpha) instead of numbers on an "
            "interval scale.",
        ),
    ] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = None,
) -> None:
    """How much the SMEs agree, per annotation name, and whether the LLM judge agrees with them.

    Reads the sheet with the same validation as sync (invalid rows are left out and
    counted), and for each annotation name gives Krippendorff's alpha (nominal for labels,
    interval for scores; it handles missing ratings), Cohen's kappa per pair of annotators
    (weighted for scores), Fleiss' kappa where every record has as many ratings, percent
    agreement, each with the records it rests on or why it is not defined, a confusion table
    per pair, and the disagreeing records, most disputed first. Writes the Agreement and
    Disagreements tabs into the workbook or Google Sheet (never the SMEs' tab). Sends
    nothing. Exit 0, or 1 when --judge finds no LLM annotation of that name.

    Example:

    \b
        annobridge agreement mappings/phoenix-excel.yaml
        annobridge agreement mappings/phoenix-excel.yaml --judge correctness --report round.html
        annobridge agreement mappings/mlflow-trace-ids.yaml --no-write --json
    """
    from bridge.mapping import load_mapping
    from bridge.rounds import measure

    _configure_logging(log_format)
    with _errors(as_json):
        result = measure(
            load_mapping(mapping),
            judge=judge,
            write_tabs=not no_write,
            report=report,
            score_level="ordinal" if ordinal else "interval",
        )
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
    elif not quiet:
        _print_round(result)
    raise typer.Exit(result.exit_code)


def _figure(value: float | None, reason: str) -> str:
    return f"{value:.3f}" if value is not None else f"not defined ({reason})"


def _print_round(result: Any) -> None:
    from bridge import agreement

    left = ", ".join(f"{n} {k}" for k, n in sorted(result.left_out.items()))
    typer.echo(
        f"agreement in {result.source}: {_n(result.rows, 'row')}"
        + (f" ({left} left out)" if left else "")
    )
    for r in result.results:
        if isinstance(r, agreement.JudgeAgreement):
            typer.echo(
                f"  judge vs humans on '{r.name}': {r.compared} records compared, "
                f"kappa {_figure(r.kappa.value, r.kappa.reason)}, accuracy "
                f"{_figure(r.accuracy.value, r.accuracy.reason)}; "
                f"{len(r.disagreements)} disagree, {len(r.ties)} ties, "
                f"{r.without_verdict} without a verdict"
            )
            continue
        typer.echo(
            f"  {r.name}: {_n(r.records, 'record')}, {r.records_with_overlap} labelled by two "
            f"or more of {', '.join(r.annotators) or 'nobody'}"
        )
        if r.labels is not None:
            a = r.labels.alpha
            typer.echo(f"    labels: Krippendorff's alpha {_figure(a.value, a.reason)}")
            p = r.labels.percent
            typer.echo(f"    labels: percent agreement {_figure(p.value, p.reason)}")
        if r.scores is not None:
            a = r.scores.alpha
            typer.echo(f"    scores: Krippendorff's alpha {_figure(a.value, a.reason)}")
        typer.echo(f"    disputed records: {len(r.disagreements)}")
    for message in result.messages:
        typer.echo(f"  {message}")
    if result.tabs_written:
        typer.echo(f"  written: tabs {', '.join(result.tabs_written)}")
    if result.report:
        typer.echo(f"  report: {result.report}")


rules_app = typer.Typer(
    name="rules",
    help="The annotation rules the platform keeps: pull them into the mapping.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(rules_app, name="rules")


@rules_app.command("pull", cls=_Command)
def rules_pull(
    mapping: MappingArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the diff; write nothing.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Write nothing; exit 1 when the mapping differs from the platform."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the platform's rules into the mapping: Phoenix annotation configs (CATEGORICAL
    labels, CONTINUOUS bounds, FREEFORM), MLflow label schemas, or the log10 task's JSON
    schema. Only labels, score_min and score_max change, in place (and synonyms go when the
    platform has no label list); the diff is printed.

    Example:

    \b
        annobridge rules pull mappings/phoenix-excel.yaml --dry-run
        annobridge rules pull mappings/phoenix-excel.yaml
        annobridge rules pull mappings/phoenix-excel.yaml --check
    """
    from bridge import platform_rules
    from bridge.mapping import load_mapping

    with _errors(as_json):
        found = platform_rules.pull(load_mapping(mapping), dry_run=dry_run or check)
    code = EXIT_ROWS_FAILED if check and found.changes else EXIT_OK
    if as_json:
        typer.echo(
            json.dumps(
                {
                    **found.to_json(),
                    "written": bool(found.changes) and not (dry_run or check),
                    "exit_code": code,
                },
                ensure_ascii=False,
            )
        )
        raise typer.Exit(code)
    _print_rules_report(found, str(mapping), err=False)
    if found.changes and not (dry_run or check):
        typer.echo(f"wrote the platform's rules into {mapping}")
    raise typer.Exit(code)


def main() -> Any:
    """Console-script entry point."""
    return app()
