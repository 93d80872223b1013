"""read -> normalise -> validate -> map -> plan (skip unchanged) -> send -> write back."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge import http, rules
from bridge.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_ROWS_FAILED, BridgeError, ConfigError
from bridge.mapping import MappingConfig, load_mapping
from bridge.records import Annotation, Outcome, Row, Status, StatusUpdate
from bridge.registry import open_source, open_target
from bridge.sources._table import as_stored, key_part
from bridge.sources.base import FileMedium, ReadSpec, Source
from bridge.state import (
    CONFIRMED,
    Journal,
    JournalEntry,
    MediumLock,
    RowRef,
    RunLock,
    row_ref,
    run_id,
    state_dir,
)
from bridge.targets.base import ChecksAnnotations, Retracts, ReviewQueues, Target, describe

OnProgress = Callable[[int, int], None]
"""Called with (annotations settled so far, annotations to send)."""

log = logging.getLogger("bridge")

# Rows sent per chunk: the unit of journaling, progress and Ctrl-C.
SEND_CHUNK_ROWS = 2000
UNCHANGED = "unchanged"
PENDING = "pending"
# a synced row cleared in the sheet: its annotations are taken back on the platform
RETRACTING = "retracting"
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
    # a sync_hash to write with a status other than synced (see ``reconcile``)
    new_hash: str | None = None
    # what this row sent before and no longer says: to take back on the platform
    retractions: list[Annotation] = field(default_factory=list)
    # annotations (by index) the platform holds as they are, with its id: not sent again
    kept: dict[int, str] = field(default_factory=dict)
    # annotation names of the mapping the row has nothing for (no label, score, explanation)
    unsent: list[str] = field(default_factory=list)

    @property
    def to_send(self) -> list[Annotation]:
        return [a for i, a in enumerate(self.annotations) if i not in self.kept]

    @property
    def annotations(self) -> list[Annotation]:
        return self.verdict.annotations


@dataclass
class SyncResult:
    """What a validate or sync run did: counts and row issues, and ``to_json`` for machines."""

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
    recovered: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    # where the annotations go: platform, url, project (``target`` is the opaque fingerprint)
    where: dict[str, Any] = field(default_factory=dict)
    # MLflow target.review_queue: items marked complete, and why that failed (statuses stand)
    queue_completed: int = 0
    queue_warning: str = ""

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        bad = (
            self.counts[Status.INVALID] + self.counts[Status.REJECTED] + self.counts[Status.FAILED]
        )
        return EXIT_ROWS_FAILED if bad else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        keys = [s.value for s in Status] + [UNCHANGED, PENDING]
        return {
            "mapping": self.mapping,
            "source": self.source,
            "target": http.redact(self.target),
            "platform": self.where.get("platform", self.target.split("|")[0]),
            "url": self.where.get("url"),
            "project": self.where.get("project"),
            "dry_run": self.dry_run,
            "rows": self.rows,
            "counts": {k: self.counts.get(k, 0) for k in keys},
            "annotations_sent": self.annotations_sent,
            "statuses_written": self.statuses_written,
            "vanished_rows": self.vanished_rows,
            "recovered": self.recovered,
            "interrupted": self.interrupted,
            "issues": [dataclasses.asdict(i) for i in self.issues],
            "queue_completed": self.queue_completed,
            "queue_warning": self.queue_warning,
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


def annotation_hash(fingerprint: str, annotation: Annotation) -> str:
    """Fingerprint of one annotation of a row, and where it goes."""
    body = json.dumps([fingerprint, annotation.content()], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:8]


def sync_hash(fingerprint: str, annotations: Sequence[Annotation]) -> str:
    """What the sheet's sync_hash holds: the row's fingerprint, then each annotation's
    (``3f2a...:1b2c3d4e,5f6a7b8c``), so that an edit of one annotation of a row resends
    that one only. A sheet written before holds the row's part alone: still read as is."""
    parts = ",".join(annotation_hash(fingerprint, a) for a in annotations)
    return f"{row_hash(fingerprint, annotations)}:{parts}"


def same_content(stored: str, digest: str) -> bool:
    """Whether a sheet's sync_hash says the row holds what ``digest`` describes."""
    return bool(stored) and stored.split(":")[0] == digest.split(":")[0]


def _unchanged(
    previous_hash: str, remote_ids: str, fingerprint: str, annotations: Sequence[Annotation]
) -> dict[int, str]:
    """The annotations of an edited row that were sent before as they are now (by their own
    fingerprint in sync_hash), with the platform's id from sync_id: they are not sent again."""
    if ":" not in previous_hash:
        return {}
    before = previous_hash.split(":", 1)[1].split(",")
    ids = remote_ids.split(" ")
    if len(before) != len(ids):
        return {}  # the sheet's two cells do not match: send everything
    where = {digest: i for i, digest in enumerate(before)}
    kept: dict[int, str] = {}
    for i, a in enumerate(annotations):
        j = where.get(annotation_hash(fingerprint, a))
        if j is not None and ids[j]:
            kept[i] = ids[j]
    return kept


def _extra_columns(mapping: MappingConfig) -> list[str]:
    """Columns the target reads besides label, score and explanation (may be none)."""
    return mapping.target.extra_columns()


def read_spec(mapping: MappingConfig) -> ReadSpec:
    columns: list[str] = []
    for spec in mapping.annotations:
        for c in spec.used_columns():
            if c not in columns:
                columns.append(c)
    for c in _extra_columns(mapping):
        if c not in columns:
            columns.append(c)
    return ReadSpec(
        columns=columns,
        key_columns=mapping.key_columns(),
        status=mapping.status.columns(),
        number_columns=[a.score_column for a in mapping.annotations if a.score_column],
    )


def plan(
    mapping: MappingConfig,
    source: Source,
    kind: str,
    fingerprint: str,
    problems: Callable[[Annotation], list[str]] | None = None,
) -> list[PlannedRow]:
    """Read the sheet and decide, row by row, what to send and what to report.

    :param problems: the target's own checks of one annotation (what the platform documents
        it would refuse); a row with any is invalid and never sent.
    """
    spec = read_spec(mapping)
    rows = source.read(spec)
    verdicts = rules.evaluate(
        rows,
        mapping.annotations,
        kind,
        source.label,
        type(mapping.target).ID_PATTERNS,
        mapping.target.identity_columns(),
    )
    extra_columns = _extra_columns(mapping)
    cols = spec.status
    planned: list[PlannedRow] = []
    for row, verdict in zip(rows, verdicts, strict=True):
        if extra_columns and verdict.annotations:
            extra = {c: row.values.get(c) for c in extra_columns}
            verdict.annotations[:] = [
                dataclasses.replace(a, extra={**a.extra, **extra}) for a in verdict.annotations
            ]
        if problems is not None and verdict.annotations:
            found = [p for a in verdict.annotations for p in problems(a)]
            if found:
                verdict.problems.extend(dict.fromkeys(found))
                verdict.annotations.clear()
        if verdict.problems:
            planned.append(PlannedRow(row, verdict, Status.INVALID, "; ".join(verdict.problems)))
            continue
        previous_status = row.status.get(cols.status, "")
        previous_hash = row.status.get(cols.hash, "")
        cleared = _cleared(mapping, row, verdict, kind) if previous_hash else []
        if verdict.skipped:
            planned.append(_cleared_row(mapping, row, verdict, cleared, str(previous_status)))
            continue
        digest = sync_hash(fingerprint, verdict.annotations)
        if previous_status == Status.SYNCED and same_content(str(previous_hash), digest):
            planned.append(PlannedRow(row, verdict, UNCHANGED, row_hash=digest))
            continue
        if same_content(str(previous_hash), digest):
            # The row is back to what was confirmed before (an edit the platform refused,
            # then undone): the platform holds exactly this, so say so without sending.
            remote_ids = str(row.status.get(cols.remote_id, ""))
            planned.append(
                PlannedRow(row, verdict, Status.SYNCED, row_hash=digest, remote_ids=remote_ids)
            )
            continue
        if previous_hash:
            verdict.annotations[:] = [
                dataclasses.replace(a, is_update=True) for a in verdict.annotations
            ]
        pending = PlannedRow(row, verdict, PENDING, row_hash=digest)
        if previous_hash:
            pending.kept = _unchanged(
                str(previous_hash),
                str(row.status.get(cols.remote_id, "")),
                fingerprint,
                verdict.annotations,
            )
        if mapping.on_clear == "retract":
            pending.retractions = cleared
        said = {a.name for a in verdict.annotations} | {a.name for a in pending.retractions}
        pending.unsent = [
            n for n in dict.fromkeys(a.name for a in mapping.annotations) if n not in said
        ]
        planned.append(pending)
    return planned


def _cleared(
    mapping: MappingConfig, row: Row, verdict: rules.RowVerdict, kind: str
) -> list[Annotation]:
    """The annotations a row that was synced may have sent and no longer says: each entry of
    the mapping with no label, score or explanation in the row now, about the record and by
    the annotator its cells still name. The target finds out whether the platform holds it."""
    said = {a.name for a in verdict.annotations}
    identity = mapping.target.identity_columns()
    out: list[Annotation] = []
    for spec in mapping.annotations:
        if spec.name in said:
            continue
        record = key_part(row.values.get(spec.id_column))
        annotator = (
            key_part(row.values.get(spec.annotator_column)) if spec.annotator_column else ""
        ) or spec.annotator
        if not record or (spec.annotator_column and not annotator):
            continue  # no telling which annotation it was: nothing is taken back
        out.append(
            Annotation(
                row_index=0,
                name=spec.name,
                kind=kind,
                target_id=record,
                label=None,
                score=None,
                explanation=None,
                annotator=annotator or None,
                annotator_kind=spec.annotator_kind,
                identifier=rules.identifier_for(annotator or None),
                metadata={"row": row.sheet_row},
                extra={c: row.values.get(c) for c in identity},
            )
        )
    return out


def _cleared_row(
    mapping: MappingConfig,
    row: Row,
    verdict: rules.RowVerdict,
    cleared: list[Annotation],
    previous_status: str,
) -> PlannedRow:
    """A row with no label, score or explanation (see ``mapping.on_clear``)."""
    if previous_status == Status.RETRACTED:
        return PlannedRow(row, verdict, UNCHANGED)  # taken back already: nothing to say again
    if not cleared:
        return PlannedRow(row, verdict, Status.SKIPPED, SKIPPED_MESSAGE)
    if mapping.on_clear == "keep":
        held = ", ".join(f"{a.name} by {a.annotator or 'annobridge'}" for a in cleared)
        return PlannedRow(
            row,
            verdict,
            Status.SKIPPED,
            f"cleared in the sheet; the platform still holds the earlier {held} (the mapping "
            "says on_clear: keep)",
        )
    return PlannedRow(row, verdict, RETRACTING, retractions=cleared)


def _combine(annotations: Sequence[Annotation], outcomes: Sequence[Outcome]) -> tuple[str, str]:
    named = len({a.name for a in annotations}) > 1
    for wanted in (Status.REJECTED, Status.FAILED):
        # one reason per message, with the names it applies to unless it applies to all
        # (an unknown trace is said once, not once per annotation)
        by_message: dict[str, list[str]] = {}
        for a, o in zip(annotations, outcomes, strict=True):
            if o.status == wanted:
                by_message.setdefault(o.message, []).append(a.name)
        all_names = list(dict.fromkeys(a.name for a in annotations))
        reasons = []
        for message, names in by_message.items():
            unique = list(dict.fromkeys(names))
            prefix = f"{', '.join(unique)}: " if named and unique != all_names else ""
            reasons.append(prefix + message)
        if reasons:
            suffix = "; will retry on the next run" if wanted == Status.FAILED else ""
            return wanted, "; ".join(reasons) + suffix
    return Status.SYNCED, ""


def _update(row: Row, values: dict[str, str]) -> StatusUpdate:
    return StatusUpdate(
        sheet_row=row.sheet_row, key=row.key, occurrence=row.occurrence, values=values
    )


def _needs_write(row: Row, values: dict[str, str], status_col: str, message_col: str) -> bool:
    """False when the row's status cells already say this (as the sheet stores it)."""
    old_status = str(row.status.get(status_col, ""))
    old_message = str(row.status.get(message_col, ""))
    return old_status != as_stored(values[status_col]) or old_message != as_stored(
        values[message_col]
    )


def run(
    mapping: MappingConfig,
    *,
    dry_run: bool = False,
    send: bool = True,
    limit: int | None = None,
    on_progress: OnProgress | None = None,
    source: Source | None = None,
    target: Target | None = None,
    stop: threading.Event | None = None,
) -> SyncResult:
    """Validate and (unless ``send`` is False) sync one mapping.

    A sync holds the mapping's run lock, journals what it sends (see ``bridge.state``) and
    writes the statuses back only after the platform confirmed.

    :param mapping: a loaded mapping (see ``load_mapping``).
    :param dry_run: send nothing and write nothing; ``planned`` holds what would be sent.
    :param send: False for ``validate``: read and check only.
    :param limit: send at most this many rows; the others wait for the next run.
    :param on_progress: progress callback, (settled, total).
    :param source: a Source to use instead of the mapping's (tests, embedding).
    :param target: a Target to use instead of the mapping's.
    :param stop: when set (Ctrl-C), the run stops after the chunk in flight, writes the
        statuses it has and returns with ``interrupted`` set.
    :raises BridgeError: for anything that stops the whole run (exit 2 or 3).
    """
    started = time.monotonic()
    own_source = source is None
    source = source or open_source(mapping)
    own_target = target is None
    try:
        target = target or open_target(mapping)
    except BaseException:
        if own_source:
            source.close()
        raise
    try:
        result = SyncResult(
            mapping=str(mapping.path or ""),
            source=source.label,
            target=target.fingerprint(),
            dry_run=dry_run or not send,
            where=describe(target),
        )
        if dry_run or not send:
            checks = _checks(target, strict=dry_run)
            planned = plan(mapping, source, target.kind, target.fingerprint(), checks)
            result.source = source.label
            to_send = _to_send(planned, limit)
            if dry_run:
                result.planned = [target.payload(a) for p in to_send for a in p.to_send]
                result.planned += [
                    {"retract": _retraction(a)} for p in to_send for a in p.retractions
                ]
            return _finish(result, planned, started)
        directory = state_dir(mapping.state_dir)
        name = run_id(mapping.path, source.label)
        with RunLock(directory, name, what=str(mapping.path or source.label)):
            journal = Journal(directory, name)
            try:
                planned = _sync(
                    mapping, source, target, journal, directory, result, limit, on_progress, stop
                )
            finally:
                journal.close()
        return _finish(result, planned, started)
    finally:
        if own_target:
            target.close()
        if own_source:
            source.close()


def _sync(
    mapping: MappingConfig,
    source: Source,
    target: Target,
    journal: Journal,
    directory: Path,
    result: SyncResult,
    limit: int | None,
    on_progress: OnProgress | None,
    stop: threading.Event | None,
) -> list[PlannedRow]:
    planned = plan(mapping, source, target.kind, target.fingerprint(), _checks(target))
    result.source = source.label
    log.info("read %d rows from %s", len(planned), source.label)
    earlier = journal.earlier()
    resend = reconcile(planned, earlier, result)
    if result.recovered:
        log.info("%d rows were confirmed by an earlier run; writing their status", result.recovered)
    if resend:
        log.warning(
            "%d rows were sent by an earlier run that did not finish and differ from it now "
            "(undone or edited since); sending them again",
            len(resend),
        )
    to_send = _to_send(planned, limit)
    _guard_retractions(mapping, to_send)
    if to_send or any(p.status != UNCHANGED and p.status != PENDING for p in planned):
        source.check_writable()
    total = sum(len(p.to_send) + len(p.retractions) for p in to_send)
    if to_send:
        target.check()
        settled = 0

        def advance(n: int) -> None:
            nonlocal settled
            settled += n
            if on_progress:
                on_progress(settled, total)

        if on_progress:
            on_progress(0, total)
        for chunk in _chunks(to_send, SEND_CHUNK_ROWS):
            if stop is not None and stop.is_set():
                result.interrupted = True
                log.warning("interrupted: %d rows left for the next run", _pending(planned))
                break
            journal.sending((row_ref(p.row.key, p.row.occurrence), _journal_hash(p)) for p in chunk)
            annotations = [a for p in chunk for a in p.to_send]
            outcomes = target.send(annotations, progress=advance) if annotations else []
            result.annotations_sent += len(annotations)
            cursor = 0
            for p in chunk:
                n = len(p.to_send)
                if p.annotations:
                    sent = iter(outcomes[cursor : cursor + n])
                    mine = [
                        Outcome.ok(p.kept[i]) if i in p.kept else next(sent)
                        for i in range(len(p.annotations))
                    ]
                    p.status, p.message = _combine(p.annotations, mine)
                    p.remote_ids = " ".join(o.remote_id for o in mine)
                    if p.status == Status.SYNCED and p.unsent:
                        p.message = (
                            f"{', '.join(p.unsent)} not sent: no label, score or explanation "
                            "yet (the rest was)"
                        )
                cursor += n
            _retract(target, [p for p in chunk if p.retractions], advance)
            journal.confirmed(
                (row_ref(p.row.key, p.row.occurrence), _journal_hash(p), p.remote_ids)
                for p in chunk
                if p.status in (Status.SYNCED, Status.RETRACTED)
            )
            log.info("sent %d annotations (%d of %d)", len(annotations), settled, total)
    updates = _status_updates(planned, mapping)
    if updates:
        with _write_lock(directory, source):
            report = source.write_status(read_spec(mapping), updates)
        result.statuses_written = report.written
        result.vanished_rows = sorted(u.sheet_row for u in report.vanished)
        log.info("wrote the status of %d rows to %s", report.written, source.label)
    _complete_queue(target, planned, result)
    # Rows the journal says to send again that this run did not send keep their entries.
    journal.clear(keep=[ref for ref, p in resend.items() if p.status == PENDING])
    return planned


def _complete_queue(target: Target, planned: Sequence[PlannedRow], result: SyncResult) -> None:
    """Mark the review-queue items of the rows synced in this run complete, by the row's
    annotator; a record with a row that failed or was rejected in this run stays pending.
    A failure is a warning (in the log and the result): the statuses are written already."""
    if not isinstance(target, ReviewQueues):
        return
    name = target.completion_queue()
    if not name:
        return
    held = {a.target_id for p in planned if p.status in (Status.FAILED, Status.REJECTED)
            for a in p.annotations}  # fmt: skip
    done = [
        (a.target_id, a.annotator or "annobridge")
        for p in planned
        if p.status == Status.SYNCED
        for a in p.annotations[:1]
        if a.target_id not in held
    ]
    try:
        result.queue_completed = target.complete_queue_items(name, done)
    except BridgeError as exc:
        result.queue_warning = f"review queue '{name}' not updated: {exc}"
        log.warning("%s", result.queue_warning)
        return
    if result.queue_completed:
        log.info("marked %d items of review queue '%s' complete", result.queue_completed, name)


def _to_send(planned: Sequence[PlannedRow], limit: int | None) -> list[PlannedRow]:
    """The rows this run sends or takes back; rows past ``limit`` stay pending (no status is
    written for them this run)."""
    return [p for p in planned if p.status in (PENDING, RETRACTING)][:limit]


def _journal_hash(p: PlannedRow) -> str:
    """What the journal records as sent: the row's hash, or none for a row taken back."""
    return "" if p.status in (RETRACTING, Status.RETRACTED) else p.row_hash


def _retraction(a: Annotation) -> dict[str, Any]:
    """One retraction as --dry-run shows it."""
    body: dict[str, Any] = {
        "name": a.name,
        "kind": a.kind,
        "id": a.target_id,
        "identifier": a.identifier,
        "annotator": a.annotator,
    }
    body.update({k: v for k, v in a.extra.items() if v not in (None, "")})
    return body


def _guard_retractions(mapping: MappingConfig, rows: Sequence[PlannedRow]) -> None:
    """A run that would take back more rows than ``max_retractions`` sends nothing."""
    taking_back = [p for p in rows if p.retractions]
    if len(taking_back) > mapping.max_retractions:
        first = ", ".join(str(p.row.sheet_row) for p in taking_back[:10])
        more = " ..." if len(taking_back) > 10 else ""
        raise ConfigError(
            f"{mapping.path or 'the mapping'}: this run would take back the annotations of "
            f"{len(taking_back)} rows whose labels were cleared in the sheet (rows {first}"
            f"{more}), more than max_retractions ({mapping.max_retractions}); nothing was "
            "sent. If the clearing was meant, raise max_retractions in the mapping (or run "
            "--dry-run to see each one); if not, undo it in the sheet"
        )


def _retract(target: Target, rows: Sequence[PlannedRow], advance: Callable[[int], None]) -> None:
    """Take back what each row no longer says; the row's status says what became of it."""
    wanted = [a for p in rows for a in p.retractions]
    if not wanted:
        return
    if isinstance(target, Retracts):
        outcomes = target.retract(wanted)
    else:
        refusal = (
            f"{target.name} offers no way to remove an annotation, so the platform still "
            "holds the earlier one; remove it there by hand, or set on_clear: keep in the "
            "mapping"
        )
        outcomes = [Outcome.rejected(refusal) for _ in wanted]
    advance(len(wanted))
    cursor = 0
    for p in rows:
        n = len(p.retractions)
        mine = outcomes[cursor : cursor + n]
        cursor += n
        pairs = list(zip(p.retractions, mine, strict=True))
        bad = [(a, o) for a, o in pairs if o.status != Status.SYNCED]
        removed = [a.name for a, o in pairs if o.status == Status.SYNCED and o.remote_id]
        if bad:
            status, message = _combine([a for a, _ in bad], [o for _, o in bad])
            names = ", ".join(dict.fromkeys(a.name for a, _ in bad))
            if p.status in (RETRACTING, Status.SYNCED) or status == Status.REJECTED:
                p.status = status
            p.message = "; ".join(
                m
                for m in (p.message, f"{names} cleared in the sheet, not taken back: {message}")
                if m
            )
            continue
        if p.status == RETRACTING:
            p.status = Status.RETRACTED
            p.message = (
                f"cleared in the sheet: {', '.join(removed)} taken back on the platform"
                if removed
                else "cleared in the sheet; the platform holds nothing of this row any more"
            )
            p.remote_ids, p.row_hash = "", ""
        elif p.status == Status.SYNCED:
            unsent = p.unsent + [a.name for a, o in pairs if not o.remote_id]
            said = [f"{', '.join(removed)} cleared in the sheet and taken back on the platform"]
            if unsent:
                said.append(
                    f"{', '.join(unsent)} not sent: no label, score or explanation yet (the "
                    "rest was)"
                )
            p.message = "; ".join(said[0 if removed else 1 :])


def _write_lock(directory: Path, source: Source) -> contextlib.AbstractContextManager[object]:
    """The lock on a file source while its statuses are written (see ``MediumLock``); a
    Google Sheet is written cell by cell, by key, and needs none."""
    if isinstance(source, FileMedium):
        return MediumLock(directory, source.path)
    return contextlib.nullcontext()


def reconcile(
    planned: Sequence[PlannedRow], earlier: dict[RowRef, JournalEntry], result: SyncResult
) -> dict[RowRef, PlannedRow]:
    """Use what an earlier run that did not finish sent (its journal) to plan this one.

    With J the hash the journal holds for a row (``sending``: it may have landed;
    ``confirmed``: it did), and C the hash of the row's content now:

    - C == J and confirmed: the platform holds the row; its status is written, nothing sent.
    - C != J: the platform may hold J, whatever the sheet's ``sync_status`` / ``sync_hash``
      say (an SME may have undone the edit, status cells included): the row is sent again,
      as an update, even if the sheet says ``synced`` with its content's hash.
    - a row with nothing to send now (invalid, skipped) gets ``sync_hash`` J (confirmed) or
      none (sending: unknown), so that the sheet never claims the platform holds what it
      held before; once valid again, the row is sent.

    :returns: the rows to send again because of the journal, by journal reference.
    """
    resend: dict[RowRef, PlannedRow] = {}
    if not earlier:
        return resend
    for p in planned:
        ref = row_ref(p.row.key, p.row.occurrence)
        entry = earlier.get(ref)
        if entry is None:
            continue
        if same_content(entry.hash, p.row_hash):
            if p.status == PENDING and entry.state == CONFIRMED:
                # Confirmed by the platform in a run that died before writing the sheet.
                p.status, p.remote_ids = Status.SYNCED, entry.remote_ids
                result.recovered += 1
            continue  # else sent again (pending), or the sheet already says what was sent
        if p.annotations:
            # the sheet may say the platform holds C (or nothing yet); it may hold J
            p.status, p.message, p.remote_ids = PENDING, "", ""
            p.kept = {}  # the platform may hold J for any of them: send all
            p.verdict.annotations[:] = [
                dataclasses.replace(a, is_update=True) for a in p.annotations
            ]
            resend[ref] = p
        else:
            p.new_hash = entry.hash if entry.state == CONFIRMED else ""
    return resend


def _checks(target: Target, strict: bool = True) -> Callable[[Annotation], list[str]] | None:
    """The target's optional ``problems(annotation)`` check.

    When not ``strict`` (validate), a check that needs the platform and cannot reach it
    (no credentials, offline) is skipped with a warning instead of failing the validation.
    """
    if not isinstance(target, ChecksAnnotations):
        return None
    check = target.problems
    if strict:
        return check
    skipped: list[BridgeError] = []

    def lenient(a: Annotation) -> list[str]:
        if skipped:
            return []
        try:
            found: list[str] = check(a)
            return found
        except BridgeError as exc:
            skipped.append(exc)
            log.warning("the platform's own checks were skipped: %s", exc)
            return []

    return lenient


def _chunks(items: Sequence[PlannedRow], size: int) -> list[Sequence[PlannedRow]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _pending(planned: Sequence[PlannedRow]) -> int:
    return sum(1 for p in planned if p.status == PENDING)


def _status_updates(planned: Sequence[PlannedRow], mapping: MappingConfig) -> list[StatusUpdate]:
    cols = mapping.status.columns()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    updates: list[StatusUpdate] = []
    for p in planned:
        if p.status in (UNCHANGED, PENDING, RETRACTING):
            continue
        values = {cols.status: str(p.status), cols.synced_at: now, cols.message: p.message}
        if p.status in (Status.SYNCED, Status.RETRACTED):
            values[cols.remote_id] = p.remote_ids
            values[cols.hash] = p.row_hash
        elif p.new_hash is not None and p.new_hash != str(p.row.status.get(cols.hash, "")):
            values[cols.hash] = p.new_hash
        elif not _needs_write(p.row, values, cols.status, cols.message):
            continue
        updates.append(_update(p.row, values))
    return updates


def _finish(result: SyncResult, planned: Sequence[PlannedRow], started: float) -> SyncResult:
    for p in planned:
        result.counts[str(p.status)] += 1
        if p.status in (Status.INVALID, Status.REJECTED, Status.FAILED):
            result.issues.append(RowReport(p.row.sheet_row, str(p.status), p.message))
    result.rows = len(planned)
    result.seconds = time.monotonic() - started
    return result


@dataclass
class JobResult:
    """One mapping of a multi-mapping run: its result, or the error that stopped it."""

    mapping: Path
    result: SyncResult | None = None
    error: BridgeError | None = None

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        return self.result.exit_code if self.result is not None else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        if self.result is not None:
            return self.result.to_json()
        return {
            "mapping": str(self.mapping),
            "error": {
                "type": type(self.error).__name__,
                "code": self.error.code if self.error is not None else None,
                "message": str(self.error),
            },
            "exit_code": self.exit_code,
        }


def mapping_files(paths: Sequence[Path]) -> list[Path]:
    """The mapping files named, with each folder replaced by the *.yaml / *.yml in it."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            if not found:
                raise ConfigError(f"{path}: the folder has no mapping files (*.yaml, *.yml)")
            files.extend(found)
        else:
            files.append(path)
    return files


def run_all(
    paths: Sequence[Path],
    *,
    stop: threading.Event | None = None,
    prepare: Callable[[MappingConfig], MappingConfig] | None = None,
    **kwargs: Any,
) -> list[JobResult]:
    """Sync several mappings one after the other; one that fails does not stop the others.

    :param paths: mapping files or folders of them.
    :param stop: when set, the mapping in flight stops after its chunk and the rest are skipped.
    :param prepare: called with each loaded mapping; its answer is synced instead (e.g. the
        mapping with the platform's rules, see ``bridge.platform_rules``).
    :param kwargs: passed to ``run`` for each mapping.
    """
    results: list[JobResult] = []
    for path in mapping_files(paths):
        if stop is not None and stop.is_set():
            break
        job = JobResult(path)
        try:
            mapping = load_mapping(path)
            if prepare is not None:
                mapping = prepare(mapping)
            job.result = run(mapping, stop=stop, **kwargs)
        except BridgeError as exc:
            log.debug("%s: %s", path, exc)  # the caller reports job.error (the CLI: once)
            job.error = exc
        results.append(job)
    return results
