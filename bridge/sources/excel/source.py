"""Excel (.xlsx) source: fast typed reads with calamine; the status written back by patching
the worksheet's XML in one streaming pass (see ``_xlsx_patch``), with openpyxl as the fallback
for workbooks the patcher does not handle."""

from __future__ import annotations

import contextlib
import difflib
import itertools
import logging
import os
import shutil
import sys
import tempfile
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from copy import copy
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import python_calamine

from bridge._gc import gc_paused
from bridge.errors import SourceError, SourceUnavailable
from bridge.records import CellError, Row, StatusUpdate, WriteReport, safe_text
from bridge.sources._table import (
    column_letter,
    content_at,
    content_positions,
    header_index,
    is_read_only,
    key_part,
    keyless_contents,
    lock_files,
    place_updates,
    read_rows,
    status_positions,
)
from bridge.sources.base import ReadSpec, Source
from bridge.sources.excel.xlsx_patch import (
    MAX_COLUMNS,
    ColumnsInUse,
    InsideArrayFormula,
    PatchUnsupported,
    SheetParts,
    SheetPatch,
    cell_text,
    error_cells,
    find_sheet,
    patch_workbook,
)

log = logging.getLogger(__name__)

_OTHER_FORMATS = {
    ".xls": "an old Excel 97-2003 workbook",
    ".xlsm": "a macro-enabled workbook",
    ".xlsb": "a binary Excel workbook",
    ".ods": "an OpenDocument spreadsheet",
    ".numbers": "a Numbers document",
    ".csv": "a CSV file",
}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _utf16(name: str) -> bytes:
    return name.encode("utf-16-le")


def _unreadable() -> tuple[type[BaseException], ...]:
    """What a reader raises for a file that is no readable .xlsx; openpyxl's error only once
    openpyxl is loaded: it is imported by the write path that uses it, so that reading
    (validate, sync) does not pay for it."""
    found: tuple[type[BaseException], ...] = (
        python_calamine.ZipError,
        python_calamine.XmlError,
        python_calamine.CalamineError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        KeyError,
        ValueError,
    )
    errors = sys.modules.get("openpyxl.utils.exceptions")
    return (*found, errors.InvalidFileException) if errors is not None else found


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn reader errors into SourceErrors that say what is wrong with the file."""
    try:
        yield
    except python_calamine.PasswordError as exc:
        raise SourceError(
            f"{path}: the workbook is password-protected; save an unprotected copy"
        ) from exc
    except _unreadable() as exc:
        raise SourceError(
            f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc}); "
            "open it in Excel and save it as an Excel Workbook (.xlsx)"
        ) from exc
    except PermissionError as exc:
        raise SourceUnavailable(f"{path}: cannot read the workbook: permission denied") from exc
    except OSError as exc:
        raise SourceUnavailable(f"{path}: cannot read the workbook ({exc.strerror})") from exc


@dataclass
class _SheetNow:
    """The worksheet as it is at write time, read with calamine."""

    name: str
    header: list[Any] = field(default_factory=list)
    # each update located by key: (sheet row, update); and the updates whose row is gone
    placed: list[tuple[int, StatusUpdate]] = field(default_factory=list)
    vanished: list[StatusUpdate] = field(default_factory=list)
    # 0-based rightmost column holding a value or covered by a merged range (-1: none)
    last_used: int = -1
    # merged ranges, 0-based (row0, col0, row1, col1), inclusive
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)


@dataclass
class _Plan:
    patch: SheetPatch
    placed: list[tuple[int, StatusUpdate]]
    vanished: list[StatusUpdate]


def _grid_rows(sheet: Any) -> Iterator[list[Any]]:
    """Every row of a calamine sheet from row 1 and column A, one list at a time.

    ``iter_rows`` starts at sheet row 1 but at the first used column: the columns left of it
    are added back here.
    """
    start = sheet.start
    if start is None:
        return iter(())
    if not start[1]:
        return iter(sheet.iter_rows())  # the usual sheet, from column A: calamine's own rows
    pad = [""] * start[1]
    return (pad + cells for cells in sheet.iter_rows())


class _Scan:
    """The rows of a sheet, one at a time, with the error values put back in (calamine gives
    them as empty) and, on the way, the header row and the rightmost column in use."""

    def __init__(
        self, rows: Iterator[list[Any]], errors: dict[tuple[int, int], str], header_row: int
    ) -> None:
        self.rows = rows
        self.errors: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for (row, col), code in errors.items():
            self.errors[row].append((col, code))
        self.header_row = header_row
        self.header: list[Any] = []
        self.last = -1  # 0-based rightmost column holding a value
        self.first = next(rows, None)

    def empty(self) -> bool:
        return self.first is None

    def __iter__(self) -> Iterator[list[Any]]:
        if self.first is None:
            return
        rows = itertools.chain([self.first], self.rows)
        errors, header_row, last = self.errors, self.header_row, self.last
        for r, cells in enumerate(rows, start=1):
            if r in errors:
                cells = list(cells)
                for col, code in errors[r]:
                    if col < len(cells) and cells[col] == "":
                        cells[col] = CellError(code)
            if len(cells) - 1 > last:  # calamine's rows are all as wide: mostly no new column
                for j in range(len(cells) - 1, last, -1):
                    if cells[j] != "":
                        self.last = last = j
                        break
            if r == header_row:
                self.header = cells
            yield cells


class ExcelSource(Source):
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
        # rows without a key, by their content at read time: found again by it when writing
        self._keyless: dict[int, tuple[str, ...]] = {}

    def close(self) -> None:
        """Nothing to let go of: every read and write opens and closes the file itself."""

    @property
    def label(self) -> str:
        return f"{self.path.name}/{self._sheet_name or self.worksheet or ''}".rstrip("/")

    def _check_file(self) -> None:
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such workbook; check source.path in the mapping")
        if self.path.is_dir():
            raise SourceError(
                f"{self.path}: is a folder, not a workbook; set source.path to the .xlsx file"
            )
        suffix = self.path.suffix.lower()
        if suffix in _OTHER_FORMATS:
            also = "set source.type: csv in the mapping, or " if suffix == ".csv" else ""
            raise SourceError(
                f"{self.path}: this is {_OTHER_FORMATS[suffix]}, not an .xlsx workbook; "
                f"{also}save it as an Excel Workbook (.xlsx)"
            )
        if self.path.stat().st_size == 0:
            raise SourceError(f"{self.path}: the file is empty (0 bytes), not a workbook")
        with _reading(self.path), open(self.path, "rb") as fh:
            head = fh.read(len(_OLE_MAGIC))
            if head == _OLE_MAGIC:
                self._not_a_zip_but_ole(fh)
        if not zipfile.is_zipfile(self.path):
            raise SourceError(
                f"{self.path}: not an .xlsx workbook (an .xlsx file is a zip archive); "
                "save it as an Excel Workbook (.xlsx)"
            )
        with _reading(self.path), zipfile.ZipFile(self.path) as zf:
            if "mimetype" in zf.namelist() and b"opendocument" in zf.read("mimetype")[:100]:
                raise SourceError(
                    f"{self.path}: this is an OpenDocument spreadsheet (.ods) with an .xlsx "
                    "name; open it and save it as an Excel Workbook (.xlsx)"
                )

    def _not_a_zip_but_ole(self, fh: IO[bytes]) -> None:
        """An OLE compound file: an encrypted (password-protected) workbook, or an old one."""
        data = fh.read(64 << 20)
        if _utf16("EncryptedPackage") in data or _utf16("EncryptionInfo") in data:
            raise SourceError(
                f"{self.path}: the workbook is encrypted with a password (File > Info > Protect "
                "Workbook > Encrypt with Password), so it cannot be read; save a copy without "
                "the password and point source.path at it"
            )
        if _utf16("Workbook") in data or _utf16("Book") in data:
            raise SourceError(
                f"{self.path}: this is an old Excel 97-2003 workbook (.xls) named .xlsx; open "
                "it in Excel and save it as an Excel Workbook (.xlsx)"
            )
        raise SourceError(
            f"{self.path}: this is an older Office file (an OLE compound document), not an "
            ".xlsx workbook; open it in Excel and save it as an Excel Workbook (.xlsx)"
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
        if near is None:
            close = difflib.get_close_matches(self.worksheet, names, n=1, cutoff=0.6)
            near = close[0] if close else None
        hint = f" (did you mean '{near}'?)" if near else ""
        listing = ", ".join(f"'{n}'" for n in names)
        raise SourceError(
            f"{self.path}: no worksheet '{self.worksheet}'{hint}. Worksheets: {listing}. "
            "Fix source.worksheet in the mapping"
        )

    def read(self, spec: ReadSpec) -> list[Row]:
        self._check_file()
        with _reading(self.path):
            book = python_calamine.CalamineWorkbook.from_path(str(self.path))
            try:
                name = self._pick_sheet(book.sheet_names)
                # calamine lets go of the GIL while it parses the sheet: look for the error
                # cells in the XML meanwhile, in a thread
                with ThreadPoolExecutor(max_workers=1) as pool:
                    errors = pool.submit(self._errors, name)
                    sheet = book.get_sheet_by_name(name)
                    found_errors = errors.result()
                merged = _merged_ranges(sheet.merged_cell_ranges or [])
                where = f"{self.path.name}, worksheet '{name}'"
                scan = _Scan(_grid_rows(sheet), found_errors, self.header_row)
                if scan.empty():
                    raise SourceError(
                        f"{where}: the worksheet is empty; it needs a header row and rows"
                    )
                try:
                    with gc_paused():  # one row at a time: the sheet is never held whole
                        rows = read_rows(scan, self.header_row, spec, where)
                except SourceError as exc:
                    hint = _merged_header_hint(merged, self.header_row)
                    if hint and "not found in header row" in str(exc):
                        raise SourceError(f"{exc}. {hint}") from None
                    raise
            finally:
                book.close()
        self._sheet_name = name
        self._keyless = keyless_contents(rows, spec.columns)
        self._check_room(scan, merged, spec, where)
        return rows

    def _errors(self, name: str) -> dict[tuple[int, int], str]:
        """The cells holding an error value (#N/A, #REF!...), which calamine reads as empty."""
        try:
            with zipfile.ZipFile(self.path) as zf:
                return error_cells(zf, find_sheet(zf, name).part)
        except (PatchUnsupported, zipfile.BadZipFile, zlib.error, KeyError, OSError):
            return {}  # a diagnosis only: the read itself goes on

    def _check_room(
        self, scan: _Scan, merged: list[tuple[int, int, int, int]], spec: ReadSpec, where: str
    ) -> None:
        """Fail before anything is sent when the status columns cannot be added."""
        missing = len(spec.status.names()) - len(status_positions(scan.header, spec.status))
        if not missing:
            return
        last = max([scan.last] + [c1 for _, _, _, c1 in merged])
        if last + missing >= MAX_COLUMNS:
            raise SourceError(
                f"{where}: the sheet uses columns up to {column_letter(last)}, so the "
                f"{missing} status columns ({', '.join(spec.status.names())}) do not fit before "
                f"Excel's last column, XFD; delete unused columns or add the status columns "
                "yourself, right of the data"
            )

    def check_writable(self) -> None:
        locks = lock_files(self.path)
        if locks:
            raise SourceUnavailable(
                f"{self.path}: the workbook is open in Excel or LibreOffice (lock file "
                f"{locks[0].name}); close it and run again (if no program has it open, delete "
                "the lock file). Nothing was sent"
            )
        if is_read_only(self.path):
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

    # --- write-back -----------------------------------------------------------------------

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
        """Write the status columns of ``updates``, locating each row by key now.

        The worksheet's XML is patched in one streaming pass; workbooks the patcher does not
        handle are written with openpyxl instead (cached formula results are then lost).
        """
        if not updates:
            return WriteReport()
        self._check_file()
        why = ""
        parts: SheetParts | None = None
        with _reading(self.path), gc_paused():
            now = self._sheet_now(spec, updates)
            with zipfile.ZipFile(self.path) as zf:
                try:
                    parts = find_sheet(zf, now.name)
                except PatchUnsupported as exc:
                    why = str(exc)
        where = f"{self.path.name}, worksheet '{now.name}'"
        # new columns go right of the tables on the sheet too: a table's header cells must
        # match its column names
        floor = max((t[3] for t in parts.tables), default=-1) if parts else -1
        for _ in range(3):
            with gc_paused():
                plan = self._plan(now, spec, where, floor)
            if parts is None:
                break
            try:
                write = partial(patch_workbook, str(self.path), sheet=parts, patch=plan.patch)
                with _reading(self.path):
                    self._save(write)
            except ColumnsInUse as exc:
                floor = max(floor, exc.last)  # cells a value reader sees as empty: go past them
                continue
            except PatchUnsupported as exc:
                why = str(exc)
            except InsideArrayFormula as exc:
                raise SourceError(
                    f"{where}: cannot write the status into {exc.cell}, which is part of the "
                    f"array formula {exc.ref}; move the formula out of the status columns and "
                    "run again to write the statuses. The workbook is unchanged"
                ) from None
            else:
                return self._report(plan)
            break
        else:
            raise SourceError(  # pragma: no cover - the sheet changed under us three times
                f"{where}: the sheet kept changing while the statuses were written; run again"
            )
        log.warning(
            "%s: %s; writing the status with openpyxl instead, which keeps the formatting but "
            "drops the cached results of formulas until Excel recalculates them",
            where,
            why,
        )
        self._write_with_openpyxl(now.name, plan)
        return self._report(plan)

    @staticmethod
    def _report(plan: _Plan) -> WriteReport:
        moved = sum(1 for row, u in plan.placed if row != u.sheet_row)
        return WriteReport(written=len(plan.placed), vanished=list(plan.vanished), moved=moved)

    def _sheet_now(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> _SheetNow:
        """The header and the used width, read with calamine now, and each update located by
        the keys the rows have now."""
        book = python_calamine.CalamineWorkbook.from_path(str(self.path))
        try:
            name = self._pick_sheet(book.sheet_names)
            sheet = book.get_sheet_by_name(name)
            now = _SheetNow(name, merged=_merged_ranges(sheet.merged_cell_ranges or []))
            where = f"{self.path.name}, worksheet '{name}'"
            last = -1
            count = 0
            keyless = any(not any(u.key) for u in updates)
            contents: dict[int, tuple[str, ...]] = {}

            def keys() -> Iterator[tuple[int, tuple[str, ...]]]:
                nonlocal last, count
                key_cols: list[int] = []
                at: list[int] | None = None
                for r, cells in enumerate(_grid_rows(sheet), start=1):
                    count = r
                    for j in range(len(cells) - 1, last, -1):
                        if cells[j] != "":
                            last = j
                            break
                    if r == self.header_row:
                        now.header = list(cells)
                        index = header_index(now.header, spec.key_columns, where, self.header_row)
                        key_cols = [index[c] for c in spec.key_columns]
                        at = content_positions(now.header, spec.columns) if keyless else None
                    elif r > self.header_row:
                        n = len(cells)
                        key = tuple([key_part(cells[c]) if c < n else "" for c in key_cols])
                        if at is not None and not any(key):
                            contents[r] = content_at(cells, at)
                        yield r, key

            current = list(keys())
            end = sheet.end
            if end is not None and count != end[0] + 1:  # pragma: no cover - calamine changed
                raise SourceError(f"{where}: python-calamine returned {count} rows, not {end[0]}")
        finally:
            book.close()  # calamine holds the whole sheet: let it go before placing
        now.placed, now.vanished = place_updates(current, updates, self._keyless, contents)
        del current
        if not now.header:
            header_index([], spec.key_columns, where, self.header_row)
        now.last_used = max([last] + [c1 for _, _, _, c1 in now.merged])
        return now

    def _plan(self, now: _SheetNow, spec: ReadSpec, where: str, floor: int) -> _Plan:
        positions = status_positions(now.header, spec.status)
        last = max(now.last_used, floor)
        status_cols: dict[str, int] = {}
        new: set[int] = set()
        header: dict[int, str] = {}
        for name in spec.status.names():
            if name in positions:
                status_cols[name] = positions[name]
                continue
            last += 1
            status_cols[name] = last
            new.add(last)
            header[last] = name  # a header we were told to use, as text
        if last >= MAX_COLUMNS:
            raise SourceError(
                f"{where}: the status columns do not fit before Excel's last column, XFD; "
                "delete unused columns or add the status columns yourself, right of the data. "
                "The workbook is unchanged"
            )
        names = {col: name for name, col in status_cols.items()}
        cells: dict[int, Mapping[int, str]] = {
            row: _RowCells(update.values, names) for row, update in now.placed
        }
        if header:
            cells[self.header_row] = header
        merged = _merged_targets(now.merged, cells, set(status_cols.values()))
        if merged:
            raise SourceError(
                f"{where}: cannot write the status into merged cells ({', '.join(merged[:5])}); "
                "unmerge the status columns and run again to write the statuses. The workbook "
                "is unchanged"
            )
        style_from = min(new) - 1 if new and min(new) > 0 else None
        patch = SheetPatch(cells, self.header_row, style_from, frozenset(new))
        return _Plan(patch, now.placed, list(now.vanished))

    def _write_with_openpyxl(self, name: str, plan: _Plan) -> None:
        """The slow path: load the whole workbook with openpyxl, set the cells, save."""
        import openpyxl  # the slow path only: reading never needs it

        with _reading(self.path):
            book = openpyxl.load_workbook(self.path, rich_text=True)
        ws = book[name]
        patch = plan.patch
        left = None
        if patch.style_from is not None:
            left = ws.cell(row=patch.header_row, column=patch.style_from + 1)
        for row, cols in patch.cells.items():
            for col, text in cols.items():
                cell = ws.cell(row=row, column=col + 1)
                cell.value = cell_text(text)
                cell.data_type = "s"  # never a formula, whatever the text
                new_header = row == patch.header_row and col in patch.new_columns
                if new_header and left is not None and left.has_style:
                    cell._style = copy(left._style)

        def save(fh: IO[bytes]) -> None:
            book.save(fh)

        self._save(save)

    def _save(self, write: Callable[[IO[bytes]], None]) -> None:
        save_beside(
            self.path,
            write,
            "could not save the status columns ({reason}); the workbook is unchanged. The "
            "annotations were sent: run again to write the statuses",
        )


def save_beside(path: Path, write: Callable[[IO[bytes]], None], failure: str) -> None:
    """Write a workbook to a temporary file beside ``path``, then put it in its place: a
    reader never sees half a workbook, and a failed save leaves the old one as it was.

    :param failure: the message when saving fails, after the path; ``{reason}`` is the
        operating system's reason.
    """
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=".annobridge.xlsx", dir=path.parent
        )
    except OSError as exc:  # a folder that cannot be written: nothing was changed
        raise SourceUnavailable(f"{path}: " + failure.format(reason=exc.strerror)) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as fh:
            write(fh)
        if path.exists():
            shutil.copymode(path, tmp)  # the original file's mode
        else:  # a new file gets what the umask gives, not mkstemp's 0600
            umask = os.umask(0o022)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        raise SourceUnavailable(f"{path}: " + failure.format(reason=exc.strerror)) from exc
    finally:
        tmp.unlink(missing_ok=True)


class _RowCells(Mapping[int, str]):
    """The status cells of one row, {column: text}, read from its update when needed (a
    100,000-row write-back then holds no second copy of the statuses)."""

    __slots__ = ("_names", "_values")

    def __init__(self, values: Mapping[str, str], names: Mapping[int, str]) -> None:
        self._values = values
        self._names = names  # column -> status column name, shared by every row

    def __getitem__(self, col: int) -> str:
        return safe_text(self._values[self._names[col]])

    def __iter__(self) -> Iterator[int]:
        return (col for col, name in self._names.items() if name in self._values)

    def __len__(self) -> int:
        return sum(1 for name in self._names.values() if name in self._values)


def _merged_ranges(ranges: Sequence[Any]) -> list[tuple[int, int, int, int]]:
    return [(r0, c0, r1, c1) for (r0, c0), (r1, c1) in ranges]


def _merged_targets(
    merged: list[tuple[int, int, int, int]],
    cells: Mapping[int, Mapping[int, str]],
    columns: set[int],
) -> list[str]:
    """The cells to write that a merged range covers (all but its top-left cell)."""
    hits: list[tuple[int, int]] = []
    for r0, c0, r1, c1 in merged:
        cols = [c for c in columns if c0 <= c <= c1]
        if not cols:
            continue
        for r in range(r0, r1 + 1):
            row = cells.get(r + 1)
            if row:
                hits.extend((r, c) for c in cols if c in row and (r, c) != (r0, c0))
    return [f"{column_letter(c)}{r + 1}" for r, c in sorted(hits)]


def _merged_header_hint(merged: list[tuple[int, int, int, int]], header_row: int) -> str:
    spans = [
        f"{column_letter(c0)}{r0 + 1}:{column_letter(c1)}{r1 + 1}"
        for r0, c0, r1, c1 in merged
        if r0 <= header_row - 1 <= r1 and c1 > c0
    ]
    if not spans:
        return ""
    return (
        f"Header cells {', '.join(spans[:5])} are merged, so only the first column of each has "
        "a name: unmerge them and give each column its own name"
    )
