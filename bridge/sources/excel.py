"""Excel (.xlsx) source: fast typed reads with calamine, status write-back with openpyxl."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from copy import copy
from pathlib import Path
from typing import Any

import openpyxl
import python_calamine
from openpyxl.utils.exceptions import InvalidFileException

from bridge.errors import SourceError, SourceUnavailable
from bridge.records import Row, StatusUpdate, WriteReport, safe_text
from bridge.sources._table import header_index, key_part, place_updates, rows_from_grid
from bridge.sources.base import ReadSpec

_OTHER_FORMATS = {
    ".xls": "an old Excel 97-2003 workbook",
    ".xlsm": "a macro-enabled workbook",
    ".xlsb": "a binary Excel workbook",
    ".ods": "an OpenDocument spreadsheet",
    ".numbers": "a Numbers document",
    ".csv": "a CSV file (use source type: csv)",
}


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn reader errors into SourceErrors that say what is wrong with the file."""
    try:
        yield
    except python_calamine.PasswordError as exc:
        raise SourceError(
            f"{path}: the workbook is password-protected; save an unprotected copy"
        ) from exc
    except (
        python_calamine.ZipError,
        python_calamine.XmlError,
        python_calamine.CalamineError,
        zipfile.BadZipFile,
        InvalidFileException,
        KeyError,
        ValueError,
    ) as exc:
        raise SourceError(
            f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc}); "
            "open it in Excel and save it as an Excel Workbook (.xlsx)"
        ) from exc
    except PermissionError as exc:
        raise SourceUnavailable(f"{path}: cannot read the workbook: permission denied") from exc
    except OSError as exc:
        raise SourceUnavailable(f"{path}: cannot read the workbook ({exc.strerror})") from exc


class ExcelSource:
    """A worksheet of an .xlsx workbook.

    :param path: the workbook.
    :param worksheet: the sheet's name; the first sheet when None.
    :param header_row: 1-based row of the column names.
    """

    def __init__(self, path: Path, worksheet: str | None = None, header_row: int = 1) -> None:
        self.path = Path(path)
        self.worksheet = worksheet
        self.header_row = header_row
        self._sheet_name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path.name}/{self._sheet_name or self.worksheet or ''}".rstrip("/")

    def _check_file(self) -> None:
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such workbook; check source.path in the mapping")
        suffix = self.path.suffix.lower()
        if suffix in _OTHER_FORMATS:
            raise SourceError(
                f"{self.path}: this is {_OTHER_FORMATS[suffix]}, not an .xlsx workbook; "
                "save it as an Excel Workbook (.xlsx)"
            )
        if self.path.stat().st_size == 0:
            raise SourceError(f"{self.path}: the file is empty (0 bytes), not a workbook")
        if not zipfile.is_zipfile(self.path):
            raise SourceError(
                f"{self.path}: not an .xlsx workbook (an .xlsx file is a zip archive); "
                "save it as an Excel Workbook (.xlsx)"
            )

    def _pick_sheet(self, names: Sequence[str]) -> str:
        if not names:
            raise SourceError(f"{self.path}: the workbook has no worksheets")
        if self.worksheet is None:
            return names[0]
        if self.worksheet in names:
            return self.worksheet
        stripped = {n.strip().casefold(): n for n in names}
        near = stripped.get(self.worksheet.strip().casefold())
        hint = f"; did you mean '{near}'?" if near else ""
        listing = ", ".join(f"'{n}'" for n in names)
        raise SourceError(
            f"{self.path}: no worksheet '{self.worksheet}'{hint} Worksheets: {listing}"
        )

    def read(self, spec: ReadSpec) -> list[Row]:
        self._check_file()
        with _reading(self.path):
            book = python_calamine.CalamineWorkbook.from_path(str(self.path))
            try:
                name = self._pick_sheet(book.sheet_names)
                grid = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
            finally:
                book.close()
        self._sheet_name = name
        where = f"{self.path.name}, worksheet '{name}'"
        if not grid:
            raise SourceError(f"{where}: the worksheet is empty; it needs a header row and rows")
        return rows_from_grid(
            grid, self.header_row, spec.columns, spec.key_columns, spec.status, where
        )

    def _lock_files(self) -> list[Path]:
        # Excel keeps "~$name.xlsx" beside an open workbook, LibreOffice ".~lock.name.xlsx#".
        d, n = self.path.parent, self.path.name
        return [p for p in (d / f"~${n}", d / f".~lock.{n}#") if p.exists()]

    def check_writable(self) -> None:
        locks = self._lock_files()
        if locks:
            raise SourceUnavailable(
                f"{self.path}: the workbook is open in Excel or LibreOffice (lock file "
                f"{locks[0].name}); close it and run again. Nothing was sent"
            )
        if not os.access(self.path, os.W_OK):
            raise SourceUnavailable(
                f"{self.path}: the workbook is read-only; make it writable (the status columns "
                "are written back into it). Nothing was sent"
            )
        if not os.access(self.path.parent, os.W_OK):
            raise SourceUnavailable(
                f"{self.path.parent}: the folder is read-only; the workbook is saved through a "
                "temporary file beside it. Nothing was sent"
            )
        try:
            with open(self.path, "r+b"):
                pass
        except OSError as exc:
            raise SourceUnavailable(
                f"{self.path}: cannot open the workbook for writing ({exc.strerror}); "
                "close other programs using it. Nothing was sent"
            ) from exc

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
        if not updates:
            return WriteReport()
        with _reading(self.path):
            book = openpyxl.load_workbook(self.path, rich_text=True)
        name = self._pick_sheet(book.sheetnames)
        ws = book[name]
        where = f"{self.path.name}, worksheet '{name}'"
        header = [c.value for c in ws[self.header_row]] if ws.max_row >= self.header_row else []
        status_cols = self._ensure_status_header(ws, header, spec)
        key_index = header_index(header, spec.key_columns, where, self.header_row)
        key_cols = [key_index[c] for c in spec.key_columns]
        current = self._current_keys(ws, key_cols)
        placed, vanished = place_updates(current, updates)
        for sheet_row, update in placed:
            for col_name, text in update.values.items():
                cell = ws.cell(row=sheet_row, column=status_cols[col_name] + 1)
                cell.value = safe_text(text)
                cell.data_type = "s"  # never a formula, whatever the text
        self._save(book)
        moved = sum(1 for row, u in placed if row != u.sheet_row)
        return WriteReport(written=len(placed), vanished=list(vanished), moved=moved)

    def _ensure_status_header(self, ws: Any, header: list[Any], spec: ReadSpec) -> dict[str, int]:
        positions = {key_part(v): i for i, v in enumerate(header) if key_part(v)}
        last = max((i for i, v in enumerate(header) if key_part(v)), default=-1)
        out: dict[str, int] = {}
        for name in spec.status.names():
            if name in positions:
                out[name] = positions[name]
                continue
            last += 1
            cell = ws.cell(row=self.header_row, column=last + 1)
            cell.value = name
            cell.data_type = "s"
            if last > 0:
                left = ws.cell(row=self.header_row, column=last)
                if left.has_style:
                    cell._style = copy(left._style)
            out[name] = last
            header.append(name)
        return out

    def _current_keys(self, ws: Any, key_cols: list[int]) -> Iterator[tuple[int, tuple[str, ...]]]:
        lo, hi = min(key_cols), max(key_cols)
        for r, cells in enumerate(
            ws.iter_rows(
                min_row=self.header_row + 1, min_col=lo + 1, max_col=hi + 1, values_only=True
            ),
            start=self.header_row + 1,
        ):
            yield r, tuple(key_part(cells[c - lo]) for c in key_cols)

    def _save(self, book: Any) -> None:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=".annobridge.xlsx", dir=self.path.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            book.save(tmp)
            shutil.copymode(self.path, tmp)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise SourceUnavailable(
                f"{self.path}: could not save the status columns ({exc.strerror}); the workbook "
                "is unchanged. The annotations were sent: run again to write the statuses"
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
