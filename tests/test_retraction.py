"""An SME takes a label back: a synced row cleared in the sheet is retracted on the platform
(only the annotation that row sent), guarded against mass clearing, listed by --dry-run,
kept on request (on_clear: keep) and refused where the platform cannot remove one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.errors import ConfigError
from bridge.mapping import load_mapping
from bridge.pipeline import run
from bridge.records import Annotation, Outcome
from tests.test_pipeline import SPANS, RecordingTarget, cells, workbook


class RetractingTarget(RecordingTarget):
    """The in-memory platform, which can also remove what was sent."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.retracted: list[list[Annotation]] = []

    def retract(self, annotations: Sequence[Annotation]) -> list[Outcome]:
        self.retracted.append(list(annotations))
        out = []
        for a in annotations:
            key = (a.target_id, a.name, a.identifier)
            if key in self.store:
                del self.store[key]
                out.append(Outcome.ok(f"id-{a.target_id}-{a.name}"))
            else:
                out.append(Outcome.ok(""))
        return out


def mapping_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"""
source: {{type: excel, path: labels.xlsx}}
target: {{type: phoenix, url: "http://127.0.0.1:9"}}
state_dir: state
{extra}
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    score_column: score
    annotator_column: annotator
    rules: {{labels: [correct, incorrect], score_min: 0, score_max: 1}}
  - name: helpfulness
    id_column: span_id
    label_column: helpful
    annotator_column: annotator
    rules: {{labels: ["yes", "no"], require: label}}
""",
        encoding="utf-8",
    )
    return path


def clear(book: Path, cells_: Sequence[str]) -> None:
    wb = openpyxl.load_workbook(book)
    for ref in cells_:
        wb.active[ref] = None
    wb.save(book)


def synced_book(tmp_path: Path, rows: list[list[Any]], target: RecordingTarget) -> Path:
    book = workbook(tmp_path / "labels.xlsx", rows)
    result = run(load_mapping(mapping_file(tmp_path)), target=target)
    assert result.exit_code == 0 and result.counts["synced"] == len(rows)
    return book


def test_a_cleared_synced_row_is_retracted_and_says_so(tmp_path: Path) -> None:
    target = RetractingTarget()
    book = synced_book(
        tmp_path,
        [[SPANS[0], "correct", 1, "yes", "alice"], [SPANS[0], "incorrect", 0, "no", "bob"]],
        target,
    )
    clear(book, ["B2", "C2", "D2"])  # alice takes her labels back; bob keeps his
    result = run(load_mapping(mapping_file(tmp_path)), target=target)
    assert result.exit_code == 0
    assert result.counts["retracted"] == 1 and result.counts["unchanged"] == 1
    (asked,) = target.retracted
    assert sorted((a.name, a.target_id, a.identifier) for a in asked) == [
        ("correctness", SPANS[0], "annobridge:alice"),
        ("helpfulness", SPANS[0], "annobridge:alice"),
    ]
    assert set(target.store) == {
        (SPANS[0], "correctness", "annobridge:bob"),
        (SPANS[0], "helpfulness", "annobridge:bob"),
    }
    alice, bob = cells(book)
    assert alice["sync_status"] == "retracted"
    assert "correctness, helpfulness taken back" in alice["sync_message"]
    assert alice["sync_hash"] in (None, "") and alice["sync_id"] in (None, "")
    assert bob["sync_status"] == "synced"
    # a rerun neither retracts again nor rewrites the row
    again = RetractingTarget()
    stamp = book.stat().st_mtime_ns
    rerun = run(load_mapping(mapping_file(tmp_path)), target=again)
    assert again.retracted == [] and again.sent == []
    assert rerun.counts["unchanged"] == 2 and book.stat().st_mtime_ns == stamp
    # labelled again later: sent as a new annotation
    wb = openpyxl.load_workbook(book)
    wb.active["B2"] = "correct"
    wb.save(book)
    back = run(load_mapping(mapping_file(tmp_path)), target=target)
    assert back.counts["synced"] == 1
    assert (SPANS[0], "correctness", "annobridge:alice") in target.store


def test_one_cleared_annotation_of_a_row_is_retracted_the_other_resent(tmp_path: Path) -> None:
    target = RetractingTarget()
    book = synced_book(tmp_path, [[SPANS[1], "correct", 1, "yes", "alice"]], target)
    clear(book, ["D2"])  # the helpfulness label goes; correctness stays
    result = run(load_mapping(mapping_file(tmp_path)), target=target)
    assert result.exit_code == 0 and result.counts["synced"] == 1
    assert [(a.name, a.target_id) for a in target.retracted[0]] == [("helpfulness", SPANS[1])]
    assert set(target.store) == {(SPANS[1], "correctness", "annobridge:alice")}
    (row,) = cells(book)
    assert row["sync_status"] == "synced"
    assert row["sync_message"] == "helpfulness cleared in the sheet and taken back on the platform"


def test_clearing_a_row_that_was_never_synced_stays_skipped(tmp_path: Path) -> None:
    book = workbook(tmp_path / "labels.xlsx", [[SPANS[2], None, None, None, "alice"]])
    target = RetractingTarget()
    result = run(load_mapping(mapping_file(tmp_path)), target=target)
    assert result.counts["skipped"] == 1 and target.retracted == []
    assert cells(book)[0]["sync_status"] == "skipped"


def test_more_retractions_than_the_guard_allows_send_nothing(tmp_path: Path) -> None:
    rows = [[SPANS[i % 6], "correct", 1, "yes", f"sme{i}"] for i in range(4)]
    target = RetractingTarget()
    book = synced_book(tmp_path, rows, target)
    (tmp_path / "m.yaml").write_text(
        mapping_file(tmp_path, "max_retractions: 2").read_text(), encoding="utf-8"
    )
    clear(book, [f"{c}{r}" for r in (2, 3, 4) for c in "BCD"])
    wb = openpyxl.load_workbook(book)
    wb.active["B5"] = "incorrect"  # an edit in the same run: not sent either
    wb.save(book)
    before = book.read_bytes()
    count = len(target.sent)
    with pytest.raises(ConfigError, match=r"3 rows .* more than max_retractions \(2\)"):
        run(load_mapping(tmp_path / "m.yaml"), target=target)
    assert target.retracted == [] and len(target.sent) == count
    assert book.read_bytes() == before
    out = CliRunner().invoke(app, ["sync", str(tmp_path / "m.yaml")])
    assert out.exit_code == 2 and "raise max_retractions" in out.stderr
    assert "Traceback" not in out.output


def test_dry_run_lists_every_retraction(tmp_path: Path) -> None:
    target = RetractingTarget()
    book = synced_book(tmp_path, [[SPANS[3], "correct", 1, "yes", "alice"]], target)
    clear(book, ["B2", "C2", "D2"])
    before = book.read_bytes()
    result = run(load_mapping(mapping_file(tmp_path)), target=target, dry_run=True)
    assert sorted(p["retract"]["name"] for p in result.planned) == ["correctness", "helpfulness"]
    assert all(p["retract"]["id"] == SPANS[3] for p in result.planned)
    assert all(p["retract"]["identifier"] == "annobridge:alice" for p in result.planned)
    assert target.retracted == [] and book.read_bytes() == before


def test_on_clear_keep_says_what_the_platform_still_holds(tmp_path: Path) -> None:
    target = RetractingTarget()
    book = synced_book(tmp_path, [[SPANS[4], "correct", 1, "yes", "alice"]], target)
    (tmp_path / "m.yaml").write_text(
        mapping_file(tmp_path, "on_clear: keep").read_text(), encoding="utf-8"
    )
    clear(book, ["B2", "C2", "D2"])
    result = run(load_mapping(tmp_path / "m.yaml"), target=target)
    assert target.retracted == [] and len(target.store) == 2
    assert result.counts["skipped"] == 1
    (row,) = cells(book)
    assert row["sync_status"] == "skipped"
    assert "the platform still holds the earlier correctness by alice" in row["sync_message"]
    assert "on_clear: keep" in row["sync_message"]


def test_a_platform_that_cannot_remove_annotations_refuses_the_row(tmp_path: Path) -> None:
    target = RecordingTarget()  # no retract: like log10 and Arize
    book = synced_book(tmp_path, [[SPANS[5], "correct", 1, "yes", "alice"]], target)
    clear(book, ["B2", "C2", "D2"])
    result = run(load_mapping(mapping_file(tmp_path)), target=target)
    assert result.exit_code == 1 and result.counts["rejected"] == 1
    (row,) = cells(book)
    assert row["sync_status"] == "rejected"
    assert "memory offers no way to remove an annotation" in row["sync_message"]
    assert "on_clear: keep" in row["sync_message"]


def test_the_json_summary_counts_retracted(tmp_path: Path) -> None:
    target = RetractingTarget()
    book = synced_book(tmp_path, [[SPANS[0], "correct", 1, "yes", "alice"]], target)
    clear(book, ["B2", "C2", "D2"])
    result = run(load_mapping(mapping_file(tmp_path)), target=target)
    body = json.loads(json.dumps(result.to_json()))
    assert body["counts"]["retracted"] == 1 and body["exit_code"] == 0


def test_each_row_says_what_it_took_back_when_several_are_cleared_at_once(
    tmp_path: Path,
) -> None:
    target = RetractingTarget()
    rows = [
        [SPANS[0], "correct", 1, "yes", "alice"],
        [SPANS[1], "correct", 1, None, "bob"],  # bob never gave a helpfulness label
        [SPANS[2], "incorrect", 0, "no", "carol"],
    ]
    book = synced_book(tmp_path, rows, target)
    clear(book, ["B2", "C2", "D2", "B3", "C3", "B4", "C4", "D4"])
    result = run(load_mapping(mapping_file(tmp_path)), target=target)
    assert result.counts["retracted"] == 3 and target.store == {}
    alice, bob, carol = cells(book)
    assert carol["sync_message"] == alice["sync_message"]
    assert alice["sync_message"] == (
        "cleared in the sheet: correctness, helpfulness taken back on the platform"
    )
    assert bob["sync_message"] == "cleared in the sheet: correctness taken back on the platform"


def test_a_refused_retraction_names_what_was_not_taken_back(tmp_path: Path) -> None:
    target = RecordingTarget()
    book = synced_book(tmp_path, [[SPANS[2], "correct", 1, "yes", "alice"]], target)
    clear(book, ["B2", "C2", "D2"])
    run(load_mapping(mapping_file(tmp_path)), target=target)
    (row,) = cells(book)
    assert row["sync_message"].startswith(
        "correctness, helpfulness cleared in the sheet, not taken back: memory offers no way"
    )


class FlakyRetractions(RetractingTarget):
    def retract(self, annotations: Sequence[Annotation]) -> list[Outcome]:
        self.retracted.append(list(annotations))
        return [Outcome.failed("server error") for _ in annotations]


def test_a_retraction_that_fails_is_retried_on_the_next_run(tmp_path: Path) -> None:
    target = RetractingTarget()
    book = synced_book(tmp_path, [[SPANS[3], "correct", 1, "yes", "alice"]], target)
    clear(book, ["B2", "C2", "D2"])
    flaky = FlakyRetractions()
    flaky.store = dict(target.store)
    result = run(load_mapping(mapping_file(tmp_path)), target=flaky)
    assert result.exit_code == 1 and result.counts["failed"] == 1
    (row,) = cells(book)
    assert row["sync_status"] == "failed" and row["sync_hash"]  # the old hash stays
    assert "not taken back: server error; will retry on the next run" in row["sync_message"]
    again = run(load_mapping(mapping_file(tmp_path)), target=target)
    assert again.counts["retracted"] == 1 and target.store == {}


def test_a_row_cleared_with_its_id_takes_nothing_back(tmp_path: Path) -> None:
    target = RetractingTarget()
    book = synced_book(tmp_path, [[SPANS[4], "correct", 1, "yes", "alice"]], target)
    clear(book, ["A2", "B2", "C2", "D2"])  # no telling which record it was about
    result = run(load_mapping(mapping_file(tmp_path)), target=target)
    assert target.retracted == [] and len(target.store) == 2
    assert result.counts["skipped"] == 1
