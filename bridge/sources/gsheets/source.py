"""Google Sheets source: typed reads and key-located status writes, frugal with quota.

A sync costs, for a worksheet given by title or gid (``gid:`` or the ``#gid=`` of the URL):

1. one values read of the whole worksheet (UNFORMATTED_VALUE, serial-number dates), whose
   answer also names the worksheet and the size of its grid;
2. one re-read of the header row and the key columns, just before writing, so each status
   lands on the row that holds its key even if SMEs sorted, inserted or deleted rows;
3. one RAW values:batchUpdate per ~25k rows, of the status cells only.

Dates are dates, as the Excel source gives them: the values read gives a date as its serial
number (2020-01-01 is 43831), which only the cell's number format tells from a number. So when
the mapped columns hold numbers that may be dates (a serial from 1950 to 2100 in any of them;
a fraction of a day, a time, in an id, label, comment, annotator or extra column), one
spreadsheets.get asks for the number-format type of those cells only, and DATE, DATE_TIME and
TIME cells become date, datetime and time. A sheet of text ids and labels, scores and ratings
makes no such request; one with dates (or date-like numbers) makes that one more.

A worksheet left unnamed (a bare key) costs one metadata request more, to find the first
sheet. Writing status columns past the grid's last column costs one request to widen it
(the first sync of a sheet that uses all its columns). Every request has a timeout; 429, 408
and 5xx are retried a bounded number of times with jittered backoff that honours
Retry-After, because gspread 6.2.1's BackOffHTTPClient retries 429 forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gspread.exceptions import APIError
from gspread.http_client import ParamsType
from gspread.urls import SPREADSHEETS_API_V4_BASE_URL

from bridge.errors import SourceError
from bridge.records import Row, StatusUpdate, WriteReport, safe_text
from bridge.sources._table import (
    column_letter,
    content_at,
    content_positions,
    header_index,
    key_part,
    keyless_contents,
    place_updates,
    rows_from_grid,
    status_positions,
)
from bridge.sources.base import ReadSpec, Source
from bridge.sources.gsheets.api import VALUE_OPTIONS, RetryPolicy
from bridge.sources.gsheets.auth import credential_files, service_account_email
from bridge.sources.gsheets.data import (
    FORMAT_FIELDS,
    column_values,
    date_candidates,
    format_ranges,
    from_serial,
    number_formats,
    parse_range,
    quote_title,
    request_body,
    write_chunks,
)
from bridge.sources.gsheets.export_sink import GSheetsExport
from bridge.sources.gsheets.worksheet import _Layout

# ``annobridge init`` (bridge.scaffold) finds the credential helpers here, and callers the
# retry policy the constructor takes; they live in auth.py and api.py.
__all__ = ["GSheetsSource", "RetryPolicy", "credential_files", "service_account_email"]


class GSheetsSource(GSheetsExport, Source):
    """A worksheet of a Google Sheet: typed reads, statuses written back by key, and (through
    ``GSheetsExport``) rows appended by ``annobridge export``.

    The parameters are ``Worksheet``'s: the spreadsheet's key or URL, the tab's title or gid,
    the header row, credentials, a timeout, and for tests a stand-in's URL and a session.
    """

    def read(self, spec: ReadSpec) -> list[Row]:
        with self._google("read"):
            layout, values = self._take(*self._read_values())
        where = self._where()
        if not values:
            raise SourceError(
                f"{where}: the worksheet is empty; it needs the column names in row "
                f"{self.header_row}, and rows of labels under them"
            )
        rows = rows_from_grid(
            values, self.header_row, spec.columns, spec.key_columns, spec.status, where
        )
        header = values[self.header_row - 1]
        layout.key_positions = header_index(header, spec.key_columns, where, self.header_row)
        mapped = header_index(header, spec.columns, where, self.header_row)
        layout.mapped_positions = [mapped[c] for c in spec.columns]
        # before the dates are typed: the re-read before writing gets serial numbers too
        layout.keyless = keyless_contents(rows, spec.columns)
        self._typed_dates(layout.title, values, spec, rows)
        return rows

    def _typed_dates(
        self, title: str, values: Sequence[Sequence[Any]], spec: ReadSpec, rows: list[Row]
    ) -> None:
        """Make the dates, date-times and times of the mapped columns Python's, in ``rows``.

        Only the numbers that may be typed dates are asked about (see ``date_candidates``), in
        one spreadsheets.get of their number-format types; none, no request. Keys stay as read:
        the re-read before writing gets serial numbers too, so each row is found again by them.
        """
        h = self.header_row
        index = header_index(values[h - 1], spec.columns, self._where(), h)
        numbers = set(spec.number_columns)
        candidates = date_candidates(values, h + 1, {c: n in numbers for n, c in index.items()})
        if not candidates:
            return
        params: ParamsType = {
            "ranges": format_ranges(title, candidates),
            "fields": FORMAT_FIELDS,
        }
        with self._google("read"):
            answer = self._http().spreadsheets_get(self.key, params=params)
        formats = number_formats(answer)
        name_of = {c: n for n, c in index.items()}
        by_row = {r.sheet_row: r for r in rows}
        for col, sheet_rows in candidates.items():
            name = name_of[col]
            for sheet_row in sheet_rows:
                kind = formats.get((sheet_row, col))
                row = by_row.get(sheet_row)
                if kind is not None and row is not None:
                    row.values[name] = from_serial(row.values[name], kind)

    def check_writable(self) -> None:
        """Nothing to check without spending a request.

        Whether the credentials may edit (not only view) the sheet shows only when writing;
        a sheet shared as Viewer fails the write-back with the fix, and the next run, once it
        is shared as Editor, writes the statuses without duplicating any annotation.
        """

    # -- write --

    def _layout_for_write(self) -> _Layout:
        if self._layout is not None:
            return self._layout
        if self.worksheet is not None:
            self._layout = _Layout(title=self.worksheet, sheet_id=self.gid)
        else:
            sheets = self._sheets()
            if self.gid is None:
                self._layout = self._first_sheet()
            else:
                match = [p for p in sheets if p.get("sheetId") == self.gid]
                if not match:
                    raise self._missing_worksheet()
                self._layout = _Layout(title=str(match[0]["title"]), sheet_id=self.gid)
        return self._layout

    def _key_ranges(
        self, layout: _Layout, positions: Sequence[int], with_header: bool
    ) -> list[dict[str, Any]]:
        q, h = quote_title(layout.title), self.header_row
        ranges = [f"{q}!{h}:{h}"] if with_header else []
        if not layout.grid_rows or layout.grid_rows > h:
            ranges += [f"{q}!{column_letter(c)}{h + 1}:{column_letter(c)}" for c in positions]
        params: ParamsType = dict(VALUE_OPTIONS)
        answer = self._http().values_batch_get(self.key, ranges, params=params)
        found: list[dict[str, Any]] = answer.get("valueRanges") or []
        return found

    def _current_keys(
        self, spec: ReadSpec, layout: _Layout, keyless: bool = False
    ) -> tuple[list[Any], list[tuple[int, tuple[str, ...]]], dict[int, tuple[str, ...]]]:
        """The header row, every row's key, and (``keyless``) the content of the rows without
        a key, as the sheet is now: one request, usually.

        The key columns are re-read where the read found them (and the mapped columns too,
        with ``keyless``); if columns were inserted or moved since, the header shows it and
        they are read again where they are now.
        """
        h = self.header_row
        where = self._where()
        positions = [layout.key_positions[c] for c in spec.key_columns if c in layout.key_positions]
        extra = list(layout.mapped_positions) if keyless else []
        try:
            found = self._key_ranges(layout, positions + extra, with_header=True)
        except APIError as exc:
            if exc.code != 400 or "Unable to parse range" not in str(exc.error.get("message")):
                raise
            if layout.sheet_id is None:
                raise SourceError(
                    f"{where}: the worksheet was renamed or deleted while syncing. "
                    f"{self._after('write')}"
                ) from None
            # renamed: find it again by its gid
            match = [p for p in self._sheets() if p.get("sheetId") == layout.sheet_id]
            if not match:
                raise SourceError(
                    f"{where}: the worksheet was deleted while syncing. {self._after('write')}"
                ) from None
            layout.title = str(match[0]["title"])
            found = self._key_ranges(layout, positions + extra, with_header=True)
        header_range = found[0]
        header = (header_range.get("values") or [[]])[0]
        layout.grid_cols = parse_range(str(header_range["range"])).last_col + 1
        try:
            now = header_index(header, spec.key_columns, where, h)
        except SourceError as exc:
            raise SourceError(
                f"{exc} (the header changed while syncing). {self._after('write')}"
            ) from None
        ranges = found[1:]
        now_keys = [now[c] for c in spec.key_columns]
        now_extra = (content_positions(header, spec.columns) or []) if keyless else []
        if now_keys != positions or now_extra != extra:
            layout.key_positions = now
            layout.mapped_positions = now_extra or layout.mapped_positions
            ranges = self._key_ranges(layout, now_keys + now_extra, with_header=False)
            extra = now_extra
        if ranges:
            layout.grid_rows = parse_range(str(ranges[0]["range"])).last_row
        columns = [column_values(r.get("values")) for r in ranges]
        key_columns, content_columns = columns[: len(now_keys)], columns[len(now_keys) :]
        # answers drop trailing empty rows: rows without a key at the bottom (a label typed
        # without its id) must still be there, with empty keys, to get their status
        n = max(max((len(c) for c in columns), default=0), layout.grid_rows - h)
        keys = [
            (h + 1 + i, tuple(key_part(c[i] if i < len(c) else None) for c in key_columns))
            for i in range(n)
        ]
        contents: dict[int, tuple[str, ...]] = {}
        if extra:
            for i, (row, key) in enumerate(keys):
                if not any(key):
                    contents[row] = content_at(
                        [c[i] if i < len(c) else None for c in content_columns],
                        range(len(content_columns)),
                    )
        return header, keys, contents

    def _status_columns(
        self, header: Sequence[Any], spec: ReadSpec, layout: _Layout
    ) -> tuple[dict[str, int], list[tuple[str, int]]]:
        """Where each status column is (0-based), and the header cells to add for new ones.

        New columns go right of every column in use, not only right of the header: a column
        with data but no name must not become a status column.
        """
        out = status_positions(header, spec.status)
        named = max((i + 1 for i, v in enumerate(header) if key_part(v)), default=0)
        nxt = max(named, layout.width)
        new: list[tuple[str, int]] = []
        for name in spec.status.names():
            if name not in out:
                out[name] = nxt
                new.append((name, nxt))
                nxt += 1
        return out, new

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
        """Write the status cells of each row, found by its key as the sheet is now.

        Only status cells are written (and the header cells of new status columns), RAW so no
        text becomes a formula or a number, in one values:batchUpdate per ~25k rows.
        """
        if not updates:
            return WriteReport()
        rows_written = 0
        with self._google("write", lambda: rows_written):
            layout = self._layout_for_write()
            keyless = any(not any(u.key) for u in updates)
            header, current, contents = self._current_keys(spec, layout, keyless)
            placed, vanished = place_updates(current, updates, layout.keyless, contents)
            if not placed:
                return WriteReport(vanished=list(vanished))
            columns, new = self._status_columns(header, spec, layout)
            cells: dict[tuple[int, int], str] = {
                (self.header_row, col): safe_text(name) for name, col in new
            }
            for sheet_row, update in placed:
                for name, text in update.values.items():
                    cells[(sheet_row, columns[name])] = safe_text(text)
            needed = max(col for _, col in cells) + 1
            if layout.grid_cols and needed > layout.grid_cols:
                self._widen(layout, needed - layout.grid_cols)
            url = f"{SPREADSHEETS_API_V4_BASE_URL}/{self.key}/values:batchUpdate"
            headers = {"Content-Type": "application/json; charset=utf-8"}
            chunks = write_chunks(
                cells,
                layout.title,
                max_rows=self.max_write_rows + (1 if new else 0),  # the header row is extra
                max_bytes=self.max_write_bytes,
            )
            for data in chunks:
                self._http().request("post", url, data=request_body(data), headers=headers)
                rows_written += len(
                    {r for entry in data for r in _rows_of(entry["range"])} - {self.header_row}
                )
        moved = sum(1 for row, u in placed if row != u.sheet_row)
        return WriteReport(written=len(placed), vanished=list(vanished), moved=moved)

    # -- export (optional: ``annobridge export``) --


def _rows_of(a1_range: str) -> range:
    grid = parse_range(a1_range)
    return range(grid.first_row, grid.last_row + 1)
