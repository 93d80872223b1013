"""read -> normalise -> validate -> map -> plan (skip unchanged) -> send -> write back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge import rules
from bridge.errors import EXIT_OK, EXIT_ROWS_FAILED
from bridge.mapping import Mapping
from bridge.records import Annotation, Outcome, Row, Status, StatusUpdate
from bridge.sources import ReadSpec, Source, open_source
from bridge.targets import Target, open_target

OnProgress = Callable[[int, int], None]
"""Called with (annotations settled so far, annotations to send)."""

UNCHANGED = "unchanged"
PENDING = "pending"
SKIPPED_MESSAGE = "no label, score or explanation yet"


@dataclass(frozen=True)
class RowReport:
    """The outcome of one sheet row."""

    sheet_row: int
    status: str
    message: str = ""


@dataclass
class PlannedRow:
    row: Row
    verdict: rules.RowVerdict
    status: str
    message: str = ""
    row_hash: str = ""
    remote_ids: str = ""

    @property
    def annotations(self) -> list[Annotation]:
        return self.verdict.annotations


@dataclass
class SyncResult:
    """What a validate or sync run did, for people (``lines``) and machines (``to_json``)."""

    mapping: str
    source: str
    target: str
    dry_run: bool
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    annotations_sent: int = 0
    issues: list[RowReport] = field(default_factory=list)
    vanished_rows: list[int] = field(default_factory=list)
    statuses_written: int = 0
    planned: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        bad = (
            self.counts[Status.INVALID] + self.counts[Status.REJECTED] + self.counts[Status.FAILED]
        )
        return EXIT_ROWS_FAILED if bad else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        keys = [s.value for s in Status] + [UNCHANGED, PENDING]
        return {
            "mapping": self.mapping,
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "counts": {k: self.counts.get(k, 0) for k in keys},
            "annotations_sent": self.annotations_sent,
            "statuses_written": self.statuses_written,
            "vanished_rows": self.vanished_rows,
            "issues": [dataclasses.asdict(i) for i in self.issues],
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            **({"planned": self.planned} if self.dry_run else {}),
        }


def row_hash(fingerprint: str, annotations: Sequence[Annotation]) -> str:
    """Fingerprint of what a row sends, and where: equal hashes mean nothing to resend."""
    body = json.dumps(
        [fingerprint, [a.content() for a in annotations]], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _read_spec(mapping: Mapping) -> ReadSpec:
    columns: list[str] = []
    for spec in mapping.annotations:
        for c in spec.used_columns():
            if c not in columns:
                columns.append(c)
    return ReadSpec(
        columns=columns, key_columns=mapping.key_columns(), status=mapping.status.columns()
    )


def plan(mapping: Mapping, source: Source, kind: str, fingerprint: str) -> list[PlannedRow]:
    """Read the sheet and decide, row by row, what to send and what to report."""
    spec = _read_spec(mapping)
    rows = source.read(spec)
    verdicts = rules.evaluate(rows, mapping.annotations, kind, source.label)
    cols = spec.status
    planned: list[PlannedRow] = []
    for row, verdict in zip(rows, verdicts, strict=True):
        if verdict.problems:
            planned.append(PlannedRow(row, verdict, Status.INVALID, "; ".join(verdict.problems)))
            continue
        if verdict.skipped:
            planned.append(PlannedRow(row, verdict, Status.SKIPPED, SKIPPED_MESSAGE))
            continue
        digest = row_hash(fingerprint, verdict.annotations)
        previous_status = row.status.get(cols.status, "")
        previous_hash = row.status.get(cols.hash, "")
        if previous_status == Status.SYNCED and previous_hash == digest:
            planned.append(PlannedRow(row, verdict, UNCHANGED, row_hash=digest))
            continue
        if previous_hash:
            verdict.annotations[:] = [
                dataclasses.replace(a, is_update=True) for a in verdict.annotations
            ]
        planned.append(PlannedRow(row, verdict, PENDING, row_hash=digest))
    return planned


def _combine(annotations: Sequence[Annotation], outcomes: Sequence[Outcome]) -> tuple[str, str]:
    named = len({a.name for a in annotations}) > 1
    for wanted in (Status.REJECTED, Status.FAILED):
        reasons = [
            (f"{a.name}: " if named else "") + o.message
            for a, o in zip(annotations, outcomes, strict=True)
            if o.status == wanted
        ]
        if reasons:
            suffix = "; will retry on the next run" if wanted == Status.FAILED else ""
            return wanted, "; ".join(reasons) + suffix
    return Status.SYNCED, ""


def _update(row: Row, values: dict[str, str]) -> StatusUpdate:
    return StatusUpdate(
        sheet_row=row.sheet_row, key=row.key, occurrence=row.occurrence, values=values
    )


def _needs_write(row: Row, values: dict[str, str], status_col: str, message_col: str) -> bool:
    old_status = str(row.status.get(status_col, ""))
    old_message = str(row.status.get(message_col, ""))
    return old_status != values[status_col] or old_message != values[message_col]


def run(
    mapping: Mapping,
    *,
    dry_run: bool = False,
    send: bool = True,
    limit: int | None = None,
    on_progress: OnProgress | None = None,
    source: Source | None = None,
    target: Target | None = None,
) -> SyncResult:
    """Validate and (unless ``send`` is False) sync one mapping.

    :param mapping: a loaded mapping (see ``load_mapping``).
    :param dry_run: send nothing and write nothing; ``planned`` holds what would be sent.
    :param send: False for ``validate``: read and check only.
    :param limit: send at most this many rows; the others wait for the next run.
    :param on_progress: progress callback, (settled, total).
    :param source: a Source to use instead of the mapping's (tests, embedding).
    :param target: a Target to use instead of the mapping's.
    :raises BridgeError: for anything that stops the whole run (exit 2 or 3).
    """
    started = time.monotonic()
    source = source or open_source(mapping)
    own_target = target is None
    target = target or open_target(mapping)
    try:
        result = SyncResult(
            mapping=str(mapping.path or ""),
            source=source.label,
            target=target.fingerprint(),
            dry_run=dry_run or not send,
        )
        planned = plan(mapping, source, target.kind, target.fingerprint())
        result.source = source.label
        result.rows = len(planned)
        # Rows past the limit stay pending: no status is written for them this run.
        to_send = [p for p in planned if p.status == PENDING][:limit]
        annotations = [a for p in to_send for a in p.annotations]
        if dry_run or not send:
            result.planned = [target.payload(a) for a in annotations] if dry_run else []
            return _finish(result, planned, mapping, started)
        if to_send or any(p.status in (Status.INVALID, Status.SKIPPED) for p in planned):
            source.check_writable()
        if annotations:
            target.check()
            total = len(annotations)
            settled = 0

            def advance(n: int) -> None:
                nonlocal settled
                settled += n
                if on_progress:
                    on_progress(settled, total)

            if on_progress:
                on_progress(0, total)
            outcomes = target.send(annotations, progress=advance)
            result.annotations_sent = total
            cursor = 0
            for p in to_send:
                n = len(p.annotations)
                p.status, p.message = _combine(p.annotations, outcomes[cursor : cursor + n])
                p.remote_ids = " ".join(o.remote_id for o in outcomes[cursor : cursor + n])
                cursor += n
        updates = _status_updates(planned, mapping)
        if updates:
            report = source.write_status(_read_spec(mapping), updates)
            result.statuses_written = report.written
            result.vanished_rows = sorted(u.sheet_row for u in report.vanished)
        return _finish(result, planned, mapping, started)
    finally:
        if own_target:
            target.close()


def _status_updates(planned: Sequence[PlannedRow], mapping: Mapping) -> list[StatusUpdate]:
    cols = mapping.status.columns()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    updates: list[StatusUpdate] = []
    for p in planned:
        if p.status in (UNCHANGED, PENDING):
            continue
        values = {cols.status: str(p.status), cols.synced_at: now, cols.message: p.message}
        if p.status == Status.SYNCED:
            values[cols.remote_id] = p.remote_ids
            values[cols.hash] = p.row_hash
        elif not _needs_write(p.row, values, cols.status, cols.message):
            continue
        updates.append(_update(p.row, values))
    return updates


def _finish(
    result: SyncResult, planned: Sequence[PlannedRow], mapping: Mapping, started: float
) -> SyncResult:
    for p in planned:
        result.counts[str(p.status)] += 1
        if p.status in (Status.INVALID, Status.REJECTED, Status.FAILED):
            result.issues.append(RowReport(p.row.sheet_row, str(p.status), p.message))
    result.seconds = time.monotonic() - started
    return result
