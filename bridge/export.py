"""Export: the records that still need labels, from the platform into the sheet.

The other half of the bridge. A target that can list its records (``export_records``) yields
them page by page, each with the names of this mapping's annotations it already holds; the
sheet (a source with ``existing_ids``, ``append_rows`` and ``add_validations``) says which ids
it has. The plan here decides what to append:

- an id already in the sheet, on any row, is skipped (and never appended twice);
- a record that already holds every annotation of the mapping (by the mapping's annotator
  kind: an LLM judge's ``correctness`` does not hide a span from the humans) is skipped;
- text longer than the medium's cell limit (Excel 32,767, Google Sheets 50,000 characters)
  is cut with a visible marker, and the result lists every cell cut;
- nothing that is written is a formula (``safe_text``).

New rows go below the last used row; no existing cell is touched. The label column gets a
dropdown built from the rules and the score column a number range, so SMEs can only type
what will validate.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, cast, runtime_checkable

from bridge.errors import ConfigError
from bridge.mapping import CsvSource as CsvConfig
from bridge.mapping import ExcelSource as ExcelConfig
from bridge.mapping import GSheetSource as GSheetConfig
from bridge.mapping import Mapping as MappingModel
from bridge.records import FORMULA_TRIGGERS, safe_text

EXCEL_CELL_LIMIT = 32_767
SHEETS_CELL_LIMIT = 50_000
TRUNCATION_MARKER = (
    " … [cut by annobridge: {total:,} characters in all; the full text is on the platform]"
)


@dataclass(frozen=True)
class ExportColumns:
    """Header names of the columns export fills besides the id column."""

    input: str = "input"
    output: str = "output"
    start_time: str = "start_time"
    link: str = "link"

    def names(self) -> list[str]:
        return [self.input, self.output, self.start_time, self.link]


@dataclass(frozen=True)
class ExportQuery:
    """Which records to list.

    :param names: the mapping's annotation names; records holding all of them are skipped.
    :param annotator_kinds: only annotations of these kinds count as "already labelled".
    :param filters: in the platform's own syntax: Phoenix ``key:value`` attribute filters,
        MLflow search filter expressions (joined with AND).
    :param roots_only: Phoenix spans: root spans only (one per trace).
    :param full_text: MLflow: fetch the full request and response instead of the previews.
    """

    names: tuple[str, ...]
    annotator_kinds: tuple[str, ...] = ("HUMAN",)
    since: datetime | None = None
    until: datetime | None = None
    filters: tuple[str, ...] = ()
    roots_only: bool = True
    full_text: bool = False
    page_size: int = 500


@dataclass(frozen=True)
class ExportRecord:
    """One record of the platform, as a row to label."""

    record_id: str
    input: str | None = None
    output: str | None = None
    start_time: datetime | None = None
    url: str | None = None
    # the query's annotation names this record already holds
    annotated: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Validation:
    """A rule for the cells of one column: a list of allowed values, or a number range."""

    column: str
    kind: Literal["list", "number"]
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    title: str = ""

    def describe(self) -> str:
        if self.kind == "list":
            return f"{self.column}: one of {', '.join(self.options)}"
        low = "-inf" if self.minimum is None else _num(self.minimum)
        high = "inf" if self.maximum is None else _num(self.maximum)
        return f"{self.column}: a number from {low} to {high}"


@dataclass
class AppendReport:
    """What an append did: the sheet rows written and the header cells added."""

    first_row: int = 0
    last_row: int = 0
    added_columns: list[str] = field(default_factory=list)


@runtime_checkable
class ExportSink(Protocol):
    """A sheet that export can append to (a source with the optional export methods)."""

    @property
    def label(self) -> str: ...

    cell_limit: int

    def existing_ids(self, id_column: str) -> set[str]: ...

    def append_rows(
        self, header: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> AppendReport: ...

    def add_validations(self, validations: Sequence[Validation]) -> list[str]: ...


@dataclass(frozen=True)
class Truncated:
    """A cell cut to the medium's limit."""

    record_id: str
    column: str
    length: int


@dataclass
class ExportPlan:
    rows: list[dict[str, Any]] = field(default_factory=list)
    in_sheet: int = 0
    annotated: int = 0
    truncated: list[Truncated] = field(default_factory=list)


@dataclass
class ExportResult:
    """What an export did (or, with ``dry_run``, would do)."""

    mapping: str
    source: str
    target: str
    dry_run: bool
    appended: int = 0
    first_row: int = 0
    last_row: int = 0
    in_sheet: int = 0
    annotated: int = 0
    truncated: list[Truncated] = field(default_factory=list)
    validations: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mapping": self.mapping,
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "appended": self.appended,
            "first_row": self.first_row,
            "last_row": self.last_row,
            "skipped": {"in_sheet": self.in_sheet, "annotated": self.annotated},
            "truncated": [
                {"id": t.record_id, "column": t.column, "length": t.length} for t in self.truncated
            ],
            "validations": self.validations,
            "added_columns": self.added_columns,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
        }
        if self.dry_run:
            out["rows"] = self.rows
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _utf16_units(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters (UTF-16 units, as spreadsheets count them), ending
    with a marker that says it was cut and how long it was; (text, True) when cut."""
    if len(text) <= limit // 2 or _utf16_units(text) <= limit:
        return text, False
    marker = TRUNCATION_MARKER.format(total=len(text))
    budget = limit - _utf16_units(marker)
    head = text.encode("utf-16-le")[: budget * 2].decode("utf-16-le", errors="ignore")
    return head + marker, True


_AGO = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, option: str, now: datetime | None = None) -> datetime:
    """``2025-03-01``, ``2025-03-01T12:00:00Z`` (no zone: UTC), or an age: ``30m``, ``12h``,
    ``7d``, ``2w`` (that long ago).

    :raises ConfigError: anything else, with the forms it takes.
    """
    value = text.strip()
    ago = _AGO.match(value.lower())
    if ago:
        delta = timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option} '{text}' is not a time; give a date (2025-03-01), a time "
            "(2025-03-01T12:00:00Z; without a zone it is UTC) or an age (30m, 12h, 7d, 2w)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _time_text(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_export(
    records: Iterable[ExportRecord],
    in_sheet: set[str],
    *,
    id_column: str,
    names: Sequence[str],
    limit: int | None,
    cell_limit: int,
    columns: ExportColumns = ExportColumns(),
) -> ExportPlan:
    """Decide which records become rows, in the platform's order, and cut long text.

    Stops reading ``records`` (a lazy, paged iterator) once ``limit`` rows are planned.
    """
    plan = ExportPlan()
    wanted = set(names)
    seen: set[str] = set()
    if limit is not None and limit <= 0:
        return plan
    for record in records:
        rid = record.record_id.strip()
        if not rid or rid in seen:
            continue
        seen.add(rid)
        if rid in in_sheet:
            plan.in_sheet += 1
            continue
        if wanted and wanted <= record.annotated:
            plan.annotated += 1
            continue
        row: dict[str, Any] = {id_column: safe_text(rid)}
        for column, text in ((columns.input, record.input), (columns.output, record.output)):
            value = safe_text(text or "")
            value, cut = truncate(value, cell_limit)
            if cut:
                plan.truncated.append(Truncated(rid, column, len(text or "")))
            row[column] = value
        row[columns.start_time] = _time_text(record.start_time)
        row[columns.link] = safe_text(record.url or "")
        plan.rows.append(row)
        if limit is not None and len(plan.rows) >= limit:
            break
    return plan


def validations_for(mapping: MappingModel) -> list[Validation]:
    """Dropdowns for label columns with allowed labels, ranges for score columns with bounds.

    A column used by two annotation entries gets the first entry's rule.
    """
    out: dict[str, Validation] = {}
    for a in mapping.annotations:
        r = a.rules
        if a.label_column and r.labels and a.label_column not in out:
            out[a.label_column] = Validation(
                a.label_column, "list", tuple(r.labels), title=f"{a.name}: label"
            )
        has_bounds = r.score_min is not None or r.score_max is not None
        if a.score_column and has_bounds and a.score_column not in out:
            out[a.score_column] = Validation(
                a.score_column, "number", minimum=r.score_min, maximum=r.score_max,
                title=f"{a.name}: score",
            )  # fmt: skip
    return list(out.values())


def list_problem(options: Sequence[str], max_length: int | None = None) -> str | None:
    """Why these labels cannot be a dropdown (None when they can)."""
    if any(str(o).startswith(FORMULA_TRIGGERS) for o in options):
        return "a label starts with = + - or @, which a spreadsheet reads as a formula"
    if max_length is not None:
        if any("," in o or '"' in o for o in options):
            return "a label contains a comma or a double quote"
        if len(",".join(options)) > max_length:
            return f"the labels are longer than Excel's {max_length} characters for a dropdown"
    return None


def header_for(mapping: MappingModel, columns: ExportColumns = ExportColumns()) -> list[str]:
    """The header of a sheet export starts from scratch: id, context, the labelled columns,
    start time and link, then the status columns."""
    id_column = export_id_column(mapping)
    names: list[str] = [id_column, columns.input, columns.output]
    for a in mapping.annotations:
        names.extend(c for c in a.used_columns() if c != id_column)
    names += [columns.start_time, columns.link, *mapping.status.columns().names()]
    return list(dict.fromkeys(names))


def export_id_column(mapping: MappingModel) -> str:
    ids = list(dict.fromkeys(a.id_column for a in mapping.annotations))
    if len(ids) > 1:
        raise ConfigError(
            f"the annotation entries use different id columns ({', '.join(ids)}); export "
            "fills one id column: use one id_column for all entries"
        )
    return ids[0]


def open_sink(mapping: MappingModel) -> ExportSink:
    """The mapping's sheet, with the methods export needs."""
    cfg = mapping.source
    if isinstance(cfg, ExcelConfig):
        from bridge.sources.excel_export import ExcelExportSink

        return ExcelExportSink(cfg.path, cfg.worksheet, cfg.header_row)
    if isinstance(cfg, GSheetConfig):
        from bridge.sources import open_source

        return cast(ExportSink, open_source(mapping))  # the sheet synced is the one exported to
    if isinstance(cfg, CsvConfig):
        raise ConfigError(
            "export writes into an Excel workbook or a Google Sheet (with dropdowns); a CSV "
            "file has none: use source type excel or gsheet"
        )
    raise ConfigError(f"source type '{cfg.type}' cannot take exported rows")  # pragma: no cover


def _exporter(target: object) -> Any:
    method = getattr(target, "export_records", None)
    if not callable(method):
        name = getattr(target, "name", type(target).__name__)
        raise ConfigError(
            f"annobridge cannot export records from {name}: it exports from Phoenix and MLflow"
        )
    return method


def export(
    mapping: MappingModel,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Sequence[str] = (),
    limit: int | None = None,
    roots_only: bool = True,
    full_text: bool = False,
    dry_run: bool = False,
    columns: ExportColumns = ExportColumns(),
    sink: ExportSink | None = None,
    target: Any = None,
) -> ExportResult:
    """Append the records that still need labels to the mapping's sheet, with dropdowns.

    :param since: only records that started at or after this time (naive: UTC).
    :param until: only records that started before this time (naive: UTC).
    :param filters: the platform's own filters (Phoenix ``key:value``; MLflow expressions).
    :param limit: append at most this many rows.
    :param roots_only: Phoenix: root spans only (the default); False for every span.
    :param full_text: MLflow: full request and response instead of the 1000-character previews.
    :param dry_run: write nothing; ``rows`` holds what would be appended.
    :param sink: a sheet to use instead of the mapping's (tests, embedding).
    :param target: a target to use instead of the mapping's.
    :raises BridgeError: for anything that stops the export (exit 2 or 3).
    """
    from bridge.targets import open_target

    started = time.monotonic()
    since = since if since is None or since.tzinfo else since.replace(tzinfo=UTC)
    until = until if until is None or until.tzinfo else until.replace(tzinfo=UTC)
    if since is not None and until is not None and until <= since:
        raise ConfigError("--until must be after --since")
    id_column = export_id_column(mapping)
    own_sink = sink is None
    sink = sink or open_sink(mapping)
    own_target = target is None
    target = target or open_target(mapping)
    try:
        records = _exporter(target)
        query = ExportQuery(
            names=tuple(dict.fromkeys(a.name for a in mapping.annotations)),
            annotator_kinds=tuple(dict.fromkeys(a.annotator_kind for a in mapping.annotations)),
            since=since,
            until=until,
            filters=tuple(filters),
            roots_only=roots_only,
            full_text=full_text,
            page_size=min(max(limit or 500, 50), 500),
        )
        in_sheet = sink.existing_ids(id_column)
        found: Iterator[ExportRecord] = records(query)
        plan = plan_export(
            found,
            in_sheet,
            id_column=id_column,
            names=query.names,
            limit=limit,
            cell_limit=sink.cell_limit,
            columns=columns,
        )
        result = ExportResult(
            mapping=str(mapping.path or ""),
            source=sink.label,
            target=target.fingerprint(),
            dry_run=dry_run,
            in_sheet=plan.in_sheet,
            annotated=plan.annotated,
            truncated=plan.truncated,
        )
        checks = validations_for(mapping)
        if dry_run:
            result.rows = plan.rows
            result.appended = len(plan.rows)
            result.validations = [v.describe() for v in checks]
        else:
            if plan.rows:
                report = sink.append_rows(header_for(mapping, columns), plan.rows)
                result.appended = len(plan.rows)
                result.first_row, result.last_row = report.first_row, report.last_row
                result.added_columns = report.added_columns
            result.validations = sink.add_validations(checks)
        result.source = sink.label
        result.seconds = time.monotonic() - started
        return result
    finally:
        if own_target:
            target.close()
        close = getattr(sink, "close", None)
        if own_sink and callable(close):
            close()
