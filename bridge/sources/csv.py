"""CSV source: rows from a CSV file, status columns written back into the same file."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bridge.errors import SourceError, SourceUnavailable
from bridge.records import Row, StatusUpdate, WriteReport, safe_text
from bridge.sources._table import header_index, key_part, place_updates, rows_from_grid
from bridge.sources.base import ReadSpec

_BOM = "\ufeff"


class CsvSource:
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
        encoding = "utf-8" if self.encoding.lower() in ("utf-8-sig", "utf8-sig") else self.encoding
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise SourceError(
                f"{self.path}: cannot decode the file as {self.encoding} ({exc}); set "
                "source.encoding in the mapping, e.g. latin-1 or cp1252"
            ) from exc
        if "\0" in text:
            raise SourceError(
                f"{self.path}: the file contains NUL bytes; it is not a text CSV file"
            )
        bom = text.startswith(_BOM)
        text = text.removeprefix(_BOM)
        newline = "\r\n" if "\r\n" in text[:65536] else "\n"
        try:
            grid = list(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter))
        except csv.Error as exc:
            raise SourceError(f"{self.path}: not a readable CSV file ({exc})") from exc
        return grid, bom, newline

    def read(self, spec: ReadSpec) -> list[Row]:
        grid, _, _ = self._load()
        if not grid:
            raise SourceError(f"{self.path}: the file is empty; it needs a header row and rows")
        return rows_from_grid(
            grid, self.header_row, spec.columns, spec.key_columns, spec.status, self.path.name
        )

    def check_writable(self) -> None:
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            raise SourceUnavailable(
                f"{self.path}: the file or its folder is read-only; the status columns are "
                "written back into it. Nothing was sent"
            )

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
        if not updates:
            return WriteReport()
        grid, bom, newline = self._load()
        header = grid[self.header_row - 1]
        positions = {key_part(v): i for i, v in enumerate(header) if key_part(v)}
        status_cols: dict[str, int] = {}
        for name in spec.status.names():
            if name not in positions:
                header.append(name)
                positions[name] = len(header) - 1
            status_cols[name] = positions[name]
        key_index = header_index(header, spec.key_columns, self.path.name, self.header_row)
        key_cols = [key_index[c] for c in spec.key_columns]
        current = (
            (r + 1, tuple(key_part(grid[r][c]) if c < len(grid[r]) else "" for c in key_cols))
            for r in range(self.header_row, len(grid))
        )
        placed, vanished = place_updates(current, updates)
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
