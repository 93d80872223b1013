"""Export planning, truncation, time parsing, and the Excel side of export (tmp workbooks)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation
from typer.testing import CliRunner

from bridge.cli import app
from bridge.errors import ConfigError, SourceError, SourceUnavailable
from bridge.exporting import (
    export,
    header_for,
    parse_time,
    plan_export,
    truncate,
    validations_for,
)
from bridge.mapping import load_mapping
from bridge.records import ExportQuery, ExportRecord, Validation
from bridge.sources.excel.export_sink import EXCEL_CELL_LIMIT, ExcelExportSink
from tests.builders import span

runner = CliRunner()
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def rec(n: int, **kw: Any) -> ExportRecord:
    kw.setdefault("input", f"question {n}")
    kw.setdefault("output", f"answer {n}")
    kw.setdefault("url", f"http://x/{n}")
    return ExportRecord(span(n), start_time=T0 + timedelta(minutes=n), **kw)


# -- truncation ----------------------------------------------------------------------------


def test_truncate_keeps_text_within_the_limit_and_marks_the_cut() -> None:
    assert truncate("short", 100) == ("short", False)
    exact = "x" * 100
    assert truncate(exact, 100) == (exact, False)
    cut, was_cut = truncate("y" * 40_000, EXCEL_CELL_LIMIT)
    assert was_cut
    assert len(cut) == EXCEL_CELL_LIMIT
    assert cut.startswith("y" * 1000)
    assert cut.endswith(
        "[cut by annobridge: 40,000 characters in all; the full text is on the platform]"
    )


def test_truncate_counts_utf16_units_and_never_splits_a_surrogate_pair() -> None:
    emoji = "😀" * 20_000  # 40,000 UTF-16 units in 20,000 characters
    cut, was_cut = truncate(emoji, EXCEL_CELL_LIMIT)
    assert was_cut
    units = len(cut.encode("utf-16-le")) // 2
    assert units <= EXCEL_CELL_LIMIT
    head = cut.split(" … [cut by")[0]
    assert set(head) == {"😀"}


# -- planning ------------------------------------------------------------------------------


def test_plan_skips_ids_in_the_sheet_labelled_records_and_duplicates() -> None:
    records = [
        rec(1),
        rec(2, annotated=frozenset({"correctness"})),
        rec(3),
        rec(1),  # the platform listed it twice
        rec(4, annotated=frozenset({"other"})),
    ]
    plan = plan_export(
        records, {span(3)}, id_column="span_id", names=["correctness"], limit=None,
        cell_limit=EXCEL_CELL_LIMIT,
    )  # fmt: skip
    assert [r["span_id"] for r in plan.rows] == [span(1), span(4)]
    assert plan.in_sheet == 1 and plan.annotated == 1
    assert plan.rows[0] == {
        "span_id": span(1),
        "input": "question 1",
        "output": "answer 1",
        "start_time": "2025-03-01T12:01:00Z",
        "link": "http://x/1",
    }


def test_a_record_missing_one_of_several_annotations_is_exported() -> None:
    records = [rec(1, annotated=frozenset({"a"})), rec(2, annotated=frozenset({"a", "b"}))]
    plan = plan_export(records, set(), id_column="id", names=["a", "b"], limit=None, cell_limit=100)
    assert [r["id"] for r in plan.rows] == [span(1)]


def test_plan_stops_reading_at_the_limit() -> None:
    pulled: list[int] = []

    def lazy() -> Iterator[ExportRecord]:
        for n in range(1, 1000):
            pulled.append(n)
            yield rec(n)

    plan = plan_export(lazy(), {span(1)}, id_column="id", names=["c"], limit=3, cell_limit=100)
    assert [r["id"] for r in plan.rows] == [span(2), span(3), span(4)]
    assert pulled == [1, 2, 3, 4]
    assert plan_export([rec(1)], set(), id_column="id", names=[], limit=0, cell_limit=9).rows == []


def test_plan_writes_formula_like_text_as_text_and_cuts_long_text() -> None:
    records = [rec(1, input='=HYPERLINK("http://evil")', output="o" * 60_000, url=None)]
    plan = plan_export(records, set(), id_column="id", names=["c"], limit=None, cell_limit=50_000)
    row = plan.rows[0]
    assert row["input"] == '\'=HYPERLINK("http://evil")'
    assert len(row["output"]) == 50_000
    assert row["link"] == ""
    assert [(t.record_id, t.column, t.length) for t in plan.truncated] == [
        (span(1), "output", 60_000)
    ]


# -- times ---------------------------------------------------------------------------------


def test_parse_time_dates_times_and_ages() -> None:
    assert parse_time("2025-03-01", "--since") == datetime(2025, 3, 1, tzinfo=UTC)
    assert parse_time("2025-03-01T12:00:00Z", "--since") == T0
    assert parse_time("2025-03-01T13:00:00+01:00", "--since") == T0
    assert parse_time("7d", "--since", now=T0) == T0 - timedelta(days=7)
    assert parse_time("12h", "--since", now=T0) == T0 - timedelta(hours=12)
    assert parse_time("30m", "--since", now=T0) == T0 - timedelta(minutes=30)
    assert parse_time("2w", "--since", now=T0) == T0 - timedelta(weeks=2)


@pytest.mark.parametrize("bad", ["yesterday", "7 days", "", "2025-13-01", "-3d"])
def test_parse_time_refuses_anything_else(bad: str) -> None:
    with pytest.raises(ConfigError, match="is not a time"):
        parse_time(bad, "--since")


# -- mappings ------------------------------------------------------------------------------


def mapping_file(tmp_path: Path, source: str = "", annotations: str = "", target: str = "") -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        (source or "source:\n  type: excel\n  path: labels.xlsx\n  worksheet: Labels\n")
        + (target or "target:\n  type: phoenix\n  url: http://127.0.0.1:9\n  project: p\n")
        + (
            annotations
            or """annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    score_column: score
    explanation_column: explanation
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      score_min: 0
      score_max: 1
"""
        )
    )
    return path


def test_validations_and_header_from_the_rules(tmp_path: Path) -> None:
    mapping = load_mapping(mapping_file(tmp_path))
    assert validations_for(mapping) == [
        Validation("label", "list", ("correct", "incorrect"), title="correctness: label"),
        Validation("score", "number", minimum=0, maximum=1, title="correctness: score"),
    ]
    assert header_for(mapping) == [
        "span_id", "input", "output", "label", "score", "explanation", "annotator",
        "start_time", "link", "sync_status", "synced_at", "sync_message", "sync_id", "sync_hash",
    ]  # fmt: skip


class FakeTarget:
    name = "fake"

    def __init__(self, records: list[ExportRecord]) -> None:
        self.records = records
        self.queries: list[ExportQuery] = []

    def fingerprint(self) -> str:
        return "fake|x"

    def export_records(self, query: ExportQuery) -> Iterator[ExportRecord]:
        self.queries.append(query)
        yield from self.records

    def close(self) -> None:
        pass


def test_export_into_a_new_workbook_then_again_without_duplicates(tmp_path: Path) -> None:
    mapping = load_mapping(mapping_file(tmp_path))
    target = FakeTarget([rec(n) for n in range(1, 6)])
    result = export(mapping, target=target, limit=3)
    assert (result.appended, result.first_row, result.last_row) == (3, 2, 4)
    assert target.queries[0].names == ("correctness",)
    assert target.queries[0].annotator_kinds == ("HUMAN",)
    book = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    ws = book["Labels"]
    assert [c.value for c in ws[1]] == header_for(mapping)
    assert ws["A2"].value == span(1) and ws["A2"].data_type == "s"
    assert ws["I2"].hyperlink.target == "http://x/1"
    assert ws.freeze_panes == "A2"

    again = export(mapping, target=target)
    assert (again.appended, again.in_sheet, again.first_row) == (2, 3, 5)
    ids = [
        r[0]
        for r in openpyxl.load_workbook(tmp_path / "labels.xlsx")["Labels"].iter_rows(
            min_row=2, values_only=True
        )
    ]
    assert ids == [span(n) for n in range(1, 6)]
    assert len(book["Labels"].data_validations.dataValidation) == 2


def test_export_dry_run_writes_nothing(tmp_path: Path) -> None:
    mapping = load_mapping(mapping_file(tmp_path))
    result = export(mapping, target=FakeTarget([rec(1)]), dry_run=True)
    assert result.appended == 1 and result.rows[0]["span_id"] == span(1)
    assert result.to_json()["rows"] == result.rows
    assert not (tmp_path / "labels.xlsx").exists()


def test_export_refusals(tmp_path: Path) -> None:
    mapping = load_mapping(mapping_file(tmp_path))
    with pytest.raises(ConfigError, match="cannot export records from nothing"):
        export(mapping, target=type("T", (), {"name": "nothing", "close": lambda s: None})())
    with pytest.raises(ConfigError, match="--until must be after --since"):
        export(mapping, target=FakeTarget([]), since=T0, until=T0)
    csv = load_mapping(mapping_file(tmp_path, "source:\n  type: csv\n  path: l.csv\n"))
    with pytest.raises(ConfigError, match="CSV file has none"):
        export(csv, target=FakeTarget([]))
    two = load_mapping(
        mapping_file(
            tmp_path,
            annotations="""annotations:
  - {name: a, id_column: span_id, label_column: label}
  - {name: b, id_column: other_id, label_column: label2}
""",
        )
    )
    with pytest.raises(ConfigError, match="different id columns"):
        export(two, target=FakeTarget([]))


def test_export_target_without_export_records_in_the_cli(tmp_path: Path) -> None:
    path = mapping_file(
        tmp_path,
        target="target:\n  type: arize\n  api: rest\n  project_id: p\n",
    )
    result = runner.invoke(app, ["export", str(path)])
    assert result.exit_code == 2
    assert "cannot export records from arize" in result.stderr


# -- the Excel sink ------------------------------------------------------------------------


def existing_book(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Labels"
    ws.append(["span_id", "input", "output", "label", "score", "notes"])
    ws.append([span(1), "q1", "a1", "correct", 1, "x"])
    ws.append([None, None, None, None, None, "a note"])
    ws.append([])
    ws["B2"].font = Font(bold=True)
    ws["F3"].fill = PatternFill("solid", fgColor="FFFF00")
    ws["G10"].fill = PatternFill("solid", fgColor="00FF00")  # styled, but empty
    ws["H1"] = "=1+1"
    other = wb.create_sheet("Other")
    other["A1"] = "untouched"
    wb.save(path)
    return path


def every_cell(path: Path) -> dict[tuple[str, str], tuple[Any, str]]:
    wb = openpyxl.load_workbook(path)
    return {
        (ws.title, c.coordinate): (c.value, c.data_type)
        for ws in wb.worksheets
        for row in ws.iter_rows()
        for c in row
        if c.value is not None
    }


def test_append_goes_below_the_last_used_row_and_changes_no_existing_cell(tmp_path: Path) -> None:
    book = existing_book(tmp_path / "labels.xlsx")
    before = every_cell(book)
    sink = ExcelExportSink(book, "Labels")
    assert sink.existing_ids("span_id") == {span(1)}
    report = sink.append_rows(
        ["span_id", "input", "output", "start_time", "link"],
        [
            {
                "span_id": span(2),
                "input": "q2",
                "output": "bad\x00\x07char",
                "start_time": "t",
                "link": "https://p/2",
            },
            {"span_id": span(3), "input": "'=2+2", "output": "", "start_time": "t", "link": ""},
        ],
    )  # fmt: skip
    assert (report.first_row, report.last_row) == (4, 5)
    assert report.added_columns == ["start_time", "link"]
    after = every_cell(book)
    assert {k: after[k] for k in before} == before
    wb = openpyxl.load_workbook(book)
    ws = wb["Labels"]
    assert ws["B2"].font.bold and ws["F3"].fill.fgColor.rgb.endswith("FFFF00")
    assert [ws.cell(1, c).value for c in (9, 10)] == ["start_time", "link"]  # right of H1
    assert ws["C4"].value == "bad\ufffd\ufffdchar"
    assert ws["B5"].value == "'=2+2" and ws["B5"].data_type == "s"
    assert ws["C5"].value is None
    assert ws["J4"].hyperlink.target == "https://p/2"
    assert wb["Other"]["A1"].value == "untouched"


def test_an_append_that_cannot_be_saved_leaves_the_workbook_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = existing_book(tmp_path / "labels.xlsx")
    content = book.read_bytes()

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(SourceUnavailable) as info:
        ExcelExportSink(book, "Labels").append_rows(["span_id"], [{"span_id": span(2)}])
    assert str(info.value) == (
        f"{book}: could not save the workbook (Permission denied); it is unchanged"
    )
    assert book.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.xlsx"]


def test_existing_ids_of_a_blank_or_missing_sheet_and_a_missing_column(tmp_path: Path) -> None:
    assert ExcelExportSink(tmp_path / "none.xlsx").existing_ids("span_id") == set()
    blank = tmp_path / "blank.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "Labels"
    wb.save(blank)
    assert ExcelExportSink(blank, "Labels").existing_ids("span_id") == set()
    book = existing_book(tmp_path / "labels.xlsx")
    # a column the header lacks holds no ids (append_rows adds it); a near miss is refused
    assert ExcelExportSink(book, "Labels").existing_ids("trace_id") == set()
    with pytest.raises(SourceError, match="'Span_Id' not found in header row 1.*Did you mean"):
        ExcelExportSink(book, "Labels").existing_ids("Span_Id")
    with pytest.raises(SourceError, match="no worksheet 'Labls'"):
        ExcelExportSink(book, "Labls").existing_ids("span_id")
    with pytest.raises(SourceError, match="no worksheet 'Labls'"):
        ExcelExportSink(book, "Labls").append_rows(["span_id"], [{"span_id": "x"}])


def test_rows_below_an_empty_header_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.xlsx"
    wb = openpyxl.Workbook()
    wb.active["A3"] = "orphan"
    wb.save(path)
    with pytest.raises(SourceError, match="header row 1 is empty but rows below it hold values"):
        ExcelExportSink(path).append_rows(["span_id"], [{"span_id": "x"}])


def test_a_workbook_open_in_excel_is_not_written(tmp_path: Path) -> None:
    book = existing_book(tmp_path / "labels.xlsx")
    (tmp_path / "~$labels.xlsx").write_text("lock")
    before = book.read_bytes()
    with pytest.raises(SourceUnavailable, match="open in Excel"):
        ExcelExportSink(book, "Labels").append_rows(["span_id"], [{"span_id": span(9)}])
    assert book.read_bytes() == before


def test_validations_are_added_once_replaced_when_rules_change_and_shared_ones_kept(
    tmp_path: Path,
) -> None:
    book = existing_book(tmp_path / "labels.xlsx")
    sink = ExcelExportSink(book, "Labels")
    rules = [
        Validation("label", "list", ("correct", "incorrect")),
        Validation("score", "number", minimum=0, maximum=1),
        Validation("missing", "list", ("a",)),
    ]
    said = sink.add_validations(rules)
    assert said == [
        "label: one of correct, incorrect",
        "score: a number from 0 to 1",
        "missing: no such column in the header; no rule added",
    ]
    mtime = book.stat().st_mtime_ns
    assert sink.add_validations(rules[:2])[0].endswith("(already there)")
    assert book.stat().st_mtime_ns == mtime  # nothing to change, nothing saved

    sink.add_validations(
        [Validation("label", "list", ("good", "bad")), Validation("score", "number", minimum=1)]
    )
    dvs = openpyxl.load_workbook(book)["Labels"].data_validations.dataValidation
    got = sorted((str(d.sqref), d.type, d.operator, d.formula1) for d in dvs)
    assert got == [
        ("D2:D1048576", "list", None, '"good,bad"'),
        ("E2:E1048576", "decimal", "greaterThanOrEqual", "1.0"),
    ]

    wb = openpyxl.load_workbook(book)
    ws = wb["Labels"]
    ws.data_validations.dataValidation = []
    shared = DataValidation(type="whole")
    shared.add("D2:F100")
    ws.add_data_validation(shared)
    wb.save(book)
    assert sink.add_validations([Validation("label", "list", ("x",))]) == [
        "label: left as it is (a data validation there also covers other columns)"
    ]


def test_labels_that_cannot_be_a_dropdown_are_said_so(tmp_path: Path) -> None:
    book = existing_book(tmp_path / "labels.xlsx")
    sink = ExcelExportSink(book, "Labels")
    said = sink.add_validations(
        [
            Validation("label", "list", ("a,b", "c")),
            Validation("notes", "list", tuple(f"label-number-{i}" for i in range(30))),
            Validation("output", "list", ("=cmd", "ok")),
        ]
    )
    assert said == [
        "label: no dropdown (a label contains a comma or a double quote)",
        "notes: no dropdown (the labels are longer than Excel's 253 characters for a dropdown)",
        "output: no dropdown (a label starts with = + - or @, which a spreadsheet reads as a "
        "formula)",
    ]
    assert not openpyxl.load_workbook(book)["Labels"].data_validations.dataValidation


# -- CLI -----------------------------------------------------------------------------------


def test_export_and_rules_help_have_examples_and_are_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for args in (["export", "--help"], ["rules", "pull", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0
        assert "Example" in result.stdout
    assert "annobridge export" in readme
    assert "annobridge rules pull" in readme


def test_export_cli_bad_time_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["export", str(mapping_file(tmp_path)), "--since", "soon", "--json"]
    )
    assert result.exit_code == 2
    assert "'soon' is not a time" in result.stdout


def test_an_edit_between_append_and_validations_is_kept(tmp_path: Path) -> None:
    book = existing_book(tmp_path / "labels.xlsx")
    sink = ExcelExportSink(book, "Labels")
    sink.append_rows(["span_id"], [{"span_id": span(7)}])
    wb = openpyxl.load_workbook(book)
    wb["Labels"]["F5"] = "typed by an SME meanwhile"
    wb.save(book)
    sink.add_validations([Validation("label", "list", ("a", "b"))])
    ws = openpyxl.load_workbook(book)["Labels"]
    assert ws["F5"].value == "typed by an SME meanwhile"
    assert ws["A4"].value == span(7)
    assert [str(d.sqref) for d in ws.data_validations.dataValidation] == ["D2:D1048576"]
