"""Small builders shared by the source and rules tests: workbooks, CSV files, read specs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import openpyxl

from bridge.records import Row, StatusColumns, StatusUpdate
from bridge.sources.base import ReadSpec

SPAN = "67f6740bbe1ddc3f"
SPAN2 = "0a1b2c3d4e5f6071"
TRACE = "6c4d3e1b8a0f47c2a9e5d1b7c3f0a2e4"

HEADER = ["span_id", "label", "score", "explanation", "annotator"]


def span(n: int) -> str:
    """A valid, distinct span id for row number ``n``."""
    return f"{n:016x}"


def read_spec(
    columns: Sequence[str] = ("span_id", "label", "score", "explanation", "annotator"),
    key_columns: Sequence[str] = ("span_id", "annotator"),
    status: StatusColumns | None = None,
) -> ReadSpec:
    return ReadSpec(
        columns=list(columns), key_columns=list(key_columns), status=status or StatusColumns()
    )


def make_book(
    path: Path,
    rows: Iterable[Sequence[Any]],
    *,
    header: Sequence[Any] | None = HEADER,
    sheet: str = "Labels",
    before: Iterable[Sequence[Any]] = (),
    other_sheets: Sequence[str] = (),
) -> Path:
    """An .xlsx with ``before`` rows (a title, say), then ``header``, then ``rows``."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for r in before:
        ws.append(list(r))
    if header is not None:
        ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    for name in other_sheets:
        wb.create_sheet(name)["A1"] = f"{name} data"
    wb.save(path)
    return path


def update(row: Row, status: str = "synced", message: str = "", **more: str) -> StatusUpdate:
    """The status update the pipeline would make for ``row``."""
    values = {"sync_status": status, "sync_message": message, **more}
    return StatusUpdate(
        sheet_row=row.sheet_row, key=row.key, occurrence=row.occurrence, values=values
    )


def sheet_values(path: Path, sheet: str | None = None) -> list[list[Any]]:
    """Every row of a worksheet as plain values (openpyxl, formulas as their text)."""
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet] if sheet else wb.active
    return [list(r) for r in ws.iter_rows(values_only=True)]


def column_of(
    path: Path, name: str, sheet: str | None = None, header_row: int = 1
) -> dict[Any, Any]:
    """{value of the first column: value of column ``name``} for every data row."""
    rows = sheet_values(path, sheet)
    header = rows[header_row - 1]
    at = header.index(name)
    return {r[0]: r[at] for r in rows[header_row:] if r[0] is not None}
