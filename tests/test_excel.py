"""Excel source: typed reads, the errors a workbook can cause, and a write-back that changes
nothing but the status columns."""

from __future__ import annotations

import io
import logging
import os
import re
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.comments import Comment
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation

from bridge.errors import EXIT_UNAVAILABLE, EXIT_USAGE, SourceError, SourceUnavailable
from bridge.records import (
    FORMULA_TRIGGERS,
    CellError,
    Row,
    StatusColumns,
    StatusUpdate,
    WriteReport,
)
from bridge.sources._table import column_letter
from bridge.sources.excel import xlsx_patch as _xlsx_patch
from bridge.sources.excel.source import ExcelSource
from bridge.sources.excel.xlsx_patch import SheetPatch, cell_text
from tests.builders import (
    HEADER,
    MAIN_NS,
    REL_NS,
    SPAN,
    STYLE_DATE,
    STYLE_FILL,
    ErrorValue,
    Formula,
    calamine_grid,
    make_book,
    raw_book,
    read_spec,
    sheet_values,
    sheet_xml,
    span,
    update,
)

STATUS_NAMES = StatusColumns().names()


def read(path: Path, worksheet: str | None = None, header_row: int = 1, **spec: Any) -> list[Row]:
    return ExcelSource(path, worksheet, header_row).read(read_spec(**spec))


def source_error(path: Path, worksheet: str | None = None, header_row: int = 1, **spec: Any) -> str:
    with pytest.raises(SourceError) as info:
        read(path, worksheet, header_row, **spec)
    assert info.value.exit_code == EXIT_USAGE
    return str(info.value)


# --- typed reads ----------------------------------------------------------------------------


def test_reads_typed_values(tmp_path: Path) -> None:
    path = tmp_path / "labels.xlsx"
    header = ["span_id", "label", "score", "when", "ok", "count"]
    make_book(
        path,
        [
            [SPAN, "correct", 0.75, datetime(2024, 5, 1), True, 3],
            ["00123", "  padded  ", 1, datetime(2024, 5, 2, 13, 30), False, None],
        ],
        header=header,
    )
    wb = openpyxl.load_workbook(path)
    wb.active["A4"] = "8085807e40000000"  # looks like a float in exponent notation: stays text
    wb.active["A4"].number_format = "@"
    wb.active["B4"] = "x"
    wb.save(path)
    rows = read(path, columns=header, key_columns=["span_id"])
    assert [r.values for r in rows] == [
        {
            "span_id": SPAN,
            "label": "correct",
            "score": 0.75,
            "when": date(2024, 5, 1),
            "ok": True,
            "count": 3.0,
        },
        {
            "span_id": "00123",
            "label": "  padded  ",
            "score": 1.0,
            "when": datetime(2024, 5, 2, 13, 30),
            "ok": False,
            "count": "",
        },
        {
            "span_id": "8085807e40000000",
            "label": "x",
            "score": "",
            "when": "",
            "ok": "",
            "count": "",
        },
    ]
    assert isinstance(rows[0].values["ok"], bool)
    assert [r.sheet_row for r in rows] == [2, 3, 4]
    assert [r.key for r in rows] == [(SPAN,), ("00123",), ("8085807e40000000",)]


def test_first_sheet_by_default_or_the_named_one(tmp_path: Path) -> None:
    path = tmp_path / "labels.xlsx"
    make_book(path, [[SPAN, "a"]], sheet="Week 1", other_sheets=["Week 2"])
    wb = openpyxl.load_workbook(path)
    for r in (HEADER, [span(2), "b"]):
        wb["Week 2"].append(r)
    wb["Week 2"].delete_rows(1)  # the builder's placeholder cell
    wb.save(path)
    first = ExcelSource(path)
    assert first.label == "labels.xlsx"
    assert [r.values["label"] for r in first.read(read_spec())] == ["a"]
    assert first.label == "labels.xlsx/Week 1"
    second = ExcelSource(path, "Week 2")
    assert [r.values["label"] for r in second.read(read_spec())] == ["b"]
    assert second.label == "labels.xlsx/Week 2"


@pytest.mark.parametrize(
    ("asked", "hint"),
    [
        ("labels", " (did you mean 'Labels'?)"),
        (" Labels ", " (did you mean 'Labels'?)"),
        ("Lables", " (did you mean 'Labels'?)"),
        ("Summary", ""),
    ],
)
def test_missing_worksheet_lists_the_sheets_and_suggests_a_near_one(
    tmp_path: Path, asked: str, hint: str
) -> None:
    path = make_book(tmp_path / "labels.xlsx", [], other_sheets=["Notes", "Archive 2023"])
    assert source_error(path, asked) == (
        f"{path}: no worksheet '{asked}'{hint}. Worksheets: 'Labels', 'Notes', 'Archive 2023'. "
        "Fix source.worksheet in the mapping"
    )


def test_header_on_another_row(tmp_path: Path) -> None:
    path = make_book(
        tmp_path / "labels.xlsx",
        [[SPAN, "a"], [], [span(2), "b"]],
        before=[["Week 12 labels, do not sort the header"], []],
    )
    rows = read(path, header_row=3)
    assert [(r.sheet_row, r.values["label"]) for r in rows] == [(4, "a"), (6, "b")]
    assert source_error(path) == (
        "labels.xlsx, worksheet 'Labels': columns 'span_id', 'label', 'score', 'explanation', "
        "'annotator' not found in header row 1; columns found: 'Week 12 labels, do not sort the "
        "header'. Fix the column names in the mapping, or set header_row if the header is on "
        "another row"
    )
    assert source_error(path, header_row=2) == (
        "labels.xlsx, worksheet 'Labels': header row 2 is empty; the sheet needs a header row "
        "with the column names of the mapping (or set header_row)"
    )


def test_header_names_are_matched_after_trimming_spaces(tmp_path: Path) -> None:
    header = ["  span_id", "label ", " score ", "explanation", "annotator\u00a0"]
    path = make_book(tmp_path / "labels.xlsx", [[SPAN, "a", 1, "e", "ann"]], header=header)
    (row,) = read(path)
    assert row.values == {
        "span_id": SPAN,
        "label": "a",
        "score": 1.0,
        "explanation": "e",
        "annotator": "ann",
    }


def test_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    path = make_book(tmp_path / "labels.xlsx", [], header=["span_id", "Label", "score", "notes"])
    assert source_error(path, columns=["span_id", "label", "score"], key_columns=["span_id"]) == (
        "labels.xlsx, worksheet 'Labels': column 'label' not found in header row 1; columns "
        "found: 'span_id', 'Label', 'score', 'notes'. Did you mean 'label' -> 'Label'? Fix the "
        "column names in the mapping, or set header_row if the header is on another row"
    )


def test_duplicated_header_name_of_a_used_column(tmp_path: Path) -> None:
    path = make_book(tmp_path / "labels.xlsx", [], header=[*HEADER, "notes", "label"])
    assert source_error(path) == (
        "labels.xlsx, worksheet 'Labels': column 'label' appears twice in header row 1 (columns "
        "B and G); rename one of them"
    )


def test_duplicated_header_of_an_unused_column_is_fine(tmp_path: Path) -> None:
    path = make_book(tmp_path / "labels.xlsx", [[SPAN, "a"]], header=[*HEADER, "notes", "notes"])
    assert len(read(path)) == 1


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "labels.xls",
            b"\xd0\xcf\x11\xe0",
            "this is an old Excel 97-2003 workbook, not an .xlsx "
            "workbook; save it as an Excel Workbook (.xlsx)",
        ),
        (
            "labels.ods",
            b"PK\x03\x04",
            "this is an OpenDocument spreadsheet, not an .xlsx "
            "workbook; save it as an Excel Workbook (.xlsx)",
        ),
        (
            "labels.CSV",
            b"span_id,label\n",
            "this is a CSV file, not an .xlsx workbook; set "
            "source.type: csv in the mapping, or save it as an Excel Workbook (.xlsx)",
        ),
        (
            "labels.xlsx",
            b"span_id,label\nabc,x\n",
            "not an .xlsx workbook (an .xlsx file is a zip "
            "archive); save it as an Excel Workbook (.xlsx)",
        ),
        ("labels.xlsx", b"", "the file is empty (0 bytes), not a workbook"),
    ],
    ids=["xls", "ods", "csv", "text-renamed", "zero-bytes"],
)
def test_not_an_xlsx(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert source_error(path) == f"{path}: {expected}"


def test_a_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "labels.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", "hello")
    message = source_error(path)
    assert message.startswith(f"{path}: not a readable .xlsx workbook (")
    assert message.endswith("); open it in Excel and save it as an Excel Workbook (.xlsx)")


def test_a_truncated_workbook(tmp_path: Path) -> None:
    good = make_book(tmp_path / "good.xlsx", [[SPAN, "a"]])
    path = tmp_path / "labels.xlsx"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert source_error(path) == (
        f"{path}: not an .xlsx workbook (an .xlsx file is a zip archive); save it as an Excel "
        "Workbook (.xlsx)"
    )


def test_missing_workbook_and_folder(tmp_path: Path) -> None:
    assert source_error(tmp_path / "nope.xlsx") == (
        f"{tmp_path / 'nope.xlsx'}: no such workbook; check source.path in the mapping"
    )
    folder = tmp_path / "labels.xlsx"
    folder.mkdir()
    assert source_error(folder) == (
        f"{folder}: is a folder, not a workbook; set source.path to the .xlsx file"
    )


def test_empty_sheet(tmp_path: Path) -> None:
    path = make_book(tmp_path / "labels.xlsx", [], header=None)
    assert source_error(path) == (
        "labels.xlsx, worksheet 'Labels': the worksheet is empty; it needs a header row and rows"
    )


def test_header_only_has_no_rows(tmp_path: Path) -> None:
    assert read(make_book(tmp_path / "labels.xlsx", [])) == []


def test_blank_rows_are_ignored_and_rows_keep_their_sheet_numbers(tmp_path: Path) -> None:
    path = make_book(
        tmp_path / "labels.xlsx",
        [[SPAN, "a"], [], [None, "  ", None, ""], [span(2), None, 0.5], [], []],
    )
    wb = openpyxl.load_workbook(path)
    wb.active["H3"] = "a note outside the mapped columns"  # still a blank row for us
    wb.active["A20"] = span(3)
    wb.save(path)
    rows = read(path)
    assert [(r.sheet_row, r.key[0]) for r in rows] == [(2, SPAN), (5, span(2)), (20, span(3))]


def test_status_columns_are_read_back(tmp_path: Path) -> None:
    header = [*HEADER, "sync_status", "sync_hash"]
    path = make_book(
        tmp_path / "labels.xlsx", [[SPAN, "a", None, None, None, "synced", "ab12"]], header=header
    )
    (row,) = read(path)
    assert row.status == {"sync_status": "synced", "sync_hash": "ab12"}


# --- write-back: only the status columns change ---------------------------------------------


def rich_book(path: Path) -> Path:
    """A workbook the way SMEs keep one: a title, styles, validation, formulas, comments..."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Labels"
    ws["A1"] = "Week 12: label every answer"
    ws.merge_cells("A1:E1")
    ws["A1"].font = Font(size=14, bold=True)
    ws.append([*HEADER, "chars"])  # header on row 2
    for cell in ws[2]:
        cell.font = Font(bold=True, color="FFFFFFFF")
        cell.fill = PatternFill("solid", fgColor="FF305496")
    for n in range(1, 7):
        ws.append(
            [span(n), "correct", n / 10, f"answer {n} is fine", f"ann{n % 2}", f"=LEN(D{n + 2})"]
        )
    for r in range(3, 9):
        ws[f"C{r}"].number_format = "0.00%"
        ws[f"D{r}"].alignment = Alignment(wrap_text=True)
    ws["B4"].comment = Comment("was 'incorrect' before review", "lead")
    ws["D5"].hyperlink = "https://example.com/trace/5"
    ws["B6"].fill = PatternFill("solid", fgColor="FFFFC7CE")
    dv = DataValidation(type="list", formula1='"correct,incorrect"', allow_blank=True)
    ws.add_data_validation(dv)
    dv.add("B3:B500")
    ws.conditional_formatting.add(
        "C3:C500",
        CellIsRule(
            operator="lessThan", formula=["0.2"], fill=PatternFill("solid", fgColor="FFFF0000")
        ),
    )
    ws.column_dimensions["D"].width = 60
    ws.row_dimensions[2].height = 30
    ws.freeze_panes = "A3"
    ws.auto_filter.ref = "A2:F8"
    meta = wb.create_sheet("Meta")
    meta["A1"] = "rows labelled"
    meta["B1"] = "=COUNTA(Labels!B3:B500)"
    meta["A2"] = datetime(2024, 5, 1)
    meta["A2"].number_format = "yyyy-mm-dd"
    meta.merge_cells("A4:C5")
    wb.defined_names["labelled"] = DefinedName("labelled", attr_text="Labels!$B$3:$B$500")
    wb.save(path)
    return path


def snapshot(path: Path, skip_header: dict[str, int] | None = None) -> dict[str, Any]:
    """Everything about a workbook that an SME could see, except its status columns."""
    wb = openpyxl.load_workbook(path)
    out: dict[str, Any] = {"sheets": wb.sheetnames, "names": sorted(wb.defined_names)}
    for ws in wb.worksheets:
        skip: set[int] = set()
        if skip_header and ws.title in skip_header:
            row = skip_header[ws.title]
            skip = {c.column for c in ws[row] if c.value in STATUS_NAMES}
        cells = {}
        for row_cells in ws.iter_rows():
            for c in row_cells:
                if c.column in skip or (c.value is None and not c.has_style):
                    continue
                cells[c.coordinate] = (
                    c.value,
                    c.data_type,
                    c.number_format,
                    c.font.b,
                    c.font.sz,
                    c.font.color.rgb if c.font.color is not None else None,
                    c.fill.fill_type,
                    c.fill.fgColor.rgb,
                    c.alignment.wrap_text,
                    c.comment.text if c.comment else None,
                    c.hyperlink.target if c.hyperlink else None,
                )
        out[ws.title] = {
            "cells": cells,
            "merged": sorted(str(r) for r in ws.merged_cells.ranges),
            "validation": [
                (str(d.sqref), d.type, d.formula1) for d in ws.data_validations.dataValidation
            ],
            "conditional": sorted(str(r.sqref) for r in ws.conditional_formatting),
            "widths": {k: d.width for k, d in ws.column_dimensions.items() if d.width},
            "heights": {k: d.height for k, d in ws.row_dimensions.items() if d.height},
            "freeze": ws.freeze_panes,
            "filter": ws.auto_filter.ref,
        }
    return out


def test_write_back_changes_nothing_but_the_status_columns(tmp_path: Path) -> None:
    path = rich_book(tmp_path / "labels.xlsx")
    before = snapshot(path)
    source = ExcelSource(path, "Labels", header_row=2)
    rows = source.read(read_spec())
    assert len(rows) == 6
    updates = [
        update(
            r,
            "synced" if i % 2 else "invalid",
            "" if i % 2 else "score 7 is above the maximum 1",
            synced_at="2024-05-01T10:00:00Z",
            sync_id=f"id-{i}",
            sync_hash=f"h{i}",
        )
        for i, r in enumerate(rows)
    ]
    report = source.write_status(read_spec(), updates)
    assert (report.written, report.vanished, report.moved) == (6, [], 0)
    assert snapshot(path, {"Labels": 2}) == before

    values = sheet_values(path, "Labels")
    assert values[1] == [*HEADER, "chars", *STATUS_NAMES]  # status columns created, in order
    assert values[2][6:] == [
        "invalid",
        "2024-05-01T10:00:00Z",
        "score 7 is above the maximum 1",
        "id-0",
        "h0",
    ]
    assert values[3][6:] == ["synced", "2024-05-01T10:00:00Z", None, "id-1", "h1"]
    # the new header cells look like the header
    ws = openpyxl.load_workbook(path)["Labels"]
    assert ws["G2"].font.b and ws["K2"].fill.fgColor.rgb == "FF305496"
    # and the workbook reads back with the statuses
    assert [r.status["sync_status"] for r in source.read(read_spec())] == [
        "invalid",
        "synced",
        "invalid",
        "synced",
        "invalid",
        "synced",
    ]


def test_existing_status_columns_are_reused(tmp_path: Path) -> None:
    header = ["span_id", "label", "sync_status", "notes", " sync_message "]
    path = make_book(tmp_path / "labels.xlsx", [[SPAN, "a", "failed", "n", "old"]], header=header)
    source = ExcelSource(path)
    rows = source.read(read_spec(columns=["span_id", "label"], key_columns=["span_id"]))
    assert rows[0].status == {"sync_status": "failed", "sync_message": "old"}
    source.write_status(read_spec(key_columns=["span_id"]), [update(rows[0], "synced", "")])
    assert sheet_values(path) == [
        [
            "span_id",
            "label",
            "sync_status",
            "notes",
            " sync_message ",
            "synced_at",
            "sync_id",
            "sync_hash",
        ],
        [SPAN, "a", "synced", "n", None, None, None, None],
    ]


def test_repeated_status_header_uses_the_first_one_as_reads_do(tmp_path: Path) -> None:
    header = ["span_id", "label", "sync_status", "sync_status"]
    path = make_book(tmp_path / "labels.xlsx", [[SPAN, "a", "failed", "x"]], header=header)
    source = ExcelSource(path)
    (row,) = source.read(read_spec(key_columns=["span_id"], columns=["span_id", "label"]))
    assert row.status["sync_status"] == "failed"
    source.write_status(read_spec(key_columns=["span_id"]), [update(row, "synced")])
    assert sheet_values(path)[1][:4] == [SPAN, "a", "synced", "x"]


def test_new_status_columns_go_right_of_every_used_column(tmp_path: Path) -> None:
    # column D has data but no header, E:F hold a merged note: neither may become a status column
    path = make_book(
        tmp_path / "labels.xlsx", [[SPAN, "a"], [span(2), "b"]], header=["span_id", "label"]
    )
    wb = openpyxl.load_workbook(path)
    wb.active["D2"] = '=B2&"!"'
    wb.active["E3"] = "merged note"
    wb.active.merge_cells("E3:F3")
    wb.save(path)
    before = snapshot(path)
    source = ExcelSource(path)
    rows = source.read(read_spec(columns=["span_id", "label"], key_columns=["span_id"]))
    source.write_status(read_spec(key_columns=["span_id"]), [update(r, "synced") for r in rows])
    assert snapshot(path, {"Labels": 1}) == before
    assert sheet_values(path)[0] == ["span_id", "label", None, None, None, None, *STATUS_NAMES]


def test_status_cells_that_are_merged_stop_the_write_and_leave_the_file_alone(
    tmp_path: Path,
) -> None:
    header = ["span_id", "label", "sync_status"]
    path = make_book(tmp_path / "labels.xlsx", [[SPAN, "a"], [span(2), "b"]], header=header)
    wb = openpyxl.load_workbook(path)
    wb.active.merge_cells("C2:C3")
    wb.save(path)
    content = path.read_bytes()
    source = ExcelSource(path)
    rows = source.read(read_spec(columns=["span_id", "label"], key_columns=["span_id"]))
    with pytest.raises(SourceError) as info:
        source.write_status(read_spec(key_columns=["span_id"]), [update(r) for r in rows])
    assert str(info.value) == (
        "labels.xlsx, worksheet 'Labels': cannot write the status into merged cells (C3); unmerge "
        "the status columns and run again to write the statuses. The workbook is unchanged"
    )
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    "message",
    [
        '=HYPERLINK("http://evil.example","click")',
        "+1 more",
        "-5 is below",
        "@SUM(A1)",
        "\tindented",
        "=1+1",
    ],
)
def test_written_text_is_never_a_formula(tmp_path: Path, message: str) -> None:
    path = make_book(tmp_path / "labels.xlsx", [[SPAN, "a"]])
    source = ExcelSource(path)
    (row,) = source.read(read_spec())
    source.write_status(read_spec(), [update(row, "rejected", message, sync_id=message)])
    ws = openpyxl.load_workbook(path).active
    written = [c for c in ws[2] if c.column > len(HEADER) and c.value is not None]
    assert len(written) == 3
    for cell in written:
        assert cell.data_type == "s"
        assert not str(cell.value).startswith(FORMULA_TRIGGERS)
    assert ws["H2"].value == "'" + message  # kept in full, readable
    with zipfile.ZipFile(path) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml and "<f " not in xml
    # a value reader (what the next run uses) sees the text, not an empty formula result
    (again,) = source.read(read_spec())
    assert again.status["sync_message"] == "'" + message


def test_status_header_and_values_are_written_as_text(tmp_path: Path) -> None:
    status = StatusColumns(status="=state", message="+why")
    path = make_book(tmp_path / "labels.xlsx", [[SPAN, "a"]])
    source = ExcelSource(path)
    (row,) = source.read(read_spec(status=status))
    source.write_status(
        read_spec(status=status),
        [StatusUpdate(row.sheet_row, row.key, 0, {"=state": "synced", "+why": "ok"})],
    )
    ws = openpyxl.load_workbook(path).active
    assert [c.data_type for c in ws[1]] == ["s"] * 10
    assert ws["F1"].value == "=state"  # a header we were told to use, stored as text


# --- write-back: rows located by key --------------------------------------------------------


def five_rows(tmp_path: Path) -> tuple[ExcelSource, list[Row]]:
    path = make_book(
        tmp_path / "labels.xlsx", [[span(n), f"label {n}", None, None, "ann"] for n in range(1, 6)]
    )
    source = ExcelSource(path)
    return source, source.read(read_spec())


def statuses(path: Path) -> dict[str, Any]:
    """{span id: sync_message} as the sheet is now."""
    rows = sheet_values(path)
    at = rows[0].index("sync_message")
    return {r[0]: r[at] for r in rows[1:] if r[0] is not None}


def mark(rows: list[Row]) -> list[StatusUpdate]:
    """One update per row whose message names the row's own id."""
    return [update(r, "synced", f"for {r.key[0]}") for r in rows]


def rewrite(path: Path, change: Any) -> None:
    wb = openpyxl.load_workbook(path)
    change(wb.active)
    wb.save(path)


def test_statuses_follow_their_rows_after_a_sort(tmp_path: Path) -> None:
    source, rows = five_rows(tmp_path)

    def sort_descending(ws: Any) -> None:
        data = sorted(([c.value for c in r] for r in ws.iter_rows(min_row=2)), reverse=True)
        for i, values in enumerate(data, start=2):
            for j, v in enumerate(values, start=1):
                ws.cell(row=i, column=j, value=v)

    rewrite(source.path, sort_descending)
    report = source.write_status(read_spec(), mark(rows))
    assert (report.written, report.vanished, report.moved) == (5, [], 4)
    assert statuses(source.path) == {span(n): f"for {span(n)}" for n in range(1, 6)}
    assert [r[0] for r in sheet_values(source.path)[1:]] == [span(n) for n in range(5, 0, -1)]


def test_statuses_follow_their_rows_after_an_insert(tmp_path: Path) -> None:
    source, rows = five_rows(tmp_path)

    def insert(ws: Any) -> None:
        ws.insert_rows(3)
        ws["A3"] = span(99)
        ws["B3"] = "added meanwhile"

    rewrite(source.path, insert)
    report = source.write_status(read_spec(), mark(rows))
    assert (report.written, report.moved) == (5, 4)
    assert statuses(source.path) == {
        **{span(n): f"for {span(n)}" for n in range(1, 6)},
        span(99): None,
    }


def test_a_row_without_id_and_annotator_gets_its_status_after_a_sort(tmp_path: Path) -> None:
    path = make_book(
        tmp_path / "labels.xlsx",
        [[span(1), "b", None, None, "ann"], [None, "no id", None, None, None], [span(2), "a"]],
    )
    source = ExcelSource(path)
    rows = source.read(read_spec())
    assert [r.key for r in rows] == [(span(1), "ann"), ("", ""), (span(2), "")]

    def change(ws: Any) -> None:
        values = [[c.value for c in r] for r in ws.iter_rows(min_row=2)]
        ws.delete_rows(2, ws.max_row)
        for r in [values[2], [None] * 5, values[1], values[0]]:  # sorted, a blank row inserted
            ws.append(r)

    rewrite(path, change)
    updates = [
        update(r, "invalid" if not r.key[0] else "synced", f"row {r.sheet_row}") for r in rows
    ]
    report = source.write_status(read_spec(), updates)
    assert (report.written, report.vanished) == (3, [])
    grid = sheet_values(path)
    at = grid[0].index("sync_message")
    got = [[r[1], r[at] if at < len(r) else None] for r in grid[1:]]
    assert got == [["a", "row 4"], [None, None], ["no id", "row 3"], ["b", "row 2"]]


def test_a_deleted_row_is_reported_and_never_written_elsewhere(tmp_path: Path) -> None:
    source, rows = five_rows(tmp_path)
    rewrite(source.path, lambda ws: ws.delete_rows(4))  # span(3)
    report = source.write_status(read_spec(), mark(rows))
    assert report.written == 4
    assert report.vanished == [mark(rows)[2]]
    now = statuses(source.path)
    assert span(3) not in now
    assert now == {span(n): f"for {span(n)}" for n in (1, 2, 4, 5)}
    assert f"for {span(3)}" not in str(sheet_values(source.path))


def test_rows_sharing_a_key_keep_their_order(tmp_path: Path) -> None:
    path = make_book(tmp_path / "labels.xlsx", [[SPAN, "first"], [SPAN, "second"]])
    source = ExcelSource(path)
    rows = source.read(read_spec())
    assert [r.occurrence for r in rows] == [0, 1]
    rewrite(path, lambda ws: ws.insert_rows(2))
    source.write_status(read_spec(), [update(r, "invalid", r.values["label"]) for r in rows])
    assert [(r[1], r[7]) for r in sheet_values(path)[2:]] == [
        ("first", "first"),
        ("second", "second"),
    ]


def test_nothing_to_write_leaves_the_file_untouched(tmp_path: Path) -> None:
    source, _ = five_rows(tmp_path)
    content = source.path.read_bytes()
    assert source.write_status(read_spec(), []).written == 0
    assert source.path.read_bytes() == content


def test_key_column_gone_at_write_time(tmp_path: Path) -> None:
    source, rows = five_rows(tmp_path)
    content = source.path.read_bytes()
    rewrite(source.path, lambda ws: ws.delete_cols(5))  # the annotator column
    content = source.path.read_bytes()
    with pytest.raises(SourceError, match="column 'annotator' not found in header row 1"):
        source.write_status(read_spec(), mark(rows))
    assert source.path.read_bytes() == content


# --- saving ---------------------------------------------------------------------------------


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    source, rows = five_rows(tmp_path)
    os.chmod(source.path, 0o640)
    inode = source.path.stat().st_ino
    source.write_status(read_spec(), mark(rows))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.xlsx"]
    assert source.path.stat().st_ino != inode  # replaced by a new file, not rewritten in place
    assert source.path.stat().st_mode & 0o777 == 0o640


def test_a_failed_save_leaves_the_workbook_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, rows = five_rows(tmp_path)
    content = source.path.read_bytes()

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(SourceUnavailable) as info:
        source.write_status(read_spec(), mark(rows))
    assert str(info.value) == (
        f"{source.path}: could not save the status columns (Permission denied); the workbook is "
        "unchanged. The annotations were sent: run again to write the statuses"
    )
    assert info.value.exit_code == EXIT_UNAVAILABLE
    assert source.path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.xlsx"]


# --- check_writable -------------------------------------------------------------------------


@pytest.mark.parametrize("lock", ["~$labels.xlsx", ".~lock.labels.xlsx#"])
def test_open_in_excel_or_libreoffice(tmp_path: Path, lock: str) -> None:
    source, _ = five_rows(tmp_path)
    source.check_writable()
    (tmp_path / lock).write_bytes(b"owner")
    with pytest.raises(SourceUnavailable) as info:
        source.check_writable()
    assert str(info.value) == (
        f"{source.path}: the workbook is open in Excel or LibreOffice (lock file {lock}); close "
        "it and run again (if no program has it open, delete the lock file). Nothing was sent"
    )


def test_read_only_workbook(tmp_path: Path) -> None:
    source, _ = five_rows(tmp_path)
    os.chmod(source.path, 0o444)
    with pytest.raises(SourceUnavailable) as info:
        source.check_writable()
    assert str(info.value) == (
        f"{source.path}: the workbook is read-only; make it writable (the status columns are "
        "written back into it). Nothing was sent"
    )
    assert re.search(r"Nothing was sent$", str(info.value))


# --- write-back: a streaming patch of the worksheet's XML ------------------------------------


def write_all(
    path: Path, *, key_columns: tuple[str, ...] = ("span_id", "annotator"), **values: str
) -> WriteReport:
    """Write one status per data row, its message naming the row's span id."""
    source = ExcelSource(path)
    spec = read_spec(key_columns=key_columns)
    rows = source.read(spec)
    return source.write_status(
        spec, [update(r, "synced", f"for {r.key[0]}", **values) for r in rows]
    )


def raw_member(path: Path, name: str) -> tuple[bytes, tuple[Any, ...]]:
    """A zip member's compressed bytes as stored, and its stored metadata."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            head = fh.read(30)
            name_len, extra_len = (
                int.from_bytes(head[26:28], "little"),
                int.from_bytes(head[28:30], "little"),
            )
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            data = fh.read(info.compress_size)
    meta = (info.CRC, info.compress_type, info.compress_size, info.file_size, info.date_time)
    return data, meta


def excel_like(tmp_path: Path, **kw: Any) -> Path:
    """A workbook as Excel saves one: shared strings, spans, formulas with cached results."""
    rows = [
        [span(n), "correct", n / 10, f"answer {n}", f"ann{n % 2}", Formula(f"LEN(D{n + 1})", 8)]
        for n in range(1, 5)
    ]
    rows[2][1] = Formula('IF(C4>0.2,"correct","incorrect")', "correct")
    return raw_book(tmp_path / "labels.xlsx", rows, header=[*HEADER, "chars"], **kw)


def test_cached_formula_results_survive_the_write_back(tmp_path: Path) -> None:
    path = excel_like(tmp_path)
    assert calamine_grid(path)[1][5] == 8.0  # what Excel stored, before
    write_all(path)
    grid = calamine_grid(path)
    assert [r[5] for r in grid[1:]] == [8.0] * 4  # ... and after: still there
    assert grid[3][1] == "correct"  # a label computed by a formula is still read
    assert calamine_grid(path, "Meta") == [["rows labelled", 4.0]]
    xml = sheet_xml(path)
    assert '<c r="F2"><f>LEN(D2)</f><v>8</v></c>' in xml
    values = openpyxl.load_workbook(path, data_only=True)["Labels"]
    assert [values.cell(row=r, column=6).value for r in range(2, 6)] == [8, 8, 8, 8]
    formulas = openpyxl.load_workbook(path)["Labels"]
    assert formulas["F2"].value == "=LEN(D2)"
    assert formulas["G2"].value == "synced" and formulas["I3"].value == f"for {span(2)}"


def test_cached_results_of_a_workbook_openpyxl_wrote_survive_too(tmp_path: Path) -> None:
    path = rich_book(tmp_path / "labels.xlsx")
    # give the formulas the results Excel would have stored when saving the workbook
    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i) for i in z.infolist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    sheet, n = re.subn(r"<f>LEN\(D(\d+)\)</f><v\s*/>", r"<f>LEN(D\1)</f><v>17</v>", sheet)
    assert n == 6
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    meta = parts["xl/worksheets/sheet2.xml"].decode().replace("<v />", "<v>6</v>", 1)
    parts["xl/worksheets/sheet2.xml"] = meta.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    before = snapshot(path)
    source = ExcelSource(path, "Labels", header_row=2)
    rows = source.read(read_spec())
    source.write_status(read_spec(), [update(r, "synced") for r in rows])
    assert snapshot(path, {"Labels": 2}) == before
    assert [r[5] for r in calamine_grid(path)[2:]] == [17.0] * 6
    assert calamine_grid(path, "Meta")[0][1] == 6.0
    data = openpyxl.load_workbook(path, data_only=True)
    assert data["Labels"]["F3"].value == 17 and data["Meta"]["B1"].value == 6


def test_parts_other_than_the_worksheet_are_copied_byte_for_byte(tmp_path: Path) -> None:
    path = excel_like(tmp_path)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    before = {n: raw_member(path, n) for n in names}
    original = sheet_xml(path)
    write_all(path)
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == names  # same parts, same order
        assert z.testzip() is None
    for name in names:
        if name != "xl/worksheets/sheet1.xml":
            assert raw_member(path, name) == before[name], name
    # in the worksheet itself, only the status cells, the spans and the dimension changed
    xml = sheet_xml(path)
    stripped = re.sub(
        r'<c r="[G-K]\d+"( s="\d+")? t="inlineStr"><is><t>[^<]*</t></is></c>', "", xml
    )
    stripped = re.sub('spans="1:(9|11)"', 'spans="1:6"', stripped).replace("A1:K5", "A1:F5")
    assert stripped == original


def test_the_result_opens_in_openpyxl_and_calamine_with_the_statuses(tmp_path: Path) -> None:
    path = excel_like(tmp_path)
    write_all(path, synced_at="2024-05-01T10:00:00Z", sync_id="remote")
    expected = [
        [*HEADER, "chars", *STATUS_NAMES],
        *[["synced", "2024-05-01T10:00:00Z", f"for {span(n)}", "remote"] for n in range(1, 5)],
    ]
    grid = calamine_grid(path)
    assert grid[0] == expected[0]
    assert [r[6:10] for r in grid[1:]] == expected[1:]
    assert [r[6:10] for r in sheet_values(path, "Labels")[1:]] == expected[1:]
    ws = openpyxl.load_workbook(path)["Labels"]
    assert ws["G1"].font.b and ws["K1"].fill.fgColor.rgb == "FF305496"  # the header's look
    assert ws.max_column == 11


def test_existing_status_cells_in_shared_strings_keep_their_style(tmp_path: Path) -> None:
    header = ["span_id", "label", "sync_status", "notes", "sync_message"]
    path = raw_book(
        tmp_path / "labels.xlsx",
        [[SPAN, "a", "failed", "keep me", "old message"], [span(2), "b", "failed", None, "x"]],
        header=header,
        styles={"C2": STYLE_FILL, "E2": STYLE_FILL, "E3": STYLE_DATE},
    )
    with zipfile.ZipFile(path) as z:
        strings = z.read("xl/sharedStrings.xml")
    source = ExcelSource(path)
    spec = read_spec(columns=["span_id", "label"], key_columns=["span_id"])
    rows = source.read(spec)
    source.write_status(spec, [update(r, "synced", "") for r in rows])
    xml = sheet_xml(path)
    assert '<c r="C2" s="3" t="inlineStr"><is><t>synced</t></is></c>' in xml
    assert '<c r="E2" s="3"/>' in xml  # an emptied message keeps the cell's fill
    assert '<c r="E3" s="2"/>' in xml
    assert "<v>" + "2" + "</v>" not in xml.split('r="C2"')[1].split("</c>")[0]
    assert calamine_grid(path)[1][:5] == [SPAN, "a", "synced", "keep me", ""]
    with zipfile.ZipFile(path) as z:
        assert z.read("xl/sharedStrings.xml") == strings
    assert openpyxl.load_workbook(path).active["C2"].fill.fgColor.rgb == "FFFFFF00"


def test_a_namespace_prefix_is_kept(tmp_path: Path) -> None:
    path = raw_book(tmp_path / "labels.xlsx", [[SPAN, "a"], [span(2), "b"]], prefix="x")
    write_all(path)
    xml = sheet_xml(path)
    assert '<x:c r="F1" s="1" t="inlineStr"><x:is><x:t>sync_status</x:t></x:is></x:c>' in xml
    assert "<c " not in xml
    assert calamine_grid(path)[2][5:8] == ["synced", "", f"for {span(2)}"]
    assert openpyxl.load_workbook(path).active["H3"].value == f"for {span(2)}"


@pytest.mark.parametrize("width", [30, 52, 700, 16_379])
def test_status_columns_far_right(tmp_path: Path, width: int) -> None:
    # data up to column AD, AZ, ZX or XEY: the status columns take the letters after it
    header = [*HEADER, *[f"c{i}" for i in range(len(HEADER), width - 1)], "last"]
    path = raw_book(
        tmp_path / "labels.xlsx", [[SPAN, "a", *[None] * (width - 3), "x"]], header=header
    )
    write_all(path)
    letters = [column_letter(width + i) for i in range(5)]
    xml = sheet_xml(path)
    for letter, name in zip(letters, STATUS_NAMES, strict=True):
        assert f'<c r="{letter}1" s="1" t="inlineStr"><is><t>{name}</t></is></c>' in xml
    assert f'<dimension ref="A1:{letters[-1]}2"/>' in xml
    assert f'spans="1:{width + 5}"' in xml
    assert calamine_grid(path)[1][width : width + 3] == ["synced", "", f"for {SPAN}"]


def test_no_room_left_for_the_status_columns(tmp_path: Path) -> None:
    header = [*HEADER, *[f"c{i}" for i in range(len(HEADER), 16_381)]]
    path = raw_book(tmp_path / "labels.xlsx", [[SPAN, "a"]], header=header)
    assert source_error(path) == (
        "labels.xlsx, worksheet 'Labels': the sheet uses columns up to XFA, so the 5 status "
        "columns (sync_status, synced_at, sync_message, sync_id, sync_hash) do not fit before "
        "Excel's last column, XFD; delete unused columns or add the status columns yourself, "
        "right of the data"
    )


def patch_sheet(xml: str, patch: SheetPatch, chunk: int | None = None) -> tuple[str, int]:
    """Run the worksheet pass alone: (the new XML, the most bytes it held at once)."""
    if chunk is not None:
        saved = _xlsx_patch.CHUNK, _xlsx_patch.OUT_CHUNK
        _xlsx_patch.CHUNK = _xlsx_patch.OUT_CHUNK = chunk
    try:
        out = io.BytesIO()
        stream = _xlsx_patch._SheetStream(io.BytesIO(xml.encode()), out, patch)
        stream.run()
    finally:
        if chunk is not None:
            _xlsx_patch.CHUNK, _xlsx_patch.OUT_CHUNK = saved
    return out.getvalue().decode(), stream.peak


SHEET_HEAD = f'<?xml version="1.0"?>\n<worksheet xmlns="{MAIN_NS}"><dimension ref="A1:B6"/>'


def test_missing_rows_and_empty_rows_are_created_in_order() -> None:
    xml = (
        SHEET_HEAD + '<cols><col min="3" max="4" width="9" style="7" customWidth="1"/></cols>'
        '<sheetData><row r="2"><c r="A2"><v>1</v></c></row>'
        '<row r="5" s="4" customFormat="1" ht="30"/>'
        '<row r="6" spans="1:2"><c r="B6" t="s"><v>0</v></c></row></sheetData>'
        '<mergeCells count="1"><mergeCell ref="A8:B8"/></mergeCells></worksheet>'
    )
    plan = {1: {2: "h"}, 2: {2: "two"}, 3: {2: "three"}, 5: {3: "five"}, 6: {1: "six"}, 9: {2: "x"}}
    new, _ = patch_sheet(xml, SheetPatch(plan))
    assert new == (
        SHEET_HEAD.replace("A1:B6", "A1:D9")
        + '<cols><col min="3" max="4" width="9" style="7" customWidth="1"/></cols><sheetData>'
        '<row r="1"><c r="C1" s="7" t="inlineStr"><is><t>h</t></is></c></row>'
        '<row r="2"><c r="A2"><v>1</v></c><c r="C2" s="7" t="inlineStr"><is><t>two</t></is></c>'
        '</row><row r="3"><c r="C3" s="7" t="inlineStr"><is><t>three</t></is></c></row>'
        '<row r="5" s="4" customFormat="1" ht="30">'
        '<c r="D5" s="4" t="inlineStr"><is><t>five</t></is></c></row>'
        '<row r="6" spans="1:2"><c r="B6" t="inlineStr"><is><t>six</t></is></c></row>'
        '<row r="9"><c r="C9" s="7" t="inlineStr"><is><t>x</t></is></c></row></sheetData>'
        '<mergeCells count="1"><mergeCell ref="A8:B8"/></mergeCells></worksheet>'
    )


def test_an_empty_sheet_data_gets_its_rows() -> None:
    xml = f'<worksheet xmlns="{MAIN_NS}"><sheetData/></worksheet>'
    new, _ = patch_sheet(xml, SheetPatch({2: {0: "a & <b>"}}))
    assert new == (
        f'<worksheet xmlns="{MAIN_NS}"><sheetData><row r="2"><c r="A2" t="inlineStr"><is>'
        "<t>a &amp; &lt;b&gt;</t></is></c></row></sheetData></worksheet>"
    )


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("plain", "<t>plain</t>"),
        ("  padded\n", '<t xml:space="preserve">  padded\n</t>'),
        ("a\x00b\x0bc", "<t>a_x0000_b_x000B_c</t>"),
        ("line\r\nbreak", "<t>line_x000D_\nbreak</t>"),
        ("_x0041_ stays", "<t>_x005F_x0041_ stays</t>"),
        ("5 < 6 & 7 > 3", "<t>5 &lt; 6 &amp; 7 &gt; 3</t>"),
        ("ok 👍 صحيح", "<t>ok 👍 صحيح</t>"),
    ],
)
def test_text_is_stored_so_that_excel_reads_it_back(tmp_path: Path, text: str, stored: str) -> None:
    new, _ = patch_sheet(
        f'<worksheet xmlns="{MAIN_NS}"><sheetData><row r="1"/></sheetData></worksheet>',
        SheetPatch({1: {0: text}}),
    )
    assert f'<c r="A1" t="inlineStr"><is>{stored}</is></c>' in new
    # and through a whole workbook, calamine (and so the next run) reads back the same text
    path = make_book(tmp_path / "labels.xlsx", [[SPAN, "a"]])
    source = ExcelSource(path)
    (row,) = source.read(read_spec())
    source.write_status(read_spec(), [update(row, "rejected", text)])
    assert calamine_grid(path)[1][7] == text
    assert source.read(read_spec())[0].status["sync_message"] == text.strip()


def test_text_longer_than_a_cell_holds_is_cut(tmp_path: Path) -> None:
    path = make_book(tmp_path / "labels.xlsx", [[SPAN, "a"]])
    source = ExcelSource(path)
    (row,) = source.read(read_spec())
    source.write_status(read_spec(), [update(row, "invalid", "x" * 40_000 + "end")])
    written = calamine_grid(path)[1][7]
    assert len(written) == 32_767 and written.endswith("x…")
    assert cell_text("😀" * 20_000).endswith("😀…")  # counted in UTF-16 units, as Excel does
    assert len(cell_text("😀" * 20_000).encode("utf-16-le")) // 2 <= 32_767


def test_the_pass_streams_with_a_bounded_buffer() -> None:
    rows = "".join(
        f'<row r="{r}" spans="1:3"><c r="A{r}" t="s"><v>{r}</v></c>'
        f'<c r="B{r}"><f>A{r}*2</f><v>{r * 2}</v></c></row>'
        for r in range(1, 3001)
    )
    xml = SHEET_HEAD + f"<sheetData>{rows}</sheetData></worksheet>"
    plan = SheetPatch(
        {r: {3: f"status {r}", 5: "" if r % 2 else "msg"} for r in range(1, 3001, 3)},
        new_columns=frozenset({3, 4, 5}),
    )
    whole, _ = patch_sheet(xml, plan)
    small, peak = patch_sheet(xml, plan, chunk=777)
    assert small == whole
    assert len(xml) > 200_000 and peak < 4 * 777  # a few rows held, never the sheet
    assert whole.count("inlineStr") == 1000 + 500
    assert '<c r="B2998"><f>A2998*2</f><v>5996</v></c>' in whole


def test_a_status_cell_holding_a_formula_is_written_with_openpyxl(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    header = [*HEADER, "sync_status"]
    path = raw_book(
        tmp_path / "labels.xlsx",
        [[SPAN, "a", None, None, "ann", Formula("TODAY()", 45000)], [span(2), "b"]],
        header=header,
    )
    before = calamine_grid(path)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        write_all(path)
    assert [r.getMessage() for r in caplog.records] == [
        "labels.xlsx, worksheet 'Labels': cell F2, to be written, holds a formula; writing "
        "the status with openpyxl instead, which keeps the formatting but drops the cached "
        "results of formulas until Excel recalculates them"
    ]
    grid = calamine_grid(path)
    assert [r[5] for r in grid] == ["sync_status", "synced", "synced"]
    assert [r[:5] for r in grid] == [r[:5] for r in before]
    assert "TODAY" not in sheet_xml(path)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (("<sheetData>", "<sheetData><!-- made by hand -->"), "the worksheet has comments"),
        (('<c r="C3">', "<c>"), "a cell without its reference"),
        (('<row r="3" spans="1:5">', '<row spans="1:5">'), "a row without its row number"),
    ],
)
def test_worksheets_the_patch_does_not_handle_fall_back_to_openpyxl(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: tuple[str, str], why: str
) -> None:
    path = raw_book(tmp_path / "labels.xlsx", [[SPAN, "a", 1], [span(2), "b", 0]])
    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i) for i in z.infolist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    assert change[0] in xml
    parts["xl/worksheets/sheet1.xml"] = xml.replace(change[0], change[1], 1).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        report = write_all(path)
    assert report.written == 2
    (warning,) = caplog.records
    assert why in warning.getMessage() and "openpyxl" in warning.getMessage()
    assert [r[5:8] for r in calamine_grid(path)[1:]] == [
        ["synced", "", f"for {SPAN}"],
        ["synced", "", f"for {span(2)}"],
    ]


def test_columns_a_value_reader_sees_as_empty_are_not_overwritten(tmp_path: Path) -> None:
    # column F has no header and holds formulas without results and an error: calamine reads
    # it as empty, the patch sees it is not, and the status columns go right of it
    rows = [
        [SPAN, "a", None, None, "ann", Formula("B2&B3")],
        [span(2), "b", None, None, "ann", ErrorValue("#REF!")],
    ]
    path = raw_book(tmp_path / "labels.xlsx", rows)
    assert [r[5] for r in calamine_grid(path)] == ["", "", ""]
    write_all(path)
    xml = sheet_xml(path)
    assert '<c r="F2"><f>B2&amp;B3</f><v></v></c>' in xml
    assert '<c r="F3" t="e"><v>#REF!</v></c>' in xml
    assert calamine_grid(path)[0][5:] == ["", *STATUS_NAMES]


def test_an_array_formula_over_a_status_cell_stops_the_write(tmp_path: Path) -> None:
    path = raw_book(
        tmp_path / "labels.xlsx",
        [[SPAN, "a", 1], [span(2), "b", 2]],
        header=[*HEADER, "sync_status"],
    )
    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i) for i in z.infolist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    xml = xml.replace(
        "</row>", '<c r="G2"><f t="array" ref="F3:G3">C2:C3*2</f><v>2</v></c></row>', 2
    )
    xml = xml.replace(
        '<c r="G2"><f t="array" ref="F3:G3">C2:C3*2</f><v>2</v></c></row>', "</row>", 1
    )
    parts["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    content = path.read_bytes()
    with pytest.raises(SourceError) as info:
        write_all(path)
    assert str(info.value) == (
        "labels.xlsx, worksheet 'Labels': cannot write the status into F3, which is part of the "
        "array formula F3:G3; move the formula out of the status columns and run again to "
        "write the statuses. The workbook is unchanged"
    )
    assert path.read_bytes() == content


def add_table(path: Path, ref: str) -> None:
    """Make ``ref`` of the first sheet an Excel table (a list object)."""
    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i) for i in z.infolist()}
    first, last = ref.split(":")
    width = ord(last[0]) - ord(first[0]) + 1
    columns = "".join(f'<tableColumn id="{i}" name="Column{i}"/>' for i in range(1, width + 1))
    parts["xl/tables/table1.xml"] = (
        f'<table xmlns="{MAIN_NS}" id="1" name="Labels" displayName="Labels" ref="{ref}">'
        f'<tableColumns count="{width}">{columns}</tableColumns></table>'
    ).encode()
    parts["xl/worksheets/_rels/sheet1.xml.rels"] = (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{REL_NS}/table" Target="../tables/table1.xml"/>'
        "</Relationships>"
    ).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)


def test_new_status_columns_go_right_of_a_table_on_the_sheet(tmp_path: Path) -> None:
    path = raw_book(tmp_path / "labels.xlsx", [[SPAN, "a"], [span(2), "b"]])
    add_table(path, "A1:G3")  # two empty table columns right of the data
    write_all(path)
    assert calamine_grid(path)[0] == [*HEADER, "", "", *STATUS_NAMES]


def test_a_sheet_whose_columns_start_right_of_a(tmp_path: Path) -> None:
    path = raw_book(
        tmp_path / "labels.xlsx",
        [[None, None, span(n), f"label {n}", None, None, "ann"] for n in range(1, 4)],
        header=[None, None, *HEADER],
    )
    report = write_all(path)
    assert report.written == 3
    grid = calamine_grid(path)
    assert grid[0][7:] == STATUS_NAMES
    assert [r[9] for r in grid[1:]] == [f"for {span(n)}" for n in range(1, 4)]


# --- error values, looked for while calamine parses the sheet ---------------------------------


@pytest.mark.parametrize("left", [0, 2])
def test_error_values_are_read_as_errors_where_calamine_sees_empty_cells(
    tmp_path: Path, left: int
) -> None:
    pad: list[Any] = [None] * left  # a sheet whose columns start right of A, or at A
    rows = [
        [*pad, SPAN, ErrorValue("#N/A"), 0.5, None, "ann"],
        [*pad, ErrorValue("#REF!"), "b", None, None, "ann"],
        [*pad, span(3), "c", ErrorValue("#DIV/0!"), "fine", ErrorValue("#NAME?")],
        [*pad, span(4), "d", 0.25, None, "ann", ErrorValue("#VALUE!")],  # an unmapped column
    ]
    path = raw_book(tmp_path / "labels.xlsx", rows, header=[*pad, *HEADER])
    got = read(path)
    assert [(r.sheet_row, r.values, r.key, r.occurrence) for r in got] == [
        (
            2,
            {"span_id": SPAN, "label": "#N/A", "score": 0.5, "explanation": "", "annotator": "ann"},
            (SPAN, "ann"),
            0,
        ),
        (
            3,
            {"span_id": "#REF!", "label": "b", "score": "", "explanation": "", "annotator": "ann"},
            ("", "ann"),  # an error is no key
            0,
        ),
        (
            4,
            {
                "span_id": span(3),
                "label": "c",
                "score": "#DIV/0!",
                "explanation": "fine",
                "annotator": "#NAME?",
            },
            (span(3), ""),
            0,
        ),
        (
            5,
            {
                "span_id": span(4),
                "label": "d",
                "score": 0.25,
                "explanation": "",
                "annotator": "ann",
            },
            (span(4), "ann"),
            0,
        ),
    ]
    errors = {
        (r.sheet_row, k) for r in got for k, v in r.values.items() if isinstance(v, CellError)
    }
    assert errors == {(2, "label"), (3, "span_id"), (4, "score"), (4, "annotator")}
    # and the status columns are written right of the unmapped error cell
    write_all(path)
    assert calamine_grid(path)[0][left + 6 :] == STATUS_NAMES
