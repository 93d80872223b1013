"""Export into a Google Sheet: the ids already there, rows appended below the last used
row (RAW), and dropdowns and number ranges (setDataValidation) on whole columns.

``GSheetsExport`` is the ExportSink half of ``GSheetsSource``: one adapter both syncs a sheet
and takes exported rows, so the registry opens the same class for both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from gspread.urls import SPREADSHEETS_API_V4_BASE_URL

from bridge.errors import BridgeError, SourceError
from bridge.records import AppendReport, Validation, list_problem, safe_text
from bridge.sources._table import header_index, key_part, near_name
from bridge.sources.base import ExportSink
from bridge.sources.gsheets.data import parse_range, request_body, write_chunks
from bridge.sources.gsheets.worksheet import Layout, Worksheet

# Google Sheets' limit on the characters in one cell (Google's "Files you can store in
# Google Drive" help page).
SHEETS_CELL_LIMIT = 50_000
NOTHING_APPENDED = "No row was appended; run again."


class GSheetsExport(Worksheet, ExportSink):
    """What ``annobridge export`` needs of a worksheet (``bridge.sources.base.ExportSink``)."""

    cell_limit = SHEETS_CELL_LIMIT

    @contextlib.contextmanager
    def _exporting(
        self, phase: str, landed: Callable[[], str] = lambda: NOTHING_APPENDED
    ) -> Iterator[None]:
        """Google's errors, said for an export: nothing was sent, and what was appended
        (``landed``: no row, or the sheet rows an earlier request of a large append wrote)."""
        try:
            with self._google(phase):
                yield
        except BridgeError as exc:
            text = str(exc).replace(self._after(phase), landed())
            raise type(exc)(text) from None

    def _export_layout(self) -> Layout:
        """The tab's layout, known once it was read (``_export_read``)."""
        if self._layout is None:  # pragma: no cover - _export_read always sets it
            raise SourceError(f"{self._where()}: the worksheet was not read; run again")
        return self._layout

    def _export_read(self) -> list[list[Any]]:
        """The whole worksheet now (one request), and what it says about the grid."""
        with self._exporting("read"):
            return self._take(*self._read_values())[1]

    def existing_ids(self, id_column: str) -> set[str]:
        """The ids in ``id_column`` on every data row; empty for a sheet without a header."""
        values = self._export_read()
        h = self.header_row
        if len(values) < h or not any(key_part(c) for c in values[h - 1]):
            return set()
        names = [n for n in (key_part(c) for c in values[h - 1]) if n]
        if id_column not in names and not near_name(id_column, names):
            return set()  # append_rows adds the column
        at = header_index(values[h - 1], [id_column], self._where(), h)[id_column]
        found = {key_part(row[at]) for row in values[h:] if at < len(row)}
        found.discard("")
        return found

    def append_rows(self, header: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> AppendReport:
        """Write ``rows`` below the last used row, RAW, in one values:batchUpdate per ~25k rows.

        The worksheet is read again first, so rows SMEs added meanwhile are not overwritten.
        On a sheet with no header, ``header`` is written first; on one with a header, columns
        the rows fill and it lacks are added right of the last used column. The grid grows
        (appendDimension) when the rows or columns do not fit.
        """
        values = self._export_read()
        layout = self._export_layout()
        h = self.header_row
        header_now = values[h - 1] if len(values) >= h else []
        columns: dict[str, int] = {}
        for i, cell in enumerate(header_now):
            name = key_part(cell)
            if name and name not in columns:
                columns[name] = i
        report = AppendReport()
        cells: dict[tuple[int, int], str] = {}
        width = layout.width
        if not columns:
            if len(values) >= h and any(any(key_part(c) for c in r) for r in values[h:]):
                raise SourceError(
                    f"{self._where()}: header row {h} is empty but rows below it hold values; "
                    "put the column names in the header row (or set header_row)"
                )
            for i, name in enumerate(header):
                cells[(h, i)] = safe_text(name)
                columns[name] = i
            report.added_columns = list(header)
            width = max(width, len(header))
        for name in dict.fromkeys(k for row in rows for k, v in row.items() if v):
            if name not in columns:
                cells[(h, width)] = safe_text(name)
                columns[name] = width
                report.added_columns.append(name)
                width += 1
        start = max(len(values), h) + 1
        for i, row in enumerate(rows):
            for name, value in row.items():
                cells[(start + i, columns[name])] = "" if value is None else str(value)
        last = start + len(rows) - 1
        written: list[int] = []  # the sheet rows of new records that landed, in order

        def landed() -> str:
            return _landed(written, start, last)

        with self._exporting("write", landed):
            if layout.grid_rows and last > layout.grid_rows:
                self._grow(layout, "ROWS", last - layout.grid_rows)
                layout.grid_rows = last
            needed = max(col for _, col in cells) + 1
            if layout.grid_cols and needed > layout.grid_cols:
                self._widen(layout, needed - layout.grid_cols)
            url = f"{SPREADSHEETS_API_V4_BASE_URL}/{self.key}/values:batchUpdate"
            headers = {"Content-Type": "application/json; charset=utf-8"}
            for data in write_chunks(
                cells, layout.title, max_rows=self.max_write_rows, max_bytes=self.max_write_bytes
            ):
                self._http().request("post", url, data=request_body(data), headers=headers)
                sent = {r for entry in data for r in _rows_of(entry["range"])}
                written.extend(sorted(r for r in sent if start <= r <= last))
        report.first_row, report.last_row = start, last
        return report

    def _grow(self, layout: Layout, dimension: str, length: int) -> None:
        sheet_id = self._export_sheet_id(layout)
        body = {
            "requests": [
                {"appendDimension": {"sheetId": sheet_id, "dimension": dimension, "length": length}}
            ]
        }
        self._http().batch_update(self.key, body)

    def _export_sheet_id(self, layout: Layout) -> int:
        if layout.sheet_id is None:
            match = [p for p in self._sheets() if p.get("title") == layout.title]
            if not match:
                raise SourceError(f"{self._where()}: the worksheet was renamed or deleted")
            layout.sheet_id = int(match[0]["sheetId"])
        return layout.sheet_id

    def add_validations(self, validations: Sequence[Validation]) -> list[str]:
        """Dropdowns (ONE_OF_LIST) and number ranges on whole columns below the header, in
        one spreadsheets.batchUpdate of setDataValidation requests, which replace the rule a
        range had: running it again changes nothing."""
        if not validations:
            return []
        values = self._export_read()
        layout = self._export_layout()
        h = self.header_row
        header_now = values[h - 1] if len(values) >= h else []
        columns: dict[str, int] = {}
        for i, cell in enumerate(header_now):
            columns.setdefault(key_part(cell), i)
        said: list[str] = []
        requests_: list[dict[str, Any]] = []
        with self._exporting("write"):
            sheet_id = self._export_sheet_id(layout)
            for v in validations:
                col = columns.get(v.column)
                if col is None or not v.column:
                    said.append(f"{v.column}: no such column in the header; no rule added")
                    continue
                rule = _sheets_rule(v)
                if rule is None:
                    said.append(f"{v.column}: no dropdown ({list_problem(v.options)})")
                    continue
                requests_.append(
                    {
                        "setDataValidation": {
                            "range": {
                                "sheetId": sheet_id,
                                "startRowIndex": h,
                                "startColumnIndex": col,
                                "endColumnIndex": col + 1,
                            },
                            "rule": rule,
                        }
                    }
                )
                said.append(v.describe())
            if requests_:
                self._http().batch_update(self.key, {"requests": requests_})
        return said


def _rows_of(a1_range: str) -> range:
    grid = parse_range(a1_range)
    return range(grid.first_row, grid.last_row + 1)


def _spans(rows: Sequence[int]) -> str:
    """``2–3, 7`` for the sorted rows 2, 3 and 7."""
    runs: list[list[int]] = []
    for r in rows:
        if runs and r == runs[-1][1] + 1:
            runs[-1][1] = r
        else:
            runs.append([r, r])
    return ", ".join(f"{a}–{b}" if b > a else str(a) for a, b in runs)


def _landed(written: Sequence[int], start: int, last: int) -> str:
    """What an append that stopped midway left: no row, or which sheet rows landed."""
    if not written:
        return NOTHING_APPENDED
    total = last - start + 1
    missing = sorted(set(range(start, last + 1)) - set(written))
    rows = "row" if len(written) == 1 else "rows"
    return (
        f"{len(written)} of the {total} new rows were appended before it stopped: sheet "
        f"{rows} {_spans(sorted(written))}; sheet rows {_spans(missing)} were not. Run again "
        "to append the rest (export skips the ids already in the sheet)."
    )


def _sheets_rule(v: Validation) -> dict[str, Any] | None:
    """A Sheets DataValidationRule: strict, with the dropdown shown."""
    if v.kind == "list":
        if list_problem(v.options):
            return None
        condition: dict[str, Any] = {
            "type": "ONE_OF_LIST",
            "values": [{"userEnteredValue": o} for o in v.options],
        }
    elif v.minimum is not None and v.maximum is not None:
        condition = {
            "type": "NUMBER_BETWEEN",
            "values": [
                {"userEnteredValue": repr(float(v.minimum))},
                {"userEnteredValue": repr(float(v.maximum))},
            ],
        }
    elif v.minimum is not None:
        condition = {
            "type": "NUMBER_GREATER_THAN_EQ",
            "values": [{"userEnteredValue": repr(float(v.minimum))}],
        }
    else:
        condition = {
            "type": "NUMBER_LESS_THAN_EQ",
            "values": [{"userEnteredValue": repr(float(v.maximum or 0))}],
        }
    return {
        "condition": condition,
        "strict": True,
        "showCustomUi": v.kind == "list",
        "inputMessage": v.describe(),
    }
