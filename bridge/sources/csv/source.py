"""CSV source: rows from a CSV file, status columns written back into the same file."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bridge.errors import SourceError, SourceUnavailable
from bridge.records import Row, StatusUpdate, WriteReport, safe_text
from bridge.sources._table import (
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

_BOM = "\ufeff"
# The csv module refuses cells over 128 KiB by default and would fail the whole file; a long
# cell is the rules' to report, on its own row ("explanation is 1,000,000 characters").
_FIELD_LIMIT = 1 << 30


class CsvSource(Source):
    """A CSV file of labels. Every cell is text; numbers are parsed by the rules.

    :param path: the file.
    :param header_row: 1-based row of the column names.
    :param delimiter: the field separator.
    :param encoding: the text encoding; a UTF-8 byte-order mark is kept as found.
    """

    def __init__(
        self,
        path: Path,
        header_row: int = 1,
        delimiter: str = ",",
        encoding: str = "utf-8-sig",
    ) -> None:
        self.path = Path(path)
        self.header_row = header_row
        self.delimiter = delimiter
        self.encoding = encoding
        # rows without a key, by their content at read time: found again by it when writing
        self._keyless: dict[int, tuple[str, ...]] = {}

    def close(self) -> None:
        """Nothing to let go of: every read and write opens and closes the file itself."""

    @property
    def label(self) -> str:
        return self.path.name

    def _load(self) -> tuple[list[list[str]], bool, str]:
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file; check source.path in the mapping")
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise SourceUnavailable(f"{self.path}: cannot read the file ({exc.strerror})") from exc
        if raw.startswith(b"PK\x03\x04"):
            raise SourceError(
                f"{self.path}: this is an Excel workbook (or another zip file), not a CSV file; "
                "set source.type: excel in the mapping"
            )
        encoding = "utf-8" if self.encoding.lower() in ("utf-8-sig", "utf8-sig") else self.encoding
        wide = encoding.lower().replace("_", "-").startswith(("utf-16", "utf16", "utf-32", "utf32"))
        nul = SourceError(
            f"{self.path}: the file contains NUL bytes, so it is not {self.encoding} text; if "
            "it was saved as 'Unicode Text' (UTF-16), set source.encoding: utf-16 in the "
            "mapping, or save it again as 'CSV UTF-8'"
        )
        if not wide and (b"\0" in raw or raw.startswith((b"\xff\xfe", b"\xfe\xff"))):
            raise nul
        try:
            text = raw.decode(encoding)
        except LookupError as exc:
            raise SourceError(
                f"{self.path}: unknown encoding '{self.encoding}'; set source.encoding in the "
                "mapping to one Python knows, e.g. utf-8, cp1252 or latin-1"
            ) from exc
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            bad = raw[exc.start : exc.start + 1].hex()
            raise SourceError(
                f"{self.path}: line {line} is not valid {self.encoding} (byte 0x{bad}); the file "
                "was probably saved in another encoding: set source.encoding in the mapping "
                "(cp1252 for Excel on Windows, latin-1), or save the file again as 'CSV UTF-8'"
            ) from exc
        if "\0" in text:
            raise nul
        bom = text.startswith(_BOM)
        text = text.removeprefix(_BOM)
        newline = "\r\n" if "\r\n" in text[:65536] else "\n"
        if csv.field_size_limit() < _FIELD_LIMIT:
            csv.field_size_limit(_FIELD_LIMIT)
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter)
            grid: list[list[str]] = []
            starts: list[int] = []  # the line each row starts on
            line = 0
            for row in reader:
                starts.append(line + 1)
                grid.append(row)
                line = reader.line_num
        except csv.Error as exc:
            raise SourceError(f"{self.path}: not a readable CSV file ({exc})") from exc
        self._check_quotes(text, grid, starts)
        return grid, bom, newline

    def _check_quotes(self, text: str, grid: list[list[str]], starts: list[int]) -> None:
        """A quote opened and never closed swallows the rest of the file into one cell."""
        if not grid or not text.rstrip("\r\n"):
            return
        try:
            for _ in csv.reader(
                io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True
            ):
                pass
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                return  # other slips (a stray quote inside a field) read as the text they show
            raise SourceError(
                f'{self.path}: line {starts[-1]} opens a quoted field (") that is never '
                "closed, so everything after it would be read as one cell; close the quote "
                "or remove it, and run again"
            ) from None

    def read(self, spec: ReadSpec) -> list[Row]:
        grid, _, _ = self._load()
        if not grid:
            raise SourceError(f"{self.path}: the file is empty; it needs a header row and rows")
        try:
            rows = read_rows(grid, self.header_row, spec, self.path.name)
        except SourceError:
            other = self._other_delimiter(grid, spec.columns)
            if other is None:
                raise
            raise SourceError(
                f"{self.path}: the columns are separated by {json.dumps(other)}, not "
                f"{json.dumps(self.delimiter)}; set source.delimiter: {json.dumps(other)} in the "
                "mapping"
            ) from None
        self._keyless = keyless_contents(rows, spec.columns)
        return rows

    def _other_delimiter(self, grid: list[list[str]], wanted: Sequence[str]) -> str | None:
        """The separator that would make the header row hold the wanted columns, if any."""
        if len(grid) < self.header_row:
            return None
        line = self.delimiter.join(grid[self.header_row - 1])
        for other in (";", "\t", ",", "|"):
            if other == self.delimiter or other not in line:
                continue
            names = {c.strip() for c in next(csv.reader([line], delimiter=other))}
            if all(w.strip() in names for w in wanted):
                return other
        return None

    def check_writable(self) -> None:
        locks = lock_files(self.path)
        if locks:
            raise SourceUnavailable(
                f"{self.path}: the file is open in Excel or LibreOffice (lock file "
                f"{locks[0].name}); close it and run again (if no program has it open, delete "
                "the lock file). Nothing was sent"
            )
        if is_read_only(self.path) or not os.access(self.path.parent, os.W_OK):
            raise SourceUnavailable(
                f"{self.path}: the file or its folder is read-only; make it writable (the status "
                "columns are written back into it). Nothing was sent"
            )

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
        if not updates:
            return WriteReport()
        grid, bom, newline = self._load()
        if len(grid) < self.header_row:
            raise SourceError(
                f"{self.path}: header row {self.header_row} is gone (the file has "
                f"{len(grid)} rows now); the statuses were not written. Restore the file and "
                "run again"
            )
        header = grid[self.header_row - 1]
        positions = status_positions(header, spec.status)
        key_index = header_index(header, spec.key_columns, self.path.name, self.header_row)
        key_cols = [key_index[c] for c in spec.key_columns]
        current = [
            (r + 1, tuple(key_part(grid[r][c]) if c < len(grid[r]) else "" for c in key_cols))
            for r in range(self.header_row, len(grid))
        ]
        contents: dict[int, tuple[str, ...]] = {}
        at = content_positions(header, spec.columns)
        if at is not None and any(not any(u.key) for u in updates):
            contents = {row: content_at(grid[row - 1], at) for row, key in current if not any(key)}
        # New status columns go right of every cell in use, not only right of the header: a
        # column with data but no header name must not become a status column.
        if any(name not in positions for name in spec.status.names()):
            used = max((i + 1 for r in grid for i, c in enumerate(r) if c.strip()), default=0)
            header.extend([""] * (used - len(header)))
        status_cols: dict[str, int] = {}
        for name in spec.status.names():
            if name not in positions:
                header.append(name)
                positions[name] = len(header) - 1
            status_cols[name] = positions[name]
        placed, vanished = place_updates(current, updates, self._keyless, contents)
        for sheet_row, update in placed:
            cells = grid[sheet_row - 1]
            for name, text in update.values.items():
                col = status_cols[name]
                if len(cells) <= col:
                    cells.extend([""] * (col + 1 - len(cells)))
                cells[col] = safe_text(text)
        out = io.StringIO(newline="")
        if bom:
            out.write(_BOM)
        csv.writer(out, delimiter=self.delimiter, lineterminator=newline).writerows(grid)
        self._replace(out.getvalue())
        moved = sum(1 for row, u in placed if row != u.sheet_row)
        return WriteReport(written=len(placed), vanished=list(vanished), moved=moved)

    def _replace(self, text: str) -> None:
        encoding = "utf-8" if self.encoding.lower() in ("utf-8-sig", "utf8-sig") else self.encoding
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.stem}.", dir=self.path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding=encoding, newline="") as fh:
                fh.write(text)
            shutil.copymode(self.path, tmp)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise SourceUnavailable(
                f"{self.path}: could not save the status columns ({exc.strerror}); the file is "
                "unchanged. The annotations were sent: run again to write the statuses"
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
