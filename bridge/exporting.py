"""Export: the records that still need labels, from the platform into the sheet.

The other half of the bridge. A target that can list its records (``export_records``) yields
them page by page, each with the names of this mapping's annotations it already holds; the
sheet (a source with ``existing_ids``, ``append_rows`` and ``add_validations``) says which ids
it has. The plan here decides what to append:

- an id already in the sheet, on any row, is skipped (and never appended twice);
- a record that already holds every annotation of the mapping (by the mapping's annotator
  kind: an LLM judge's ``correctness`` does not hide a span from the humans) is skipped;
- a retriever span exported for document annotations (Phoenix ``annotate: document``) gives
  one row per document it returned: its position (in the mapping's position column), id,
  content and the retriever's score, with the query as the input;
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge import agreement, http
from bridge.errors import ConfigError
from bridge.mapping import MappingConfig
from bridge.records import ExportDocument, ExportQuery, ExportRecord, Validation, safe_text
from bridge.registry import open_sink, open_target
from bridge.sources.base import ExportSink
from bridge.targets.base import ExportsRecords, KnowsProjects, ReviewQueues, Target, describe

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
    # a retrieved document's (annotate: document)
    document: str = "document"
    document_id: str = "document_id"
    retriever_score: str = "retriever_score"

    def names(self) -> list[str]:
        return [self.input, self.output, self.start_time, self.link]


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
    # with --assign: rows appended per annotator
    assigned: dict[str, int] = field(default_factory=dict)
    # where the records come from: platform, url, project (``target`` is the fingerprint)
    where: dict[str, Any] = field(default_factory=dict)
    # no record found at all: the other projects that have some (Phoenix), for the hint
    projects_with_records: list[str] = field(default_factory=list)
    # with --queue: the review queue read, and its assigned users
    queue: str | None = None
    queue_users: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mapping": self.mapping,
            "source": self.source,
            "target": http.redact(self.target),
            "platform": self.where.get("platform", self.target.split("|")[0]),
            "url": self.where.get("url"),
            "project": self.where.get("project"),
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
            "projects_with_records": self.projects_with_records,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
        }
        if self.assigned:
            out["assigned"] = self.assigned
        if self.queue is not None:
            out["queue"] = {"name": self.queue, "users": self.queue_users}
        if self.dry_run:
            out["rows"] = self.rows
        return out


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
    position_column: str | None = None,
) -> ExportPlan:
    """Decide which records become rows, in the platform's order, and cut long text.

    Stops reading ``records`` (a lazy, paged iterator) once ``limit`` rows are planned.

    :param position_column: where a retrieved document's position goes (the target's
        identity column); a record with a document is one row per (record, position).
    """
    plan = ExportPlan()
    wanted = set(names)
    seen: set[tuple[str, int | None]] = set()
    if limit is not None and limit <= 0:
        return plan
    for record in records:
        rid = record.record_id.strip()
        part = (rid, record.document.position if record.document else None)
        if not rid or part in seen:
            continue
        seen.add(part)
        if rid in in_sheet:
            plan.in_sheet += 1
            continue
        if wanted and wanted <= record.annotated:
            plan.annotated += 1
            continue
        row: dict[str, Any] = {id_column: safe_text(rid)}
        texts = [(columns.input, record.input), (columns.output, record.output)]
        if record.document is not None:
            texts = [(columns.input, record.input), (columns.document, record.document.content)]
            _document_cells(row, record.document, columns, position_column)
        for column, text in texts:
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


def _document_cells(
    row: dict[str, Any], doc: ExportDocument, columns: ExportColumns, position_column: str | None
) -> None:
    """A retrieved document's position, id and score, in the row."""
    if position_column:
        row[position_column] = str(doc.position)
    row[columns.document_id] = safe_text(doc.document_id or "")
    row[columns.retriever_score] = "" if doc.score is None else str(doc.score)


def position_column(mapping: MappingConfig) -> str | None:
    """The column of a retrieved document's position (Phoenix ``annotate: document``)."""
    found = mapping.target.identity_columns()
    return found[0] if found else None


def validations_for(mapping: MappingConfig) -> list[Validation]:
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


def header_for(mapping: MappingConfig, columns: ExportColumns = ExportColumns()) -> list[str]:
    """The header of a sheet export starts from scratch: id, context, the labelled columns,
    start time and link, then the status columns."""
    id_column = export_id_column(mapping)
    names: list[str] = [id_column, columns.input, columns.output]
    position = position_column(mapping)
    if position:
        names = [
            id_column,
            position,
            columns.input,
            columns.document,
            columns.document_id,
            columns.retriever_score,
        ]
    for a in mapping.annotations:
        names.extend(c for c in a.used_columns() if c != id_column)
    names += [columns.start_time, columns.link, *mapping.status.columns().names()]
    return list(dict.fromkeys(names))


def export_id_column(mapping: MappingConfig) -> str:
    ids = list(dict.fromkeys(a.id_column for a in mapping.annotations))
    if len(ids) > 1:
        raise ConfigError(
            f"the annotation entries use different id columns ({', '.join(ids)}); export "
            "fills one id column: use one id_column for all entries"
        )
    return ids[0]


def _assignment_column(
    mapping: MappingConfig, assign: Sequence[str], per_record: int
) -> str | None:
    """The annotator column that --assign fills (None without --assign)."""
    if not assign:
        return None
    columns = list(dict.fromkeys(a.annotator_column for a in mapping.annotations))
    if columns == [None]:
        raise ConfigError(
            f"{mapping.path or 'the mapping'}: --assign fills the annotator column, and the "
            "mapping has none: add annotator_column (e.g. annotator) to its annotation entries"
        )
    if len(columns) > 1:
        raise ConfigError(
            f"--assign fills one annotator column, and the annotation entries use "
            f"{', '.join(str(c) for c in columns)}: use one annotator_column for all entries"
        )
    # the names and per_record are checked by agreement.assign, before anything is read
    agreement.assign(["probe"], assign, per_record)
    return columns[0]


def _assign_rows(
    plan: ExportPlan,
    id_column: str,
    annotator_column: str,
    annotators: Sequence[str],
    per_record: int,
) -> dict[str, int]:
    """Each planned record becomes one row per assigned annotator, in the record's order."""
    ids = list(dict.fromkeys(str(row[id_column]) for row in plan.rows))
    chosen: dict[str, list[str]] = {}
    for record, who in agreement.assign(ids, annotators, per_record):
        chosen.setdefault(record, []).append(who)
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = dict.fromkeys(annotators, 0)
    for row in plan.rows:
        for who in sorted(chosen.get(str(row[id_column]), [])):
            rows.append({**row, annotator_column: safe_text(who)})
            counts[who] += 1
    plan.rows = rows
    return counts


def _exporter(target: Target) -> ExportsRecords:
    if not isinstance(target, ExportsRecords):
        raise ConfigError(
            f"annobridge cannot export records from {target.name}: it exports from Phoenix "
            "and MLflow"
        )
    return target


def _queue_owner(target: Target) -> ReviewQueues:
    if not isinstance(target, ReviewQueues):
        raise ConfigError(
            f"--queue reads an MLflow review queue, and this mapping's target is "
            f"{target.name}: review queues are MLflow's; export without --queue"
        )
    return target


def export(
    mapping: MappingConfig,
    *,
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Sequence[str] = (),
    limit: int | None = None,
    assign: Sequence[str] = (),
    per_record: int = 1,
    roots_only: bool = True,
    full_text: bool = False,
    dry_run: bool = False,
    columns: ExportColumns = ExportColumns(),
    sink: ExportSink | None = None,
    target: Target | None = None,
) -> ExportResult:
    """Append the records that still need labels to the mapping's sheet, with dropdowns.

    :param since: only records that started at or after this time (naive: UTC).
    :param until: only records that started before this time (naive: UTC).
    :param filters: the platform's own filters (Phoenix ``key:value``; MLflow expressions).
    :param limit: append at most this many records.
    :param assign: annotator names: each new record becomes ``per_record`` rows, one per
        annotator, the annotator column filled (balanced, deterministic; records already in
        the sheet keep their rows and annotators).
    :param per_record: how many different annotators label each new record (with ``assign``).
    :param roots_only: Phoenix: root spans only (the default); False for every span.
    :param full_text: MLflow: full request and response instead of the 1000-character previews.
    :param dry_run: write nothing; ``rows`` holds what would be appended.
    :param queue: MLflow: the review queue whose PENDING traces to list instead of the
        experiment's; without ``assign``, its assigned users are the assignment (each record
        one row per user).
    :param sink: a sheet to use instead of the mapping's (tests, embedding).
    :param target: a target to use instead of the mapping's.
    :raises BridgeError: for anything that stops the export (exit 2 or 3).
    """
    started = time.monotonic()
    since = since if since is None or since.tzinfo else since.replace(tzinfo=UTC)
    until = until if until is None or until.tzinfo else until.replace(tzinfo=UTC)
    if since is not None and until is not None and until <= since:
        raise ConfigError("--until must be after --since")
    id_column = export_id_column(mapping)
    annotator_column = _assignment_column(mapping, assign, per_record)
    if queue is not None and not queue.strip():
        raise ConfigError("--queue is empty; give the review queue's name")
    own_sink = sink is None
    sink = sink or open_sink(mapping)
    own_target = target is None
    target = target or open_target(mapping)
    try:
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
        users: list[str] = []
        found: Iterable[ExportRecord]
        if queue is not None:
            found, users = _queue_owner(target).queue_records(queue.strip(), query)
            has_column = any(a.annotator_column for a in mapping.annotations)
            if not assign and users and has_column:  # the queue's users are the assignment
                annotator_column = _assignment_column(mapping, users, len(users))
                assign, per_record = users, len(users)
        else:
            found = _exporter(target).export_records(query)
        in_sheet = sink.existing_ids(id_column)
        plan = plan_export(
            found,
            in_sheet,
            id_column=id_column,
            names=query.names,
            limit=limit,
            cell_limit=sink.cell_limit,
            columns=columns,
            position_column=position_column(mapping),
        )
        if annotator_column is not None:
            result_assigned = _assign_rows(plan, id_column, annotator_column, assign, per_record)
        else:
            result_assigned = {}
        result = ExportResult(
            assigned=result_assigned,
            mapping=str(mapping.path or ""),
            source=sink.label,
            target=target.fingerprint(),
            where=describe(target),
            dry_run=dry_run,
            in_sheet=plan.in_sheet,
            annotated=plan.annotated,
            truncated=plan.truncated,
            queue=queue.strip() if queue is not None else None,
            queue_users=users,
        )
        if not plan.rows and not plan.in_sheet and not plan.annotated:
            if isinstance(target, KnowsProjects):  # nothing listed at all: where are they?
                result.projects_with_records = target.projects_with_records()
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
        if own_sink:
            sink.close()
