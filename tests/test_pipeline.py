"""The pipeline with an in-memory target: planning, unchanged rows, limits, status write-back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bridge.mapping import load_mapping
from bridge.pipeline import row_hash, run, sync_hash
from bridge.records import Annotation, Outcome

SPANS = [f"{i:016x}" for i in range(1, 7)]


class RecordingTarget:
    """A platform held in memory: upserts by (id, name, identifier), answers by rule."""

    name = "memory"
    kind = "span"

    def __init__(self, reject: set[str] | None = None, fail: set[str] | None = None) -> None:
        self.reject = reject or set()
        self.fail = fail or set()
        self.store: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.sent: list[list[Annotation]] = []
        self.checked = 0

    def fingerprint(self) -> str:
        return "memory|test"

    def payload(self, a: Annotation) -> dict[str, Any]:
        return {"span_id": a.target_id, "label": a.label}

    def check(self) -> None:
        self.checked += 1

    def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
        self.sent.append(list(annotations))
        out = []
        for a in annotations:
            if a.target_id in self.reject:
                out.append(Outcome.rejected(f"no span '{a.target_id}'"))
            elif a.target_id in self.fail:
                out.append(Outcome.failed("server error"))
            else:
                key = (a.target_id, a.name, a.identifier)
                self.store[key] = {"label": a.label, "score": a.score, "update": a.is_update}
                out.append(Outcome.ok(f"id-{a.target_id}-{a.name}"))
        if progress:
            progress(len(annotations))
        return out

    def close(self) -> None:
        pass


def workbook(path: Path, rows: list[list[Any]]) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Labels"
    ws.append(["span_id", "label", "score", "helpful", "annotator"])
    for r in rows:
        ws.append(r)
    book.save(path)
    return path


@pytest.fixture
def mapping_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        """
source: {type: excel, path: labels.xlsx}
target: {type: phoenix, url: "http://127.0.0.1:9"}
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    score_column: score
    annotator_column: annotator
    rules: {labels: [correct, incorrect], score_min: 0, score_max: 1}
  - name: helpfulness
    id_column: span_id
    label_column: helpful
    annotator_column: annotator
    rules: {labels: ["yes", "no"], require: label}
"""
    )
    return path


def cells(path: Path) -> list[dict[str, Any]]:
    rows = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]


def test_one_row_yields_one_annotation_per_entry_and_one_status(
    tmp_path: Path, mapping_path: Path
) -> None:
    book = workbook(tmp_path / "labels.xlsx", [[SPANS[0], "correct", 1, "yes", "ann"]])
    target = RecordingTarget()
    result = run(load_mapping(mapping_path), target=target)
    assert result.exit_code == 0
    assert [a.name for a in target.sent[0]] == ["correctness", "helpfulness"]
    row = cells(book)[0]
    assert row["sync_status"] == "synced"
    assert row["sync_id"] == f"id-{SPANS[0]}-correctness id-{SPANS[0]}-helpfulness"
    assert row["sync_hash"] == sync_hash("memory|test", target.sent[0])
    assert row["sync_hash"].split(":")[0] == row_hash("memory|test", target.sent[0])


def test_rerun_sends_nothing_and_writes_nothing(tmp_path: Path, mapping_path: Path) -> None:
    book = workbook(tmp_path / "labels.xlsx", [[s, "correct", 1, "no", "a"] for s in SPANS[:3]])
    mapping = load_mapping(mapping_path)
    run(mapping, target=RecordingTarget())
    stamp = book.stat().st_mtime_ns
    again = RecordingTarget()
    result = run(mapping, target=again)
    assert again.sent == [] and again.checked == 0
    assert result.counts["unchanged"] == 3
    assert result.statuses_written == 0
    assert book.stat().st_mtime_ns == stamp  # not even re-saved


def test_an_edited_row_is_resent_as_an_update(tmp_path: Path, mapping_path: Path) -> None:
    book = workbook(tmp_path / "labels.xlsx", [[s, "correct", 1, "no", "a"] for s in SPANS[:2]])
    mapping = load_mapping(mapping_path)
    run(mapping, target=RecordingTarget())
    wb = openpyxl.load_workbook(book)
    wb.active["B3"] = "incorrect"
    wb.save(book)
    target = RecordingTarget()
    result = run(mapping, target=target)
    assert result.counts["synced"] == 1 and result.counts["unchanged"] == 1
    # only the annotation that changed is sent; the row's other one is as it was
    assert [(a.target_id, a.label, a.is_update) for a in target.sent[0]] == [
        (SPANS[1], "incorrect", True),
    ]
    row = cells(book)[1]
    assert row["sync_status"] == "synced"
    assert row["sync_id"] == f"id-{SPANS[1]}-correctness id-{SPANS[1]}-helpfulness"


def test_a_sheet_with_the_old_sync_hash_is_not_resent_and_an_edit_sends_the_row(
    tmp_path: Path, mapping_path: Path
) -> None:
    """Sheets synced before sync_hash held each annotation's fingerprint: nothing is resent
    on upgrade; an edit then sends the whole row once (which annotation changed is unknown)."""
    book = workbook(tmp_path / "labels.xlsx", [[SPANS[0], "correct", 1, "no", "a"]])
    mapping = load_mapping(mapping_path)
    run(mapping, target=RecordingTarget())
    wb = openpyxl.load_workbook(book)
    ws = wb.active
    header = [c.value for c in ws[1]]
    cell = ws.cell(2, header.index("sync_hash") + 1)
    cell.value = str(cell.value).split(":")[0]  # as an older annobridge wrote it
    wb.save(book)
    target = RecordingTarget()
    assert run(mapping, target=target).counts["unchanged"] == 1 and target.sent == []
    wb = openpyxl.load_workbook(book)
    wb.active["B2"] = "incorrect"
    wb.save(book)
    run(mapping, target=target)
    assert [a.name for a in target.sent[0]] == ["correctness", "helpfulness"]
    assert ":" in cells(book)[0]["sync_hash"]


def test_a_row_with_an_entry_left_empty_says_which_was_not_sent(
    tmp_path: Path, mapping_path: Path
) -> None:
    book = workbook(tmp_path / "labels.xlsx", [[SPANS[2], "correct", 1, None, "a"]])
    target = RecordingTarget()
    result = run(load_mapping(mapping_path), target=target)
    assert result.exit_code == 0 and [a.name for a in target.sent[0]] == ["correctness"]
    (row,) = cells(book)
    assert row["sync_status"] == "synced"
    assert row["sync_message"] == (
        "helpfulness not sent: no label, score or explanation yet (the rest was)"
    )


def test_rejected_and_failed_rows_say_why_and_are_retried(
    tmp_path: Path, mapping_path: Path
) -> None:
    book = workbook(tmp_path / "labels.xlsx", [[s, "correct", 1, "no", "a"] for s in SPANS[:3]])
    mapping = load_mapping(mapping_path)
    target = RecordingTarget(reject={SPANS[1]}, fail={SPANS[2]})
    result = run(mapping, target=target)
    assert result.exit_code == 1
    rows = cells(book)
    assert [r["sync_status"] for r in rows] == ["synced", "rejected", "failed"]
    assert rows[1]["sync_message"] == (  # both annotations: said once (issue 13)
        f"no span '{SPANS[1]}'"
    )
    assert rows[2]["sync_message"].endswith("will retry on the next run")
    assert rows[1]["sync_hash"] is None  # no hash: the next run sends it again
    retry = RecordingTarget()
    run(mapping, target=retry)
    assert {a.target_id for a in retry.sent[0]} == {SPANS[1], SPANS[2]}


def test_limit_sends_the_first_rows_and_leaves_the_rest_pending(
    tmp_path: Path, mapping_path: Path
) -> None:
    book = workbook(tmp_path / "labels.xlsx", [[s, "correct", 1, "no", "a"] for s in SPANS])
    target = RecordingTarget()
    result = run(load_mapping(mapping_path), target=target, limit=2)
    assert {a.target_id for a in target.sent[0]} == set(SPANS[:2])
    assert result.counts["synced"] == 2 and result.counts["pending"] == 4
    assert [r["sync_status"] for r in cells(book)] == ["synced"] * 2 + [None] * 4


def test_invalid_rows_are_never_sent_and_the_batch_goes_on(
    tmp_path: Path, mapping_path: Path
) -> None:
    book = workbook(
        tmp_path / "labels.xlsx",
        [
            [SPANS[0], "correct", 1, "maybe", "a"],  # second entry invalid: whole row held back
            [SPANS[1], "correct", 0.5, "yes", "a"],
            [SPANS[2], None, None, None, "a"],
        ],
    )
    target = RecordingTarget()
    result = run(load_mapping(mapping_path), target=target)
    assert {a.target_id for a in target.sent[0]} == {SPANS[1]}
    assert result.exit_code == 1
    rows = cells(book)
    assert [r["sync_status"] for r in rows] == ["invalid", "synced", "skipped"]
    assert rows[0]["sync_message"] == "helpful 'maybe' is not one of: yes, no"


def test_statuses_follow_rows_sorted_between_read_and_write(
    tmp_path: Path, mapping_path: Path
) -> None:
    book = workbook(tmp_path / "labels.xlsx", [[s, "correct", 1, "no", "a"] for s in SPANS[:3]])

    class SortingTarget(RecordingTarget):
        def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
            wb = openpyxl.load_workbook(book)  # an SME sorts the sheet, descending, mid-sync
            ws = wb.active
            values = [[c.value for c in r] for r in ws.iter_rows(min_row=2)]
            for i, row in enumerate(reversed(values), start=2):
                for j, v in enumerate(row, start=1):
                    ws.cell(row=i, column=j, value=v)
            wb.save(book)
            return super().send(annotations, progress)

    run(load_mapping(mapping_path), target=SortingTarget(reject={SPANS[0]}))
    rows = cells(book)
    assert [r["span_id"] for r in rows] == [SPANS[2], SPANS[1], SPANS[0]]
    assert [r["sync_status"] for r in rows] == ["synced", "synced", "rejected"]


def test_dry_run_plans_without_checking_sending_or_writing(
    tmp_path: Path, mapping_path: Path
) -> None:
    book = workbook(tmp_path / "labels.xlsx", [[SPANS[0], "correct", 1, "yes", "a"]])
    before = book.read_bytes()
    target = RecordingTarget()
    result = run(load_mapping(mapping_path), target=target, dry_run=True)
    assert target.sent == [] and target.checked == 0
    assert result.planned == [
        {"span_id": SPANS[0], "label": "correct"},
        {"span_id": SPANS[0], "label": "yes"},
    ]
    assert book.read_bytes() == before


def test_progress_is_reported_from_zero_to_the_total(tmp_path: Path, mapping_path: Path) -> None:
    workbook(tmp_path / "labels.xlsx", [[s, "correct", 1, "no", "a"] for s in SPANS[:3]])
    seen: list[tuple[int, int]] = []
    run(
        load_mapping(mapping_path),
        target=RecordingTarget(),
        on_progress=lambda d, t: seen.append((d, t)),
    )
    assert seen == [(0, 6), (6, 6)]
