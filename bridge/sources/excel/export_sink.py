"""Excel side of ``annobridge export``: which ids a workbook holds, new rows below the last
used row, and data validations (dropdowns, number ranges) on the label and score columns.

Rows are appended with openpyxl (a full load and an atomic save through a temporary file
beside the workbook): formatting, other sheets, formulas, comments and existing validations
survive; cached formula results do not, until Excel or LibreOffice recalculates on open
(the same trade-off as the openpyxl path of the status write-back). No existing cell is
changed: new rows start below the last row that holds a value, and new header cells go right
of the last used column. Every text cell is written as text (``data_type = "s"``), never as
a formula.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping, Sequence
from copy import copy
from pathlib import Path
from typing import Any

import openpyxl
import python_calamine
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.cell_range import MultiCellRange
from openpyxl.worksheet.datavalidation import DataValidation

from bridge.errors import SourceError, SourceUnavailable
from bridge.records import AppendReport, StatusColumns, Validation, list_problem, web_address
from bridge.sources._table import column_letter, key_part, near_name
from bridge.sources.base import ExportSink, ReadSpec
from bridge.sources.excel.source import ExcelSource, save_beside

# Excel's limit on the characters in one cell (Excel specifications and limits).
EXCEL_CELL_LIMIT = 32_767

log = logging.getLogger(__name__)

MAX_ROWS = 1_048_576
# Excel refuses list validations whose formula is longer than 255 characters.
MAX_LIST_VALIDATION = 255


def _clean(text: str) -> str:
    """Text an .xlsx cell can hold: XML-illegal control characters become U+FFFD."""
    return str(ILLEGAL_CHARACTERS_RE.sub("\ufffd", text))


class ExcelExportSink(ExportSink):
    """A worksheet of an .xlsx workbook that export appends to.

    :param path: the workbook; created (with the header) when it does not exist yet.
    :param worksheet: the sheet's name; the first sheet when None.
    :param header_row: 1-based row of the column names.
    """

    cell_limit = EXCEL_CELL_LIMIT

    def __init__(self, path: Path, worksheet: str | None = None, header_row: int = 1) -> None:
        self.path = Path(path)
        self.worksheet = worksheet
        self.header_row = header_row
        self._source = ExcelSource(self.path, worksheet, header_row)
        # the workbook as this object last saved it, and the file's (mtime, size) then: an
        # append followed by add_validations loads the workbook once, not twice
        self._saved: tuple[Any, Any, tuple[int, int]] | None = None

    def close(self) -> None:
        """Nothing to let go of: every read and write opens and closes the file itself."""

    @property
    def label(self) -> str:
        return self._source.label if self.path.exists() else f"{self.path.name}/{self._title()}"

    def _title(self) -> str:
        return self.worksheet or "Labels"

    # -- reading ------------------------------------------------------------------------

    def existing_ids(self, id_column: str) -> set[str]:
        """The ids in ``id_column`` on every data row; empty for a new or blank sheet, and for
        a header without the column (``append_rows`` adds it), unless a header cell is a
        near miss of it (then the reader's error, with its "did you mean")."""
        if not self.path.exists():
            return set()
        spec = ReadSpec(columns=[id_column], key_columns=[id_column], status=StatusColumns())
        try:
            rows = self._source.read(spec)
        except SourceError:
            names = self._header_names()
            if names is not None and id_column not in names and not near_name(id_column, names):
                return set()
            raise
        return {row.key[0] for row in rows if row.key and row.key[0]}

    def _header_names(self) -> list[str] | None:
        """The names in the header row ([] when it is empty); None when the worksheet is
        missing or the file unreadable."""
        try:
            book = python_calamine.CalamineWorkbook.from_path(str(self.path))
        except Exception:  # noqa: BLE001 - the caller re-raises the reader's own error
            return None
        try:
            names: list[str] = list(book.sheet_names)
            name = self.worksheet if self.worksheet is not None else (names or [""])[0]
            if name not in names:
                return None
            grid = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
        finally:
            book.close()
        if len(grid) < self.header_row:
            return []
        return [n for n in (key_part(c) for c in grid[self.header_row - 1]) if n]

    # -- writing ------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Any]:
        if not self.path.exists():
            book = openpyxl.Workbook()
            ws = book.active
            ws.title = self._title()
            return book, ws
        self._source.check_writable()
        if self._saved is not None and self._saved[2] == _stamp(self.path):
            return self._saved[0], self._saved[1]  # unchanged since we saved it
        try:
            book = openpyxl.load_workbook(self.path, rich_text=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise SourceError(
                f"{self.path}: not a readable .xlsx workbook ({type(exc).__name__}); open it "
                "in Excel and save it as an Excel Workbook (.xlsx)"
            ) from None
        except OSError as exc:
            raise SourceUnavailable(
                f"{self.path}: cannot read the workbook ({exc.strerror})"
            ) from exc
        if self.worksheet is None:
            return book, book.worksheets[0]
        if self.worksheet not in book.sheetnames:
            raise SourceError(
                f"{self.path}: no worksheet '{self.worksheet}'. Worksheets: "
                f"{', '.join(repr(n) for n in book.sheetnames)}. Fix source.worksheet in the "
                "mapping"
            )
        return book, book[self.worksheet]

    def _header(self, ws: Any) -> dict[str, int]:
        """Column name -> 1-based column, as the header row is now."""
        found: dict[str, int] = {}
        for cell in ws[self.header_row] if ws.max_row >= self.header_row else ():
            name = key_part(cell.value)
            if name and name not in found:
                found[name] = cell.column
        return found

    def _used(self, ws: Any) -> tuple[int, int]:
        """The last row and the last column (1-based) that hold a value; 0 when none."""
        last_row = last_col = 0
        for r, cells in enumerate(ws.iter_rows(values_only=True), start=1):
            for c in range(len(cells), 0, -1):
                value = cells[c - 1]
                if value is not None and value != "":
                    last_row = r
                    last_col = max(last_col, c)
                    break
        return last_row, last_col

    def append_rows(self, header: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> AppendReport:
        """Write ``rows`` (column name -> value) below the last used row.

        On a sheet with no header yet, ``header`` is written first (in bold). On a sheet with
        one, columns the rows fill and the header lacks are added right of the last used
        column. Nothing else is changed.
        """
        book, ws = self._load()
        h = self.header_row
        columns = self._header(ws)
        last_row, last_col = self._used(ws)
        report = AppendReport()
        if not columns:
            if last_row >= h:
                raise SourceError(
                    f"{self.label}: header row {h} is empty but rows below it hold values; "
                    "put the column names in the header row (or set header_row)"
                )
            bold = Font(bold=True)
            for i, name in enumerate(header, start=1):
                cell = ws.cell(row=h, column=i, value=name)
                cell.data_type = "s"
                cell.font = bold
                ws.column_dimensions[column_letter(i - 1)].width = max(12, min(len(name) + 2, 40))
                columns[name] = i
            ws.freeze_panes = ws.cell(row=h + 1, column=1).coordinate
            report.added_columns = list(header)
            last_col = len(header)
        filled = [n for n in dict.fromkeys(k for row in rows for k, v in row.items() if v)]
        for name in filled:
            if name in columns:
                continue
            last_col += 1
            cell = ws.cell(row=h, column=last_col, value=name)
            cell.data_type = "s"
            left = ws.cell(row=h, column=last_col - 1) if last_col > 1 else None
            if left is not None and left.has_style:
                cell._style = copy(left._style)
            columns[name] = last_col
            report.added_columns.append(name)
        start = max(last_row, h) + 1
        if start + len(rows) - 1 > MAX_ROWS:
            raise SourceError(
                f"{self.label}: {len(rows)} more rows do not fit below row {start - 1} (Excel "
                f"stops at {MAX_ROWS:,} rows); export fewer with --limit"
            )
        link_style = "Hyperlink"
        for i, row in enumerate(rows):
            r = start + i
            for name, value in row.items():
                if value is None or value == "":
                    continue
                cell = ws.cell(row=r, column=columns[name])
                text = _clean(str(value))
                cell.value = text
                cell.data_type = "s"  # text, never a formula
                url = web_address(text)  # nothing but a web address: a clickable link
                if url:
                    cell.hyperlink = url
                    cell.style = link_style
        report.first_row, report.last_row = start, start + len(rows) - 1
        self._save(book)
        self._saved = (book, ws, _stamp(self.path))
        return report

    def add_validations(self, validations: Sequence[Validation]) -> list[str]:
        """A dropdown or number range on each column, from the header row down to the end
        of the sheet. A column that has the same rule already is left alone; a rule of ours
        or the SMEs' confined to that column is replaced; a rule shared with other columns is
        kept, and the column gets none (Excel refuses overlapping rules)."""
        if not validations or not self.path.exists():
            return []
        book, ws = self._load()
        columns = self._header(ws)
        said: list[str] = []
        changed = False
        for v in validations:
            col = columns.get(v.column)
            if col is None:
                said.append(f"{v.column}: no such column in the header; no rule added")
                continue
            dv, why = _validation(v)
            if dv is None:
                said.append(f"{v.column}: no dropdown ({why})")
                continue
            letter = column_letter(col - 1)
            area = f"{letter}{self.header_row + 1}:{letter}{MAX_ROWS}"
            state = _replace_rules(ws, dv, col, area)
            if state == "shared":
                said.append(
                    f"{v.column}: left as it is (a data validation there also covers other columns)"
                )
                continue
            if state == "same":
                said.append(f"{v.describe()} (already there)")
                continue
            dv.add(area)
            ws.add_data_validation(dv)
            changed = True
            said.append(v.describe())
        if changed:
            self._save(book)
            self._saved = (book, ws, _stamp(self.path))
        return said

    def _save(self, book: Any) -> None:
        """Save to a temporary file beside the workbook, then put it in its place."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_beside(self.path, book.save, "could not save the workbook ({reason}); it is unchanged")


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _validation(v: Validation) -> tuple[DataValidation | None, str]:
    if v.kind == "list":
        why = list_problem(v.options, MAX_LIST_VALIDATION - 2)
        if why:
            return None, why
        dv = DataValidation(type="list", formula1=f'"{",".join(v.options)}"', allow_blank=True)
        dv.error = f"Choose one of: {', '.join(v.options)}"
    else:
        low, high = v.minimum, v.maximum
        if low is not None and high is not None:
            dv = DataValidation(
                type="decimal",
                operator="between",
                formula1=repr(float(low)),
                formula2=repr(float(high)),
            )
        elif low is not None:
            dv = DataValidation(
                type="decimal", operator="greaterThanOrEqual", formula1=repr(float(low))
            )
        else:
            dv = DataValidation(
                type="decimal", operator="lessThanOrEqual", formula1=repr(float(high or 0))
            )
        dv.allow_blank = True
        dv.error = f"A number from {_bound(low, '-inf')} to {_bound(high, 'inf')}"
    dv.showErrorMessage = True
    dv.errorTitle = v.title or v.column
    return dv, ""


def _bound(value: float | None, none: str) -> str:
    if value is None:
        return none
    return str(int(value)) if float(value).is_integer() else str(value)


def _same(a: DataValidation, b: DataValidation) -> bool:
    return (a.type, a.operator, a.formula1, a.formula2) == (
        b.type,
        b.operator,
        b.formula1,
        b.formula2,
    )


def _replace_rules(ws: Any, wanted: DataValidation, col: int, area: str) -> str:
    """Make room for ``wanted`` on column ``col``: "same" (already there), "shared" (a rule
    covering other columns too is in the way), or "replaced" (rules confined to the column
    were removed)."""
    holder = ws.data_validations
    mine: list[tuple[DataValidation, Any]] = []
    for dv in holder.dataValidation:
        for rng in dv.sqref.ranges:
            if rng.max_col < col or rng.min_col > col:
                continue
            if rng.min_col != col or rng.max_col != col:
                return "shared"
            mine.append((dv, rng))
    if any(_same(dv, wanted) and rng.coord == area for dv, rng in mine):
        return "same"
    for dv, rng in mine:
        rest = [r.coord for r in dv.sqref.ranges if r.coord != rng.coord]
        dv.sqref = MultiCellRange(" ".join(rest))
    holder.dataValidation = [dv for dv in holder.dataValidation if dv.sqref.ranges]
    return "replaced"
